// HMMM end to end (docs/hmmm.md): two nodes on one PostgreSQL. A room is
// opened on node 0 with the CLI; node 1 reads it from the shared store and
// forwards its agents' posts to the owner over a signed direct message
// (recorded with node 1's verified id); a plan is agreed and decided when
// its window closes; node 0 is restarted and its room goes on from where
// it was; a keyword escalates another room and an operator resolves it
// with the CLI; a long poll sees a message as it is accepted.
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <thread>

#include "e2e/cluster.h"
#include "support/services.h"

namespace bzzz::e2e {
namespace {

using testing::Eventually;
using testing::PostgresServer;
using testing::ReadFile;

struct Reply {
  int status = 0;
  json body;
};

Reply Call(const Cluster& c, int node, const char* method, const std::string& path, const json& body = nullptr,
           std::chrono::milliseconds timeout = 10s) {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = kAdminToken;
  o.timeout = timeout;
  auto r = cli::Call(o, method, path, body.is_null() ? "" : body.dump());
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false)};
}

TEST(HmmmEndToEnd, RoomsAcrossTwoNodesDecideEscalateResolveAndSurviveARestart) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_EQ(pg.CreateDatabase("bzzz_hmmm"), "bzzz_hmmm");
  Cluster c;
  c.node_args = {"--set", "security.rate_limit.enabled=false",
                 "--set", "storage.backend=postgres",
                 "--set", "storage.postgres.host=127.0.0.1",
                 "--set", "storage.postgres.port=" + std::to_string(pg.port()),
                 "--set", "storage.postgres.database=bzzz_hmmm",
                 "--set", "storage.postgres.user=postgres",
                 "--set", "storage.postgres.sslmode=disable",
                 "--set", "storage.pool.min_connections=1",
                 "--set", "storage.pool.max_connections=4",
                 "--set", "hmmm.objection_window=1s",
                 "--set", "hmmm.escalation_keywords=stuck,manual intervention"};
  c.StartBootstrap();
  for (int i = 0; i < 2; ++i) c.StartNode(i);
  std::vector<std::string> ids(2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Eventually([&] { return Call(c, i, "GET", "/health/ready").status == 200; }, 40s)) << ReadFile(c.logs[i]);
    ids[i] = Call(c, i, "GET", "/health/detailed").body.value("node_id", "");
  }
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) >= 1 && c.Peers(1) >= 1; }, 20s));

  // Opened with the CLI on node 0, as a task's room.
  auto [oc, out] = c.Cli({"hmmm", "open", "--url", c.Url(0), "--task", "t-build-7", "--project", "bzzz", "--title",
                          "the build fails", "--agent", "asker", "attempts 1-3: missing header"});
  ASSERT_EQ(oc, 0) << out;
  EXPECT_NE(out.find("room      t-build-7 (open)"), std::string::npos) << out;

  // Node 1 reads it from the shared store and forwards its agents' posts.
  const Reply seen = Call(c, 1, "GET", "/api/v1/hmmm/rooms/t-build-7");
  ASSERT_EQ(seen.status, 200) << seen.body.dump();
  EXPECT_EQ(seen.body["owner"], ids[0]);
  EXPECT_EQ(seen.body["owned"], false);
  const Reply fwd = Call(c, 1, "POST", "/api/v1/hmmm/rooms/t-build-7/messages",
                         {{"type", "plan_proposed"}, {"agent", "planner"}, {"id", "plan-1"}, {"body", "vendor the header"}});
  ASSERT_EQ(fwd.status, 202) << fwd.body.dump();
  EXPECT_EQ(fwd.body["forwarded_to"], ids[0]);
  json plan;
  ASSERT_TRUE(Eventually([&] {
    const Reply r = Call(c, 0, "GET", "/api/v1/hmmm/rooms/t-build-7");
    for (const auto& m : r.body["messages"]) {
      if (m["id"] == "plan-1") plan = m;
    }
    return plan.is_object();
  }, 10s));
  EXPECT_EQ(plan["node"], ids[1]) << "the forwarding node, as its signature proves";
  EXPECT_EQ(plan["hop_count"], 1);
  EXPECT_EQ(plan["agent"], "planner");

  // A long poll on node 0 sees the agreement as it is accepted.
  auto poll = std::async(std::launch::async, [&] {
    return Call(c, 0, "GET", "/api/v1/hmmm/rooms/t-build-7/messages?after=" + std::to_string(plan["seq"].get<int>()) +
                                 "&wait_ms=10000", nullptr, 15s);
  });
  std::this_thread::sleep_for(200ms);
  const Reply agree = Call(c, 0, "POST", "/api/v1/hmmm/rooms/t-build-7/messages",
                           {{"type", "agreement"}, {"agent", "asker"}, {"in_reply_to", "plan-1"}});
  ASSERT_EQ(agree.status, 201) << agree.body.dump();
  const Reply polled = poll.get();
  ASSERT_EQ(polled.status, 200);
  ASSERT_GE(polled.body["messages"].size(), 1u);
  EXPECT_EQ(polled.body["messages"][0]["type"], "agreement");

  // The window closes: decided (2 of 2 participants agree).
  ASSERT_TRUE(Eventually([&] { return Call(c, 1, "GET", "/api/v1/hmmm/rooms/t-build-7").body.value("state", "") == "decided"; }, 10s));
  const Reply decided = Call(c, 0, "GET", "/api/v1/hmmm/rooms/t-build-7");
  EXPECT_EQ(decided.body["messages"].back()["type"], "decision");
  EXPECT_EQ(decided.body["messages"].back()["in_reply_to"], "plan-1");
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/t-build-7/messages", {{"type", "help_response"}, {"agent", "late"}}).status,
            409);

  // A free room that escalates on a keyword; the owner restarts; an
  // operator resolves it with the CLI after the restart.
  const Reply free = Call(c, 0, "POST", "/api/v1/hmmm/rooms",
                          {{"title", "flaky deploy"}, {"seed", {{"type", "help_request"}, {"agent", "asker"}, {"body", "deploys time out"}}}});
  ASSERT_EQ(free.status, 201) << free.body.dump();
  const std::string room = free.body["id"];
  ASSERT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + room + "/messages",
                 {{"type", "help_response"}, {"agent", "helper"}, {"body", "this needs Manual Intervention"}}).status, 201);
  EXPECT_EQ(Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + room).body["escalation"], "keyword");
  c.nodes[0]->Signal(SIGTERM);
  c.nodes[0]->Wait(30s);
  c.StartNode(0);
  ASSERT_TRUE(Eventually([&] { return Call(c, 0, "GET", "/health/ready").status == 200; }, 40s)) << ReadFile(c.logs[0]);
  const Reply after = Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + room);
  EXPECT_EQ(after.body["state"], "escalated");
  EXPECT_EQ(after.body["owned"], true);
  EXPECT_EQ(Call(c, 1, "POST", "/api/v1/hmmm/rooms/" + room + "/resolve", {{"kind", "answer"}}).status, 409)
      << "only the owner resolves";
  auto [rc, rout] = c.Cli({"hmmm", "resolve", "--url", c.Url(0), room, "--kind", "retry", "--input",
                           R"({"timeout_s": 600})", "raise the timeout"});
  ASSERT_EQ(rc, 0) << rout;
  EXPECT_NE(rout.find("(resolved)"), std::string::npos) << rout;
  auto [lc, lout] = c.Cli({"hmmm", "rooms", "--url", c.Url(1), "--state", "resolved"});
  ASSERT_EQ(lc, 0) << lout;
  EXPECT_NE(lout.find(room), std::string::npos) << lout;

  // Metrics on the owner (since its restart).
  EXPECT_EQ(c.Metric(0, "bzzz_hmmm_rooms{state=\"resolved\"}"), 1);
  EXPECT_EQ(c.Metric(0, "bzzz_hmmm_decisions_total{kind=\"resolution\"}"), 1);
}

}  // namespace
}  // namespace bzzz::e2e
