#include "cli/cluster_commands.h"

#include <cstdio>
#include <iostream>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cluster/membership.h"
#include "config/loader.h"
#include "p2p/identity.h"

namespace bzzz::cli {

using nlohmann::json;
namespace cl = bzzz::cluster;

struct ClusterCommands::Args {
  CLI::App* init = nullptr;
  CLI::App* status = nullptr;
  CLI::App* members = nullptr;
  CLI::App* token_create = nullptr;
  CLI::App* revoke = nullptr;
  ClientArgs client;
  std::string data_dir;
  std::string name;
  std::string role = "worker";
  bool admin_capable = false;
  std::string ttl = "1h";
  unsigned uses = 1;
  std::string node_id;
  std::string reason;
  bool json = false;
};

ClusterCommands::ClusterCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  auto* cluster = app.add_subcommand("cluster", "cluster membership: found, admit, list and revoke members");
  cluster->require_subcommand(1);
  a.init = cluster->add_subcommand(
      "init", "found a cluster offline in a data directory (its first node); prints a join token");
  a.init->add_option("--data-dir", a.data_dir, "the first node's data directory")->required();
  a.init->add_option("--node-name", a.name, "the first node's name");
  a.init->add_option("--role", a.role, "the first node's role: admin-capable (default) or worker")
      ->default_val("admin-capable");
  a.status = cluster->add_subcommand("status", "this node's membership (cluster id, role, credential)");
  a.members = cluster->add_subcommand("members", "members seen by the node, with roles, expiry and liveness");
  auto* token = cluster->add_subcommand("token", "join tokens");
  token->require_subcommand(1);
  a.token_create = token->add_subcommand(
      "create", "create a join token (on a running authority node, or offline with --data-dir)");
  a.token_create->add_option("--role", a.role, "worker, admin-capable or bootstrap")->capture_default_str();
  a.token_create->add_flag("--admin-capable", a.admin_capable, "shorthand for --role admin-capable");
  a.token_create->add_option("--ttl", a.ttl, "how long the token is valid (30m, 24h)")->capture_default_str();
  a.token_create->add_option("--uses", a.uses, "how many nodes may join with it")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  a.token_create->add_option("--data-dir", a.data_dir,
                             "sign offline with the cluster key in this data directory");
  a.revoke = cluster->add_subcommand("revoke", "revoke a member: every node drops its frames within seconds");
  a.revoke->add_option("node_id", a.node_id, "node id (bzzz cluster members lists them)")->required();
  a.revoke->add_option("--reason", a.reason, "why (recorded with the revocation)");
  for (auto* c : {a.status, a.members, a.token_create, a.revoke}) {
    AddClientOptions(c, a.client);
    c->add_flag("--json", a.json, "print the JSON answer");
  }
}

ClusterCommands::~ClusterCommands() = default;

namespace {

int Init(const ClusterCommands::Args& a) {
  auto role = cl::ParseNodeRole(a.role);
  if (!role.ok() || *role == cl::NodeRole::kBootstrap) {
    PrintError("--role must be admin-capable or worker");
    return kExitUsage;
  }
  auto identity = p2p::NodeIdentity::LoadOrCreate(a.data_dir + "/p2p");
  if (!identity.ok()) {
    PrintError(identity.status().message());
    return kExitFailure;
  }
  auto m = cl::Membership::Open(a.data_dir + "/cluster");
  if (!m.ok()) {
    PrintError(m.status().message());
    return kExitFailure;
  }
  config::Config defaults;
  if (auto s = (*m)->Found(identity->public_key(), *role, a.name, defaults.p2p.credential_ttl); !s.ok()) {
    PrintError(s.message());
    return kExitFailure;
  }
  auto token = (*m)->CreateToken(cl::NodeRole::kAdminCapable, std::chrono::hours(1), 1);
  std::printf("founded cluster %s in %s (node %s)\n", (*m)->cluster_id().c_str(), a.data_dir.c_str(),
              identity->node_id().c_str());
  std::printf("start it with: bzzz serve --data-dir %s\n", a.data_dir.c_str());
  if (token.ok()) {
    std::printf("a one-time admin-capable join token, valid 1 h (more: bzzz cluster token create):\n%s\n",
                token->c_str());
  }
  return kExitOk;
}

int TokenOffline(const ClusterCommands::Args& a, cl::NodeRole role, std::int64_t ttl_ms) {
  auto m = cl::Membership::Open(a.data_dir + "/cluster");
  if (!m.ok()) {
    PrintError(m.status().message());
    return kExitFailure;
  }
  auto token = (*m)->CreateToken(role, std::chrono::milliseconds(ttl_ms), a.uses);
  if (!token.ok()) {
    PrintError(token.status().message());
    return kExitFailure;
  }
  std::printf("%s\n", token->c_str());
  return kExitOk;
}

int Members(const ClientOptions& o, bool as_json) {
  int code = kExitOk;
  auto body = CallJson(o, "GET", "/api/v1/cluster/members", "", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
    return kExitOk;
  }
  std::printf("cluster %s\n", body->value("cluster_id", "").c_str());
  std::printf("%-40s  %-16s  %-13s  %-5s  %-7s  %s\n", "NODE", "NAME", "ROLE", "LIVE", "REVOKED", "EXPIRES");
  for (const auto& m : (*body)["members"]) {
    std::printf("%-40s  %-16s  %-13s  %-5s  %-7s  %s\n", m.value("node_id", "").c_str(), m.value("name", "").c_str(),
                m.value("role", "").c_str(), m.value("live", false) ? "yes" : "no",
                m.value("revoked", false) ? "yes" : "no", m.value("expires_at", "").c_str());
  }
  return kExitOk;
}

}  // namespace

std::optional<int> ClusterCommands::Run() {
  Args& a = *args_;
  auto client = [&a] { return ClientFrom(a.client); };
  if (*a.init) return Init(a);
  if (*a.status) {
    if (a.json) return Report(Call(client(), "GET", "/api/v1/cluster"));
    int code = kExitOk;
    auto body = CallJson(client(), "GET", "/api/v1/cluster", "", &code);
    if (!body) return code;
    std::printf("cluster %s; this node: %s, %s%s\n", body->value("cluster_id", "").c_str(),
                body->value("role", "not admitted").c_str(),
                body->value("authority", false) ? "holds the cluster key" : "no cluster key",
                body->value("founder", false) ? ", founder" : "");
    if (body->contains("credential")) {
      std::printf("credential valid until %s\n", (*body)["credential"].value("expires_at", "").c_str());
    }
    return kExitOk;
  }
  if (*a.members) return Members(client(), a.json);
  if (*a.token_create) {
    if (a.admin_capable) a.role = "admin-capable";
    auto role = cl::ParseNodeRole(a.role);
    if (!role.ok()) {
      PrintError(role.status().message());
      return kExitUsage;
    }
    const auto ttl = config::ParseDurationMs(a.ttl);
    if (!ttl || *ttl <= 0) {
      PrintError("--ttl must be a duration like 30m or 24h");
      return kExitUsage;
    }
    if (!a.data_dir.empty()) return TokenOffline(a, *role, *ttl);
    const json req = {{"role", a.role}, {"ttl", a.ttl}, {"uses", a.uses}};
    if (a.json) return Report(Call(client(), "POST", "/api/v1/cluster/tokens", req.dump()));
    int code = kExitOk;
    auto body = CallJson(client(), "POST", "/api/v1/cluster/tokens", req.dump(), &code);
    if (!body) return code;
    std::printf("%s\n", body->value("token", "").c_str());
    std::fprintf(stderr, "token %s: role %s, %u use(s), valid until %s\njoin with: bzzz serve --bootstrap %s --join TOKEN\n",
                 body->value("id", "").c_str(), body->value("role", "").c_str(), a.uses,
                 body->value("expires_at", "").c_str(), body->value("bootstrap", "").c_str());
    return kExitOk;
  }
  if (*a.revoke) {
    const json req = {{"node_id", a.node_id}, {"reason", a.reason}};
    return Report(Call(client(), "POST", "/api/v1/cluster/revoke", req.dump()));
  }
  return std::nullopt;
}

}  // namespace bzzz::cli
