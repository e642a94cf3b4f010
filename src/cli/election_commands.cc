#include "cli/election_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/json.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace bzzz::cli {

using nlohmann::json;

namespace {

std::string AdminLabel(const json& side) {
  const std::string admin = side.value("admin_id", "");
  return (admin.empty() ? std::string("none") : admin) + " (term " + std::to_string(side.value("term", 0)) +
         ")";
}

int TriggerElection(const ClientOptions& options, bool force, bool as_json) {
  int code = kExitOk;
  ClientOptions o = options;
  o.timeout = std::max(o.timeout, std::chrono::milliseconds(30000));
  auto response = Call(o, "POST", "/api/election/trigger", json{{"force", force}}.dump());
  if (!response.ok()) {
    PrintError(response.status().message());
    return kExitUnreachable;
  }
  json body = ParseJson(response->body);
  if (response->status == 504 && body.is_object()) {
    if (as_json) std::cout << body.dump(2) << "\n";
    PrintError("no new admin yet: was " + AdminLabel(body["previous"]) + ", now " +
               AdminLabel(body["current"]));
    return kExitFailure;
  }
  auto parsed = CallJsonResult(*response, &code);
  if (!parsed) return code;
  if (as_json) {
    std::cout << parsed->dump(2) << "\n";
  } else {
    std::printf("old admin: %s\nnew admin: %s\n", AdminLabel((*parsed)["previous"]).c_str(),
                AdminLabel((*parsed)["current"]).c_str());
  }
  return kExitOk;
}

int ElectionStatus(const ClientOptions& options, bool as_json) {
  int code = kExitOk;
  auto body = CallJson(options, "GET", "/api/election/status", "", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
    return kExitOk;
  }
  const json& b = *body;
  auto str = [&](const char* k) {
    return b.contains(k) && b[k].is_string() ? b[k].get<std::string>() : std::string("-");
  };
  std::printf("node      %s (%s)\nadmin     %s\nterm      %llu\nheartbeat %s\n", str("node_id").c_str(),
              str("state").c_str(), str("admin_id").c_str(),
              static_cast<unsigned long long>(b.value("term", 0ull)),
              b["heartbeat_age_ms"].is_number()
                  ? (std::to_string(b["heartbeat_age_ms"].get<long long>()) + " ms ago").c_str()
                  : "none");
  std::printf("cluster   %s, electorate of %zu%s\n", str("cluster").c_str(),
              b["electorate"]["members"].size(), b.value("member", false) ? " (member)" : " (not a member)");
  for (const auto& c : b["candidates"]) {
    std::printf("  %-42s score %.3f%s%s\n", c.value("node_id", "").c_str(), c.value("score", 0.0),
                c.value("admin_capable", false) ? "" : " observer",
                c.value("member", false) ? " member" : "");
  }
  if (b.contains("problem") && b["problem"].is_string())
    std::printf("problem   %s\n", str("problem").c_str());
  return kExitOk;
}

// Electorate changes go to the admin: a node that is not answers 409 with
// the admin's URL, and the request is sent there once.
int ElectorateChange(const ClientOptions& options, const std::string& op, const std::string& node_id) {
  const std::string body = json{{op, node_id}}.dump();
  auto response = Call(options, "POST", "/api/election/electorate", body);
  if (response.ok() && response->status == 409) {
    const json j = ParseJson(response->body);
    if (j.is_object() && j.contains("admin_url") && j["admin_url"].is_string()) {
      ClientOptions at_admin = options;
      at_admin.url = j["admin_url"].get<std::string>();
      std::fprintf(stderr, "sending the change to the admin at %s\n", at_admin.url.c_str());
      response = Call(at_admin, "POST", "/api/election/electorate", body);
    }
  }
  if (!response.ok()) {
    PrintError(response.status().message());
    return kExitUnreachable;
  }
  int code = kExitOk;
  auto parsed = CallJsonResult(*response, &code);
  if (!parsed) return code;
  std::printf("electorate version %s: %s\n", (*parsed)["version"].dump().c_str(),
              (*parsed)["members"].dump().c_str());
  return kExitOk;
}

// Every boundary validates UCXL addresses: the CLI before sending.
}  // namespace

struct ElectionCommands::Args {
  ClientArgs trigger, status, electorate;
  bool force = false, trigger_json = false, status_json = false;
  std::string node;
  CLI::App *trigger_cmd = nullptr, *status_cmd = nullptr, *add_cmd = nullptr, *remove_cmd = nullptr;
};

ElectionCommands::ElectionCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  a.trigger_cmd = app.add_subcommand("trigger-election",
                                     "ask the running node to start an election; prints the old "
                                     "and the new admin and term");
  AddClientOptions(a.trigger_cmd, a.trigger);
  a.trigger_cmd->add_flag("--force", a.force, "even inside election.stability_window");
  a.trigger_cmd->add_flag("--json", a.trigger_json, "print the JSON answer");

  auto* election_cmd = app.add_subcommand("election", "the admin election");
  election_cmd->require_subcommand(1);
  a.status_cmd = election_cmd->add_subcommand("status", "this node's view: admin, term, candidates");
  AddClientOptions(a.status_cmd, a.status);
  a.status_cmd->add_flag("--json", a.status_json, "print the JSON answer");
  auto* electorate_cmd =
      election_cmd->add_subcommand("electorate", "change the electorate by one member (on the admin)");
  electorate_cmd->require_subcommand(1);
  a.add_cmd = electorate_cmd->add_subcommand("add", "add an admin-capable node (by node id)");
  a.remove_cmd = electorate_cmd->add_subcommand("remove", "remove a node (by node id)");
  for (auto* c : {a.add_cmd, a.remove_cmd}) {
    AddClientOptions(c, a.electorate);
    c->add_option("node_id", a.node, "node id (bzzz election status lists candidates)")->required();
  }
}

ElectionCommands::~ElectionCommands() = default;

std::optional<int> ElectionCommands::Run() {
  Args& a = *args_;
  if (*a.trigger_cmd) return TriggerElection(ClientFrom(a.trigger), a.force, a.trigger_json);
  if (*a.status_cmd) return ElectionStatus(ClientFrom(a.status), a.status_json);
  if (*a.add_cmd) return ElectorateChange(ClientFrom(a.electorate), "add", a.node);
  if (*a.remove_cmd) return ElectorateChange(ClientFrom(a.electorate), "remove", a.node);
  return std::nullopt;
}

}  // namespace bzzz::cli
