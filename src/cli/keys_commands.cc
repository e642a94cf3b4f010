#include "cli/keys_commands.h"

#include <cstdio>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace bzzz::cli {

using nlohmann::json;

struct KeysCommands::Args {
  CLI::App* list = nullptr;
  CLI::App* rotate = nullptr;
  CLI::App* retire = nullptr;
  CLI::App* grant = nullptr;
  CLI::App* ungrant = nullptr;
  ClientArgs client;
  std::string role;
  std::string node_id;
  unsigned min_version = 0;
  bool json = false;
};

KeysCommands::KeysCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  auto* keys = app.add_subcommand("keys", "role keys that seal stored context: list, rotate, retire, grant");
  keys->require_subcommand(1);
  a.list = keys->add_subcommand("list", "every role's key versions, what this node holds, re-wrap progress");
  a.rotate = keys->add_subcommand("rotate", "add a version of a role key (new writes use it at once)");
  a.rotate->add_option("role", a.role, "the role (a new role gets its first key)")->required();
  a.retire = keys->add_subcommand(
      "retire", "set min_decryption_version: versions below it no longer decrypt (re-wrap first)");
  a.retire->add_option("role", a.role, "the role")->required();
  a.retire->add_option("--min-version", a.min_version, "the oldest version that still decrypts")
      ->required()
      ->check(CLI::Range(1u, 0xffffffffu));
  a.grant = keys->add_subcommand("grant", "let a worker node hold a role's keys (authorities hold every role)");
  a.ungrant = keys->add_subcommand("ungrant", "stop granting a role to a node (then rotate the role)");
  for (auto* c : {a.grant, a.ungrant}) {
    c->add_option("role", a.role, "the role")->required();
    c->add_option("node_id", a.node_id, "node id (bzzz cluster members lists them)")->required();
  }
  for (auto* c : {a.list, a.rotate, a.retire, a.grant, a.ungrant}) {
    AddClientOptions(c, a.client);
    c->add_flag("--json", a.json, "print the JSON answer");
  }
}

KeysCommands::~KeysCommands() = default;

namespace {

void PrintRing(const json& ring) {
  std::printf("key ring revision %llu (term %llu), updated %s by %s\n",
              static_cast<unsigned long long>(ring.value("revision", 0ull)),
              static_cast<unsigned long long>(ring.value("term", 0ull)), ring.value("updated_at", "").c_str(),
              ring.value("updated_by", "").c_str());
  std::printf("%-16s %7s %8s  %-22s %s\n", "ROLE", "LATEST", "MIN_DEC", "HELD HERE", "HOLDERS (workers)");
  for (const auto& r : ring["roles"]) {
    std::string held;
    for (const auto& v : r["versions"]) {
      if (v.value("held_here", false)) held += (held.empty() ? "v" : ",v") + std::to_string(v["version"].get<int>());
    }
    std::printf("%-16s %7d %8d  %-22s %zu\n", r["role"].get<std::string>().c_str(), r["latest_version"].get<int>(),
                r["min_decryption_version"].get<int>(), held.empty() ? "-" : held.c_str(), r["holders"].size());
  }
  const json& node = ring["node"];
  std::printf("this node %s (%s); admin %s\n", node.value("id", "").c_str(),
              node.value("authority", false) ? "authority: holds every role" : "worker",
              node.value("admin", "").empty() ? "(none)" : node.value("admin", "").c_str());
  const json& rw = ring["rewrap"];
  if (rw.is_object()) {
    std::printf("re-wrap to key generation %llu: %s, %llu of %llu scanned, %llu re-wrapped, %llu failed\n",
                static_cast<unsigned long long>(rw.value("target_generation", 0ull)),
                rw.value("done", false) ? "done" : "running",
                static_cast<unsigned long long>(rw.value("scanned", 0ull)),
                static_cast<unsigned long long>(rw.value("total", 0ull)),
                static_cast<unsigned long long>(rw.value("rewrapped", 0ull)),
                static_cast<unsigned long long>(rw.value("failed", 0ull)));
  }
  if (!ring.value("last_error", "").empty()) std::printf("last error: %s\n", ring["last_error"].get<std::string>().c_str());
}

}  // namespace

std::optional<int> KeysCommands::Run() {
  const Args& a = *args_;
  const ClientOptions client = ClientFrom(a.client);
  std::string method = "POST", path, body;
  if (*a.list) {
    method = "GET";
    path = "/api/v1/keys";
  } else if (*a.rotate) {
    path = "/api/v1/keys/rotate";
    body = json{{"role", a.role}}.dump();
  } else if (*a.retire) {
    path = "/api/v1/keys/config";
    body = json{{"role", a.role}, {"min_decryption_version", a.min_version}}.dump();
  } else if (*a.grant || *a.ungrant) {
    path = "/api/v1/keys/grant";
    body = json{{"role", a.role}, {"node_id", a.node_id}, {"holds", static_cast<bool>(*a.grant)}}.dump();
  } else {
    return std::nullopt;
  }
  if (a.json) return Report(Call(client, method, path, body));
  int code = kExitOk;
  auto answer = CallJson(client, method.c_str(), path, body, &code);
  if (!answer) return code;
  if (*a.rotate) std::printf("%s: version %d is used for new writes\n", a.role.c_str(), (*answer)["version"].get<int>());
  if (*a.retire) std::printf("%s: versions below %u no longer decrypt\n", a.role.c_str(), a.min_version);
  if (*a.grant) std::printf("%s may hold %s\n", a.node_id.c_str(), a.role.c_str());
  if (*a.ungrant) {
    std::printf("%s no longer granted %s; it keeps what it holds: bzzz keys rotate %s\n", a.node_id.c_str(),
                a.role.c_str(), a.role.c_str());
  }
  PrintRing(answer->contains("ring") ? (*answer)["ring"] : *answer);
  return kExitOk;
}

}  // namespace bzzz::cli
