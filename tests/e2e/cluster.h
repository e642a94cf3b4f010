// A cluster of real bzzz processes for end-to-end tests: an optional DHT
// bootstrap node and serve nodes on loopback, each with its own data
// directory and log, driven over HTTP and through the CLI.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/client.h"
#include "support/support.h"

namespace bzzz::e2e {

using nlohmann::json;
using namespace std::chrono_literals;

inline constexpr char kAdminToken[] = "e2e-admin-token-4d8b1e6f0a";

// Fast presence so that joins and departures show within seconds.
inline const std::vector<std::string> kFastP2p = {"--set", "p2p.presence_interval=300ms",
                                                  "--set", "p2p.peer_expiry=3s",
                                                  "--set", "p2p.max_peer_requests_per_sec=-1"};

struct Cluster {
  testing::TempDir dir;
  std::uint16_t bootstrap_port = testing::FreePort();
  std::unique_ptr<testing::Process> bootstrap;
  std::vector<std::uint16_t> http;
  std::vector<std::unique_ptr<testing::Process>> nodes;
  std::vector<std::string> node_args;  // added to every serve command
  std::vector<std::string> logs;       // each node's current log file
  int runs = 0;
  // Membership: node 0's data directory founds the cluster offline (bzzz
  // cluster init); every other node and the bootstrap node join with a token.
  std::string node_token, bootstrap_token;

  static std::string TokenIn(const std::string& output) {
    const auto at = output.find("bzzz-join-1.");
    if (at == std::string::npos) return "";
    const auto end = output.find_first_of(" \n", at);
    return output.substr(at, end == std::string::npos ? std::string::npos : end - at);
  }

  void EnsureCluster() {
    if (!node_token.empty()) return;
    const std::string n0 = dir.File("n0");
    auto init = Cli({"cluster", "init", "--data-dir", n0, "--node-name", "n0"});
    if (init.first != 0) {
      std::fprintf(stderr, "cluster init failed: %s\n", init.second.c_str());
      return;
    }
    node_token = TokenIn(Cli({"cluster", "token", "create", "--data-dir", n0, "--role", "admin-capable", "--uses",
                              "100", "--ttl", "2h"})
                             .second);
    bootstrap_token = TokenIn(
        Cli({"cluster", "token", "create", "--data-dir", n0, "--role", "bootstrap", "--uses", "10", "--ttl", "2h"})
            .second);
  }

  std::string Url(int i) const { return "http://127.0.0.1:" + std::to_string(http[i]); }
  std::string Log(int i, int run) const {
    return dir.File("n" + std::to_string(i) + "-" + std::to_string(run) + ".log");
  }

  void StartBootstrap() {
    EnsureCluster();
    std::vector<std::string> args = {"dht-bootstrap", "--port", std::to_string(bootstrap_port), "--data-dir",
                                     dir.File("boot"), "--join", bootstrap_token};
    args.insert(args.end(), kFastP2p.begin(), kFastP2p.end());
    bootstrap = std::make_unique<testing::Process>(BZZZ_BINARY, args, std::vector<std::string>{},
                                                   dir.File("boot.log"));
  }

  void StartNode(int i, bool with_bootstrap = true, std::vector<std::string> extra = {}) {
    if (static_cast<int>(http.size()) <= i) http.resize(i + 1, 0);
    if (static_cast<int>(nodes.size()) <= i) nodes.resize(i + 1);
    if (http[i] == 0) http[i] = testing::FreePort();
    std::vector<std::string> args = {"serve",
                                     "--data-dir",
                                     dir.File("n" + std::to_string(i)),
                                     "--http-listen",
                                     "127.0.0.1:" + std::to_string(http[i]),
                                     "--p2p-listen",
                                     "127.0.0.1:0",
                                     "--node-name",
                                     "n" + std::to_string(i)};
    if (with_bootstrap) {
      EnsureCluster();
      args.push_back("--bootstrap");
      args.push_back("127.0.0.1:" + std::to_string(bootstrap_port));
      args.push_back("--join");
      args.push_back(node_token);
    }
    args.insert(args.end(), kFastP2p.begin(), kFastP2p.end());
    args.insert(args.end(), node_args.begin(), node_args.end());
    args.insert(args.end(), extra.begin(), extra.end());
    if (static_cast<int>(logs.size()) <= i) logs.resize(i + 1);
    logs[i] = dir.File("n" + std::to_string(i) + "-" + std::to_string(runs++) + ".log");
    nodes[i] = std::make_unique<testing::Process>(
        BZZZ_BINARY, args, std::vector<std::string>{std::string("BZZZ_ADMIN_TOKEN=") + kAdminToken}, logs[i]);
  }

  json Get(int i, const std::string& path) const {
    cli::ClientOptions o;
    o.url = Url(i);
    o.token = kAdminToken;
    o.timeout = 2s;
    auto r = cli::Call(o, "GET", path);
    if (!r.ok() || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }

  // The value of one series in node i's /metrics (`name` or
  // `name{label="v",...}` exactly as exposed); -1 when absent or unreachable.
  double Metric(int i, const std::string& series) const {
    cli::ClientOptions o;
    o.url = Url(i);
    o.timeout = 2s;
    auto r = cli::Call(o, "GET", "/metrics");
    if (!r.ok()) return -1;
    const auto at = r->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::atof(r->body.c_str() + at + series.size() + 2);
  }

  // Every log of the cluster (the bootstrap node's and each node's current
  // one), for a failure message: a node that waits often waits for another.
  std::string AllLogs() const {
    std::string out;
    if (bootstrap) out += "--- bootstrap ---\n" + testing::ReadFile(dir.File("boot.log"));
    for (std::size_t i = 0; i < logs.size(); ++i) {
      if (!logs[i].empty()) out += "--- node " + std::to_string(i) + " ---\n" + testing::ReadFile(logs[i]);
    }
    return out;
  }

  // Waits until nodes 0..n-1 all name an admin; fills each node's id and
  // the admin's (the last node's view).
  bool AwaitAdmin(int n, std::vector<std::string>& ids, std::string& admin, std::chrono::milliseconds timeout) const {
    ids.assign(n, "");
    return testing::Eventually(
        [&] {
          for (int i = 0; i < n; ++i) {
            const json s = Get(i, "/api/election/status");
            if (!s.is_object() || !s["admin_id"].is_string() || s["admin_id"] == "") return false;
            ids[i] = s["node_id"];
            admin = s["admin_id"];
          }
          return true;
        },
        timeout);
  }

  std::size_t Peers(int i) const {
    const json j = Get(i, "/api/v1/peers");
    return j.is_object() ? j["peers"].size() : 0;
  }

  // Runs the CLI; returns its exit code and its output (stdout and stderr).
  std::pair<int, std::string> Cli(std::vector<std::string> args) {
    const std::string log = dir.File("cli-" + std::to_string(runs++) + ".log");
    testing::Process p(BZZZ_BINARY, args, {std::string("BZZZ_TOKEN=") + kAdminToken}, log);
    const int code = p.Wait(30s);
    return {code, testing::ReadFile(log)};
  }
};

}  // namespace bzzz::e2e
