// End-to-end cluster formation the way an operator starts nodes: the first
// founds the cluster, the others (two, then four) are started with
// --bootstrap and a join token and without --bootstrap-expect. They form one cluster with one admin whose
// autopilot grows the electorate to all five; kill -9 of the admin fails
// over to a node that can admit the next one (admin-capable members hold
// the cluster key); a node dead for longer than the removal time leaves the
// electorate.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <chrono>
#include <set>

#include "e2e/cluster.h"
#include "support/support.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ReadFile;
using e2e::Cluster;

const std::vector<std::string> kAutopilot = {"--set", "election.autopilot.stabilization_time=1s", "--set",
                                             "election.autopilot.dead_member_removal=4s"};

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// `nodes` admin-capable nodes: the first founds, the others join with one token.
void FormKillAndRemove(const int kNodes) {
  Cluster c;
  const std::string seed = "127.0.0.1:" + std::to_string(c.bootstrap_port);
  c.StartNode(0, false, With({"--set", "p2p.listen=" + seed}, kAutopilot));
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 15s)) << ReadFile(c.logs[0]);
  auto out = c.Cli({"cluster", "token", "create", "--url", c.Url(0), "--role", "admin-capable", "--uses",
                    std::to_string(kNodes - 1)});
  const std::string token = Cluster::TokenIn(out.second);
  ASSERT_FALSE(token.empty()) << out.second;
  for (int i = 1; i < kNodes; ++i) c.StartNode(i, false, With({"--bootstrap", seed, "--join", token}, kAutopilot));

  // One admin, every node follows it, and the electorate is all of them.
  auto one_cluster = [&](const std::vector<int>& among, std::size_t members) -> std::string {
    std::set<std::string> admins;
    int admins_here = 0;
    for (int i : among) {
      const json s = c.Get(i, "/api/election/status");
      if (!s.is_object() || !s["admin_id"].is_string()) return "";
      if (s["electorate"]["members"].size() != members) return "";
      admins.insert(s["admin_id"].get<std::string>());
      admins_here += s["state"] == "admin" ? 1 : 0;
    }
    return admins.size() == 1 && admins_here == 1 ? *admins.begin() : "";
  };
  std::vector<int> all;
  for (int i = 0; i < kNodes; ++i) all.push_back(i);
  std::string admin;
  ASSERT_TRUE(Eventually([&] { return !(admin = one_cluster(all, kNodes)).empty(); }, 40s))
      << c.Get(0, "/api/election/status").dump() << "\n" << c.Get(1, "/api/election/status").dump();
  int admin_index = -1;
  for (int i : all) {
    if (c.Get(i, "/health")["node_id"] == admin) admin_index = i;
  }
  ASSERT_GE(admin_index, 0);
  EXPECT_EQ(admin_index, 0) << "the founder leads until something happens";

  // kill -9 of the admin: the four others agree on a new one.
  c.nodes[admin_index]->Signal(SIGKILL);
  c.nodes[admin_index]->Wait(5s);
  std::vector<int> survivors;
  for (int i : all) {
    if (i != admin_index) survivors.push_back(i);
  }
  const auto killed = std::chrono::steady_clock::now();
  std::string next;
  ASSERT_TRUE(Eventually(
      [&] {
        next = one_cluster(survivors, kNodes);
        return !next.empty() && next != admin;
      },
      10s));
  std::printf("failover after kill -9 of the admin: %.0f ms (poll granularity ~50 ms)\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed).count());

  // The dead admin is removed from the electorate after the removal time.
  ASSERT_TRUE(Eventually([&] { return !one_cluster(survivors, kNodes - 1).empty(); }, 20s))
      << c.Get(survivors[0], "/api/election/status").dump();

  // The new admin admits the next node: the cluster key travelled with admission.
  int new_admin = -1;
  for (int i : survivors) {
    if (c.Get(i, "/health")["node_id"] == next) new_admin = i;
  }
  ASSERT_GE(new_admin, 0);
  auto t2 = c.Cli({"cluster", "token", "create", "--url", c.Url(new_admin), "--role", "worker"});
  const std::string worker_token = Cluster::TokenIn(t2.second);
  ASSERT_FALSE(worker_token.empty()) << t2.second;
  const int extra = kNodes;
  c.StartNode(extra, false, {"--bootstrap", "127.0.0.1:" + std::to_string(c.Get(new_admin, "/admin/status")["p2p"]["udp_port"].get<int>()),
                         "--join", worker_token});
  ASSERT_TRUE(Eventually([&] { return c.Get(extra, "/health").is_object(); }, 30s)) << ReadFile(c.logs[extra]);
  const json joined = c.Get(extra, "/api/election/status");
  EXPECT_EQ(joined["state"], "observer") << joined.dump();  // a worker never stands

  for (int i : survivors) c.nodes[i]->Signal(SIGTERM);
  c.nodes[extra]->Signal(SIGTERM);
  for (int i : survivors) EXPECT_EQ(c.nodes[i]->Wait(20s), 0);
  EXPECT_EQ(c.nodes[extra]->Wait(20s), 0);
}

TEST(FormationEndToEnd, ThreeNodesWithoutBootstrapExpectFormOneCluster) { FormKillAndRemove(3); }
TEST(FormationEndToEnd, FiveNodesWithoutBootstrapExpectFormOneCluster) { FormKillAndRemove(5); }

}  // namespace
}  // namespace bzzz
