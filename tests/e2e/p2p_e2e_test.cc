// End-to-end P2P: a DHT bootstrap node and three bzzz nodes as separate
// processes on loopback, driven through the CLI the runbook uses
// (peers, test-p2p-message, test-dht-operations, p2p peers clear, dht cache
// clear), with a kill -9 and a restart.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <memory>

#include "cli/client.h"
#include "support/support.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ReadFile;
using testing::Process;
using testing::TempDir;

constexpr char kAdminToken[] = "p2p-e2e-admin";

// Fast presence so that joins and departures show within seconds.
const std::vector<std::string> kFast = {"--set", "p2p.presence_interval=300ms", "--set", "p2p.peer_expiry=3s",
                                        "--set", "p2p.max_peer_requests_per_sec=-1"};

struct Cluster {
  TempDir dir;
  std::uint16_t bootstrap_port = testing::FreePort();
  std::unique_ptr<Process> bootstrap;
  std::vector<std::uint16_t> http;
  std::vector<std::unique_ptr<Process>> nodes;
  int runs = 0;

  std::string Url(int i) const { return "http://127.0.0.1:" + std::to_string(http[i]); }

  void StartBootstrap() {
    std::vector<std::string> args = {"dht-bootstrap", "--port", std::to_string(bootstrap_port), "--data-dir",
                                     dir.File("boot")};
    args.insert(args.end(), kFast.begin(), kFast.end());
    bootstrap = std::make_unique<Process>(BZZZ_BINARY, args, std::vector<std::string>{}, dir.File("boot.log"));
  }

  void StartNode(int i, bool with_bootstrap = true) {
    if (static_cast<int>(http.size()) <= i) http.resize(i + 1, 0);
    if (static_cast<int>(nodes.size()) <= i) nodes.resize(i + 1);
    if (http[i] == 0) http[i] = testing::FreePort();
    std::vector<std::string> args = {"serve", "--data-dir", dir.File("n" + std::to_string(i)), "--http-listen",
                                     "127.0.0.1:" + std::to_string(http[i]), "--p2p-listen", "127.0.0.1:0",
                                     "--node-name", "n" + std::to_string(i)};
    if (with_bootstrap) {
      args.push_back("--bootstrap");
      args.push_back("127.0.0.1:" + std::to_string(bootstrap_port));
    }
    args.insert(args.end(), kFast.begin(), kFast.end());
    nodes[i] = std::make_unique<Process>(BZZZ_BINARY, args,
                                         std::vector<std::string>{std::string("BZZZ_ADMIN_TOKEN=") + kAdminToken},
                                         dir.File("n" + std::to_string(i) + "-" + std::to_string(runs++) + ".log"));
  }

  json Get(int i, const std::string& path) const {
    cli::ClientOptions o;
    o.url = Url(i);
    o.token = kAdminToken;
    auto r = cli::Call(o, "GET", path);
    if (!r.ok() || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }

  std::size_t Peers(int i) const {
    const json j = Get(i, "/api/v1/peers");
    return j.is_object() ? j["peers"].size() : 0;
  }

  std::pair<int, std::string> Cli(std::vector<std::string> args) {
    const std::string log = dir.File("cli-" + std::to_string(runs++) + ".log");
    Process p(BZZZ_BINARY, args, {std::string("BZZZ_TOKEN=") + kAdminToken}, log);
    const int code = p.Wait(30s);
    return {code, ReadFile(log)};
  }
};

TEST(P2pEndToEnd, ClusterProbesSurvivesKillAndRestart) {
  Cluster c;
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i);
  // Each node sees the two others and the bootstrap node.
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 3 && c.Peers(1) == 3 && c.Peers(2) == 3; }, 20s))
      << ReadFile(c.dir.File("n0-0.log"));

  auto peers = c.Cli({"peers", "--url", c.Url(0)});
  EXPECT_EQ(peers.first, 0) << peers.second;
  EXPECT_NE(peers.second.find("n1"), std::string::npos) << peers.second;
  EXPECT_NE(peers.second.find("bootstrap"), std::string::npos) << peers.second;

  auto probe = c.Cli({"test-p2p-message", "--url", c.Url(1)});
  EXPECT_EQ(probe.first, 0) << probe.second;
  EXPECT_NE(probe.second.find("3 of 3 peer(s) answered"), std::string::npos) << probe.second;

  auto dht = c.Cli({"test-dht-operations", "--url", c.Url(2)});
  EXPECT_EQ(dht.first, 0) << dht.second;
  for (const char* op : {"put", "get", "announce", "discover"}) EXPECT_NE(dht.second.find(op), std::string::npos);

  // Health checks probe for real (run live) and pass.
  const json checks = c.Get(0, "/health/detailed");
  ASSERT_TRUE(checks.is_object());
  EXPECT_EQ(checks["checks"]["pubsub-health"]["status"], "healthy") << checks.dump();
  EXPECT_EQ(checks["checks"]["dht-health"]["status"], "healthy") << checks.dump();

  // kill -9 of node 2: the others notice it and the probe reports the survivors.
  const json health2 = c.Get(2, "/health");
  const std::string id2 = health2["node_id"];
  c.nodes[2]->Signal(SIGKILL);
  c.nodes[2]->Wait(5s);
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 2 && c.Peers(1) == 2; }, 15s));
  probe = c.Cli({"test-p2p-message", "--url", c.Url(0)});
  EXPECT_EQ(probe.first, 0) << probe.second;

  // Restarted from its data directory: same identity, back in every table.
  c.StartNode(2);
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 3 && c.Peers(2) == 3; }, 20s));
  EXPECT_EQ(c.Get(2, "/health")["node_id"], id2);

  // Peer store and cache maintenance: offline refused while the node runs, online works.
  auto offline = c.Cli({"p2p", "peers", "clear", "--data-dir", c.dir.File("n1")});
  EXPECT_EQ(offline.first, 1) << offline.second;
  EXPECT_NE(offline.second.find("running"), std::string::npos) << offline.second;
  auto online = c.Cli({"p2p", "peers", "clear", "--url", c.Url(1)});
  EXPECT_EQ(online.first, 0) << online.second;
  auto cache = c.Cli({"dht", "cache", "clear", "--url", c.Url(1)});
  EXPECT_EQ(cache.first, 0) << cache.second;
  // Cleared peers come back as they announce.
  EXPECT_TRUE(Eventually([&] { return c.Peers(1) == 3; }, 10s));

  // The metrics of SPEC §3.3/§3.4 are exported.
  cli::ClientOptions o;
  o.url = c.Url(0);
  auto metrics = cli::Call(o, "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  for (const char* name : {"bzzz_p2p_connected_peers 3", "bzzz_pubsub_messages_published_total",
                           "bzzz_pubsub_delivery_latency_seconds_bucket", "bzzz_dht_put_operations_total",
                           "bzzz_dht_get_operations_total", "bzzz_dht_operation_latency_seconds_bucket",
                           "bzzz_dht_replication_factor", "bzzz_dht_provider_records"}) {
    EXPECT_NE(metrics->body.find(name), std::string::npos) << name;
  }

  // Without credentials the P2P routes are refused.
  cli::ClientOptions anonymous;
  anonymous.url = c.Url(0);
  auto denied = cli::Call(anonymous, "GET", "/api/v1/peers");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);

  for (auto& n : c.nodes) n->Signal(SIGTERM);
  c.bootstrap->Signal(SIGTERM);
  for (auto& n : c.nodes) EXPECT_EQ(n->Wait(15s), 0);
  EXPECT_EQ(c.bootstrap->Wait(15s), 0);
}

TEST(P2pEndToEnd, LoneNodeProbesAndRefusesAnEmptyTest) {
  Cluster c;
  c.StartNode(0, /*with_bootstrap=*/false);
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 10s));
  auto alone = c.Cli({"test-p2p-message", "--url", c.Url(0), "--probe-timeout-ms", "200"});
  EXPECT_EQ(alone.first, 1) << alone.second;
  EXPECT_NE(alone.second.find("no peers"), std::string::npos);
  auto allowed = c.Cli({"test-p2p-message", "--url", c.Url(0), "--probe-timeout-ms", "200", "--allow-alone"});
  EXPECT_EQ(allowed.first, 0) << allowed.second;
  auto dht = c.Cli({"test-dht-operations", "--url", c.Url(0)});
  EXPECT_EQ(dht.first, 0) << dht.second;
  ASSERT_TRUE(Eventually(
      [&] {
        const json checks = c.Get(0, "/health/detailed");
        return checks.is_object() && checks["checks"]["pubsub-health"]["status"] == "healthy" &&
               checks["checks"]["dht-health"]["status"] == "healthy";
      },
      15s));
  c.nodes[0]->Signal(SIGTERM);
  EXPECT_EQ(c.nodes[0]->Wait(15s), 0);
}

}  // namespace
}  // namespace bzzz
