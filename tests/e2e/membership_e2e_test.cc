// End-to-end membership (docs/security.md): a node founds its cluster, others
// join with tokens the way an operator starts them, and what is refused is
// refused at once with a line that says why: no credential with bootstrap
// peers, a forged token, an expired one, a reused one-time token; a revoked
// member is dropped by the others within seconds, and the work it had
// borrowed runs again elsewhere.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <thread>

#include "cli/client.h"
#include "e2e/cluster.h"
#include "support/support.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ReadFile;
using e2e::Cluster;

std::string Token(Cluster& c, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"cluster", "token", "create", "--url", c.Url(0)};
  args.insert(args.end(), extra.begin(), extra.end());
  auto out = c.Cli(args);
  EXPECT_EQ(out.first, 0) << out.second;
  return Cluster::TokenIn(out.second);
}

TEST(MembershipEndToEnd, JoinRefuseAndRevoke) {
  Cluster c;
  const std::string seed = "127.0.0.1:" + std::to_string(c.bootstrap_port);
  // The first node has no bootstrap peers: it founds the cluster.
  c.StartNode(0, /*with_bootstrap=*/false, {"--set", "p2p.listen=" + seed});
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 15s)) << ReadFile(c.logs[0]);
  const json founder = c.Get(0, "/api/v1/cluster");
  ASSERT_TRUE(founder.is_object());
  EXPECT_EQ(founder["founder"], true);
  EXPECT_EQ(founder["authority"], true);
  EXPECT_EQ(founder["role"], "admin-capable");
  EXPECT_NE(ReadFile(c.logs[0]).find("bzzz cluster token create"), std::string::npos);

  // Bootstrap peers but no credential: refuses to start, says how to join.
  c.StartNode(1, false, {"--bootstrap", seed});
  EXPECT_NE(c.nodes[1]->Wait(20s), 0);
  EXPECT_NE(ReadFile(c.logs[1]).find("--join TOKEN"), std::string::npos) << ReadFile(c.logs[1]);

  // A forged token (one character changed) is refused before anything starts.
  const std::string token = Token(c, {"--role", "worker", "--uses", "1"});
  ASSERT_FALSE(token.empty());
  std::string forged = token;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  c.StartNode(2, false, {"--bootstrap", seed, "--join", forged});
  EXPECT_NE(c.nodes[2]->Wait(20s), 0);
  EXPECT_NE(ReadFile(c.logs[2]).find("join_token"), std::string::npos) << ReadFile(c.logs[2]);

  // An expired token is refused too.
  const std::string expired = Token(c, {"--ttl", "1ms"});
  std::this_thread::sleep_for(50ms);
  c.StartNode(3, false, {"--bootstrap", seed, "--join", expired});
  EXPECT_NE(c.nodes[3]->Wait(20s), 0);
  EXPECT_NE(ReadFile(c.logs[3]).find("expired"), std::string::npos) << ReadFile(c.logs[3]);

  // Bad requests for tokens and revocations are refused and create nothing.
  {
    cli::ClientOptions o;
    o.url = c.Url(0);
    o.token = e2e::kAdminToken;
    for (const char* body : {R"({"role":"king"})", R"({"uses":0})", R"({"uses":-1})", R"({"ttl":"forever"})",
                             R"({"ttl":"0s"})", R"({"bogus":1})", R"([1,2])", "{not json"}) {
      auto r = cli::Call(o, "POST", "/api/v1/cluster/tokens", body);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->status, 400) << body << " " << r->body;
    }
    const std::string self = c.Get(0, "/health")["node_id"];
    for (const std::string& body :
         {std::string(R"({"node_id":"not-hex"})"), std::string(R"({"node_id":")") + self + R"("})",
          std::string(R"({"reason":"x"})"), std::string("{")}) {
      auto r = cli::Call(o, "POST", "/api/v1/cluster/revoke", body);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->status, 400) << body << " " << r->body;
    }
    EXPECT_TRUE(c.Get(0, "/api/v1/cluster/members")["revoked"].empty());
    // Without the permission: 401 anonymous.
    cli::ClientOptions anonymous;
    anonymous.url = c.Url(0);
    auto denied = cli::Call(anonymous, "POST", "/api/v1/cluster/tokens", "{}");
    ASSERT_TRUE(denied.ok());
    EXPECT_EQ(denied->status, 401);
  }

  // The valid one-time token admits one node, which becomes a peer.
  c.StartNode(4, false, {"--bootstrap", seed, "--join", token});
  ASSERT_TRUE(Eventually([&] { return c.Get(4, "/health").is_object(); }, 30s)) << ReadFile(c.logs[4]);
  const json joined = c.Get(4, "/api/v1/cluster");
  EXPECT_EQ(joined["cluster_id"], founder["cluster_id"]);
  EXPECT_EQ(joined["role"], "worker");
  EXPECT_EQ(joined["authority"], false);
  const std::string id4 = c.Get(4, "/health")["node_id"];
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 1 && c.Peers(4) == 1; }, 15s));

  // The same token again, for another node: refused by the admin.
  c.StartNode(5, false, {"--bootstrap", seed, "--join", token});
  EXPECT_NE(c.nodes[5]->Wait(40s), 0);
  EXPECT_NE(ReadFile(c.logs[5]).find("used 1 time(s) of 1"), std::string::npos) << ReadFile(c.logs[5]);

  // A restart needs no token: the credential is kept.
  c.nodes[4]->Signal(SIGTERM);
  EXPECT_EQ(c.nodes[4]->Wait(15s), 0);
  c.StartNode(4, false, {"--bootstrap", seed});
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 1; }, 20s)) << ReadFile(c.logs[4]);

  // Members are listed; revocation drops node 4 from node 0's peers at once
  // and node 4 stops being a peer everywhere.
  auto members = c.Cli({"cluster", "members", "--url", c.Url(0)});
  EXPECT_EQ(members.first, 0) << members.second;
  EXPECT_NE(members.second.find(id4), std::string::npos) << members.second;
  auto revoked = c.Cli({"cluster", "revoke", id4, "--reason", "test", "--url", c.Url(0)});
  EXPECT_EQ(revoked.first, 0) << revoked.second;
  EXPECT_TRUE(Eventually([&] { return c.Peers(0) == 0; }, 5s));
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(c.Peers(0), 0u) << "a revoked node is a peer again";
  const json list = c.Get(0, "/api/v1/cluster/members");
  bool marked = false;
  for (const auto& m : list["members"]) marked |= m["node_id"] == id4 && m["revoked"] == true;
  EXPECT_TRUE(marked) << list.dump();
  const std::string metrics = [&] {
    cli::ClientOptions o;
    o.url = c.Url(0);
    o.token = e2e::kAdminToken;
    auto r = cli::Call(o, "GET", "/metrics");
    return r.ok() ? r->body : std::string();
  }();
  EXPECT_NE(metrics.find("no_security_violations_total{kind=\"p2p_revoked\"}"), std::string::npos);

  // A node of another cluster on the same network (same network id, a
  // bootstrap peer of this one): refused, and reported as two clusters.
  const json p2p_status = c.Get(0, "/admin/status")["p2p"];
  const std::string network_id = std::to_string(p2p_status["network_id"].get<std::uint64_t>());
  auto init = c.Cli({"cluster", "init", "--data-dir", c.dir.File("n6")});
  ASSERT_EQ(init.first, 0) << init.second;
  c.StartNode(6, false, {"--bootstrap", seed, "--set", "p2p.network_id=" + network_id});
  ASSERT_TRUE(Eventually([&] { return c.Get(6, "/health").is_object(); }, 15s)) << ReadFile(c.logs[6]);
  EXPECT_TRUE(Eventually(
      [&] {
        const json checks = c.Get(0, "/health/detailed");
        return checks.is_object() && checks["checks"]["membership"]["status"] == "unhealthy" &&
               checks["checks"]["membership"]["message"].get<std::string>().find("two clusters") !=
                   std::string::npos;
      },
      20s))
      << c.Get(0, "/health/detailed").dump();
  EXPECT_EQ(c.Peers(0), 0u);

  for (int i : {0, 4, 6}) c.nodes[i]->Signal(SIGTERM);
  for (int i : {0, 4, 6}) c.nodes[i]->Wait(15s);
}


// A worker revoked while it holds borrowed work: the owner refuses its
// renewals and results from then on, so each attempt it held is lost at the
// owner once its lease runs out and runs again on another node; every task
// ends succeeded with one successful attempt, none of them on the revoked
// node after the revocation.
TEST(MembershipEndToEnd, WorkOfARevokedWorkerRunsElsewhere) {
  Cluster c;
  c.node_args = {"--bootstrap-expect", "3", "--set", "agents.autoscaling.enabled=false",
                 "--set", "agents.initial_agents=2", "--set", "tasks.lease_duration=2s",
                 "--set", "tasks.retry_backoff_base=100ms", "--set", "tasks.retry_backoff_max=500ms"};
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i);
  std::vector<std::string> ids;
  std::string admin;
  ASSERT_TRUE(c.AwaitAdmin(3, ids, admin, 30s));
  int owner = 0;
  for (int i = 0; i < 3; ++i) owner = ids[i] == admin ? i : owner;
  cli::ClientOptions o;
  o.url = c.Url(owner);
  o.token = e2e::kAdminToken;
  auto scaled = cli::Call(o, "POST", "/api/v1/agents/scale", R"({"agents":1})");
  ASSERT_TRUE(scaled.ok() && scaled->status == 200) << (scaled.ok() ? scaled->body : "");

  // More work than the owner's one agent can do: the admin lends it out.
  std::vector<std::string> tasks;
  for (int i = 0; i < 16; ++i) {
    auto r = cli::Call(o, "POST", "/api/v1/tasks",
                       json{{"executor", "builtin"}, {"input", {{"op", "sleep"}, {"ms", 1500}}}}.dump());
    ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : "");
    tasks.push_back(json::parse(r->body)["id"]);
  }
  // The worker revoked is the first that borrows (one grant may take all).
  std::string lent_to;
  ASSERT_TRUE(Eventually(
      [&] {
        for (const auto& id : tasks) {
          const json agent = c.Get(owner, "/api/v1/tasks/" + id)["assigned_agent"];
          if (agent.is_string() && agent.get<std::string>().rfind("remote:", 0) == 0) {
            lent_to = agent;
            return true;
          }
        }
        return false;
      },
      20s))
      << "nothing was lent";
  int revoked = -1;
  for (int i = 0; i < 3; ++i) revoked = "remote:" + ids[i] == lent_to ? i : revoked;
  ASSERT_NE(revoked, -1) << lent_to;
  ASSERT_NE(revoked, owner);
  auto r = cli::Call(o, "POST", "/api/v1/cluster/revoke", json{{"node_id", ids[revoked]}, {"reason", "test"}}.dump());
  ASSERT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : "");
  const auto revoked_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();

  ASSERT_TRUE(Eventually(
      [&] {
        for (const auto& id : tasks) {
          if (c.Get(owner, "/api/v1/tasks/" + id)["state"] != "succeeded") return false;
        }
        return true;
      },
      60s))
      << c.Get(owner, "/api/v1/tasks/stats").dump();
  int lost_on_revoked = 0;
  for (const auto& id : tasks) {
    const json t = c.Get(owner, "/api/v1/tasks/" + id);
    int succeeded = 0;
    for (const auto& a : t["attempts"]) {
      if (a["state"] == "succeeded") ++succeeded;
      if (a["agent_id"] != lent_to) continue;
      if (a["state"] == "lost") ++lost_on_revoked;
      // A result the revoked node sends is refused from the moment the
      // revocation reached the owner (within a second here), and nothing
      // is lent to it after.
      if (a["state"] == "succeeded") {
        EXPECT_LT(a["finished_ms"].get<std::int64_t>(), revoked_ms + 1000) << t.dump();
      }
      EXPECT_LT(a["assigned_ms"].get<std::int64_t>(), revoked_ms + 1000) << t.dump();
    }
    EXPECT_EQ(succeeded, 1) << t.dump();
  }
  EXPECT_GT(lost_on_revoked, 0) << "the revoked node's attempts were not retried";

  for (auto& n : c.nodes) n->Signal(SIGTERM);
  for (auto& n : c.nodes) n->Wait(15s);
  c.bootstrap->Signal(SIGTERM);
  c.bootstrap->Wait(15s);
}

}  // namespace
}  // namespace bzzz
