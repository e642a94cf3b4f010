// Three nodes on one PostgreSQL (docs/tasks.md "A shared store: takeover"):
// - the nodes migrate the shared database at once when they start;
// - a node holding a thousand queued tasks is killed with -9: the survivors
//   take its unfinished tasks over within seconds (measured from the kill
//   to the last of its open rows moving), every task ends succeeded with
//   exactly one successful attempt (counted in the stored documents), and
//   any node answers for any task;
// - another node is frozen (SIGSTOP) past its lease while it holds tasks
//   and then thawed: its tasks were taken over, its late writes are
//   refused (bzzz_tasks_fenced_total), it rebuilds and serves on, and still
//   no task succeeds twice;
// - a node asked to cancel or replay another node's task names the owner;
// - the killed node restarts under a new term and reads what it lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "e2e/cluster.h"
#include "support/services.h"

namespace bzzz::e2e {
namespace {

using testing::Eventually;
using testing::PostgresServer;
using testing::ReadFile;

constexpr const char* kDatabase = "bzzz_cluster";
constexpr const char* kOpen = "('queued','assigned','running','failed','retried')";

int Post(const Cluster& c, int node, const std::string& path, const json& body, json* out = nullptr) {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = kAdminToken;
  o.timeout = 5s;
  auto r = cli::Call(o, "POST", path, body.dump());
  if (!r.ok()) return 0;
  if (out) *out = json::parse(r->body, nullptr, false);
  return r->status;
}

// Submits `n` sleeping tasks to `node`; returns the ids accepted (201).
std::vector<std::string> SubmitMany(const Cluster& c, int node, int n, int sleep_ms) {
  std::vector<std::string> ids;
  std::mutex mu;
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        json out;
        const json body = {{"executor", "builtin"}, {"input", {{"op", "sleep"}, {"ms", sleep_ms}}}, {"max_attempts", 10}};
        if (Post(c, node, "/api/v1/tasks", body, &out) == 201) {
          std::lock_guard lock(mu);
          ids.push_back(out["id"]);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return ids;
}

long Count(const PostgresServer& pg, const std::string& where) {
  return std::atol(pg.Sql(std::string("SELECT COUNT(*) FROM tasks WHERE ") + where, kDatabase).c_str());
}

// Tasks whose stored document does not hold exactly one successful attempt
// although they succeeded, or holds more than one whatever their state.
long TwiceOrNever(const PostgresServer& pg) {
  return Count(pg,
               "(SELECT COUNT(*) FROM json_array_elements(doc::json->'attempts') a WHERE a->>'state' = 'succeeded') "
               "<> CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END");
}

TEST(TakeoverEndToEnd, SurvivorsTakeOverTheTasksOfAKilledAndOfAFrozenNodeAndNoTaskSucceedsTwice) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_EQ(pg.CreateDatabase(kDatabase), kDatabase);
  Cluster c;
  c.node_args = {"--bootstrap-expect", "3",
                 "--set", "agents.autoscaling.enabled=false",
                 "--set", "agents.initial_agents=2",
                 "--set", "tasks.lease_duration=2s",
                 "--set", "tasks.owner_lease=1s",
                 "--set", "tasks.retry_backoff_base=50ms",
                 "--set", "tasks.retry_backoff_max=500ms",
                 "--set", "security.rate_limit.enabled=false"};
  for (const auto& a : pg.NodeArgs(kDatabase)) c.node_args.push_back(a);
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i);  // they migrate the empty database at once
  std::vector<std::string> ids(3);
  ASSERT_TRUE(Eventually(
      [&] {
        for (int i = 0; i < 3; ++i) {
          const json s = c.Get(i, "/api/election/status");
          if (!s.is_object() || s["admin_id"].is_null() || s["admin_id"] == "") return false;
          ids[i] = s["node_id"];
        }
        return true;
      },
      40s))
      << ReadFile(c.logs[0]);
  const std::string admin = c.Get(0, "/api/election/status")["admin_id"];
  int admin_index = 0;
  for (int i = 0; i < 3; ++i) admin_index = ids[i] == admin ? i : admin_index;
  const int victim = (admin_index + 1) % 3;
  const int frozen = (admin_index + 2) % 3;

  // ---- kill -9 of a node holding a thousand queued tasks ----
  const std::vector<std::string> first = SubmitMany(c, victim, 1000, 20);
  ASSERT_GE(first.size(), 900u);
  const long held = Count(pg, "node_id = '" + ids[victim] + "' AND state IN " + kOpen);
  c.nodes[victim]->Signal(SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return Count(pg, "node_id = '" + ids[victim] + "' AND state IN " + kOpen) == 0; }, 30s));
  const double takeover_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::fprintf(stderr, "takeover of %ld unfinished tasks: %.2f s after kill -9 (owner_lease 1 s)\n", held, takeover_s);
  EXPECT_LT(takeover_s, 10.0);
  ASSERT_TRUE(Eventually([&] { return Count(pg, "state = 'succeeded'") >= static_cast<long>(first.size()); }, 90s))
      << Count(pg, "state = 'succeeded'") << " of " << first.size();
  EXPECT_EQ(TwiceOrNever(pg), 0);
  // Some finished between the count and the kill: at most `held` moved.
  const double taken = c.Metric(admin_index, "bzzz_tasks_taken_over_total") +
                       c.Metric(frozen, "bzzz_tasks_taken_over_total");
  EXPECT_GT(taken, 0);
  EXPECT_LE(taken, static_cast<double>(held));

  // Any node answers for any task; the listing covers every node.
  const json one = c.Get(admin_index, "/api/v1/tasks/" + first.front());
  ASSERT_TRUE(one.is_object());
  EXPECT_EQ(one.value("state", ""), "succeeded");
  const json all = c.Get(frozen, "/api/v1/tasks?node=all&limit=5");
  ASSERT_TRUE(all.is_object());
  EXPECT_EQ(all["tasks"].size(), 5u);
  EXPECT_TRUE(all["next_before_id"].is_string());
  const json next = c.Get(frozen, "/api/v1/tasks?node=all&limit=5&before_id=" + all["next_before_id"].get<std::string>());
  ASSERT_TRUE(next.is_object());
  EXPECT_EQ(next["tasks"].size(), 5u);
  EXPECT_LT(next["tasks"][0].value("id", ""), all["tasks"][4].value("id", "")) << "the next page is older";
  EXPECT_TRUE(c.Get(frozen, "/api/v1/tasks?node=all&before_id=" + std::string(65, 'x')).is_null()) << "400";

  // Only the owner changes a task: the other node says who owns it, and
  // is not disturbed (no fencing, no rebuild).
  const std::string owner_of_first =
      pg.Sql("SELECT node_id FROM tasks WHERE id = '" + first.front() + "'", kDatabase);
  const int other = ids[admin_index] == owner_of_first ? frozen : admin_index;
  json refusal;
  EXPECT_EQ(Post(c, other, "/api/v1/tasks/" + first.front() + "/cancel", json::object(), &refusal), 409)
      << refusal.dump();
  EXPECT_NE(refusal.dump().find("belongs to node " + owner_of_first), std::string::npos) << refusal.dump();
  EXPECT_EQ(Post(c, other, "/api/v1/dlq/" + first.front() + "/replay", json::object(), &refusal), 409)
      << refusal.dump();
  EXPECT_EQ(c.Metric(other, "bzzz_tasks_fenced_total"), 0);

  // ---- a node frozen past its lease while it holds tasks, then thawed ----
  const std::vector<std::string> second = SubmitMany(c, frozen, 300, 50);
  ASSERT_GE(second.size(), 250u);
  c.nodes[frozen]->Signal(SIGSTOP);
  ASSERT_TRUE(Eventually([&] { return Count(pg, "node_id = '" + ids[frozen] + "' AND state IN " + kOpen) == 0; }, 30s));
  c.nodes[frozen]->Signal(SIGCONT);
  ASSERT_TRUE(Eventually([&] { return c.Metric(frozen, "bzzz_tasks_fenced_total") >= 1; }, 20s))
      << ReadFile(c.logs[frozen]);
  ASSERT_TRUE(Eventually(
      [&] { return Count(pg, "state = 'succeeded'") >= static_cast<long>(first.size() + second.size()); }, 90s));
  EXPECT_EQ(TwiceOrNever(pg), 0);
  // It serves on under its new term.
  json out;
  ASSERT_EQ(Post(c, frozen, "/api/v1/tasks", {{"executor", "builtin"}, {"input", {{"op", "echo"}, {"value", 1}}}}, &out),
            201);
  const std::string after = out["id"];
  ASSERT_TRUE(Eventually([&] {
    const json t = c.Get(frozen, "/api/v1/tasks/" + after);
    return t.is_object() && t.value("state", "") == "succeeded";
  }, 20s));

  // ---- the killed node restarts under a new term and reads what it lost ----
  c.StartNode(victim);
  ASSERT_TRUE(Eventually([&] { return c.Get(victim, "/api/v1/tasks/" + first.back()).is_object(); }, 40s))
      << ReadFile(c.logs[victim]);
  EXPECT_EQ(c.Get(victim, "/api/v1/tasks/" + first.back()).value("state", ""), "succeeded");
  EXPECT_EQ(TwiceOrNever(pg), 0);
  EXPECT_EQ(pg.Sql("SELECT COUNT(*) FROM task_owners", kDatabase), "3");
}

}  // namespace
}  // namespace bzzz::e2e
