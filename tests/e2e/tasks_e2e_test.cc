// Tasks end to end with real processes:
// - 10,000 tasks through a 3-node cluster while a worker node and then the
//   admin are killed with -9 and restarted: every accepted task ends
//   succeeded with exactly one successful attempt, or dead after its
//   attempts when it is meant to fail; repeated idempotency keys name one
//   task; the admin lends work across nodes.
// - Backpressure: 429 with Retry-After, and nothing accepted is lost.
// - The CLI: submit --wait, watch, list, dead-letter replay and purge,
//   idempotency, agents; bad input.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "config/config.h"
#include "e2e/cluster.h"
#include "executors/sandbox.h"

namespace bzzz::e2e {
namespace {

using testing::Eventually;
using testing::ReadFile;

struct Answer {
  int status = 0;
  json body;
  std::string retry_after;
};

Answer Post(const Cluster& c, int node, const std::string& path, const json& body) {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = kAdminToken;
  o.timeout = 5s;
  auto r = cli::Call(o, "POST", path, body.dump());
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false), ""};
}

// Every task a node holds, by id (pages of 1000).
std::map<std::string, json> AllTasks(const Cluster& c, int node) {
  std::map<std::string, json> out;
  std::string before;
  for (;;) {
    const json page = c.Get(node, "/api/v1/tasks?limit=1000" + (before.empty() ? "" : "&before=" + before));
    if (!page.is_object()) return {};
    for (const auto& t : page["tasks"]) out[t["id"].get<std::string>()] = t;
    if (page["next_before"].is_null()) return out;
    before = page["next_before"].dump();
  }
}

bool Settled(const Cluster& c, int node) {
  const json s = c.Get(node, "/api/v1/tasks/stats");
  if (!s.is_object()) return false;
  for (const auto& [state, n] : s["by_state"].items()) {
    if (state != "succeeded" && state != "dead" && state != "cancelled" && n.get<long>() > 0) return false;
  }
  return s["queue_depth"] == 0 && s["in_flight"] == 0;
}

TEST(TasksEndToEnd, TenThousandTasksSurviveKillNineOfAWorkerAndOfTheAdmin) {
  Cluster c;
  c.node_args = {"--bootstrap-expect", "3",           "--set", "agents.autoscaling.enabled=false",
                 "--set", "agents.initial_agents=4",  "--set", "tasks.lease_duration=2s",
                 "--set", "tasks.retry_backoff_base=100ms", "--set", "tasks.retry_backoff_max=1s",
                 "--set", "tasks.default_max_attempts=5",
                 // One client submits as fast as it can: the per-principal rate limit is not under test here.
                 "--set", "security.rate_limit.enabled=false"};
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i);
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
      30s));
  const std::string admin = c.Get(0, "/api/election/status")["admin_id"];
  int admin_index = 0;
  for (int i = 0; i < 3; ++i) admin_index = ids[i] == admin ? i : admin_index;
  const int worker = (admin_index + 1) % 3;
  const int heavy = (admin_index + 2) % 3;  // gets most of the work: it lends to the others
  ASSERT_EQ(Post(c, heavy, "/api/v1/agents/scale", {{"agents", 1}}).status, 200);

  // Submitters: 10,000 tasks spread over the nodes; 3% meant to fail; every
  // 20th reuses the key of an earlier submission.
  constexpr int kTasks = 10600;  // 530 of them repeat a key: over 10,000 distinct tasks
  struct Accepted {
    int node;
    bool fail;
  };
  std::mutex mu;
  std::map<std::string, Accepted> accepted;          // task id → what it is
  std::map<std::string, std::string> key_to_id;      // idempotency key → task id
  std::atomic<int> next{0}, refused{0}, unreachable{0}, repeats_ok{0}, repeats_bad{0};
  auto submit = [&](int t) {
    for (;;) {
      const int i = next++;
      if (i >= kTasks) return;
      const int node = i % 10 < 7 ? heavy : (i + t) % 3;
      const bool fail = i % 33 == 0;
      const bool repeat = i % 20 == 19;
      const std::string key = "key-" + std::to_string(repeat ? i - 19 : i);
      json body = {{"executor", "builtin"}, {"idempotency_key", key}};
      body["input"] = fail ? json{{"op", "fail"}} : (i % 2 == 0 ? json{{"op", "sleep"}, {"ms", 10}} : json{{"op", "echo"}, {"value", i}});
      if (fail) body["max_attempts"] = 2;
      // The key lives on the node that accepted it: repeat it there.
      int target = node;
      if (repeat) {
        std::lock_guard l(mu);
        auto it = key_to_id.find(key);
        if (it == key_to_id.end()) continue;  // the first one was not accepted
        target = accepted.at(it->second).node;
      }
      // A node being killed or restarting does not answer: try the next one
      // (a repeated key only where it lives).
      Answer a;
      for (int attempt = 0; attempt < 40; ++attempt) {
        a = Post(c, target, "/api/v1/tasks", body);
        if (a.status != 0) break;
        ++unreachable;
        if (!repeat) target = (target + 1) % 3;
        std::this_thread::sleep_for(50ms);
      }
      if (a.status == 0) continue;
      if (a.status == 429 || a.status == 503) {
        ++refused;
        continue;
      }
      ASSERT_TRUE(a.status == 201 || a.status == 200) << a.status << " " << a.body.dump();
      const std::string id = a.body["id"];
      std::lock_guard l(mu);
      if (repeat) {
        (a.status == 200 && key_to_id[key] == id ? repeats_ok : repeats_bad)++;
        continue;
      }
      if (a.status != 201) continue;  // a retried first submission after a restart
      accepted[id] = {target, fail};
      key_to_id[key] = id;
    }
  };
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) clients.emplace_back(submit, t);

  // kill -9 of a worker node, then of the admin, each restarted a second later.
  ASSERT_TRUE(Eventually([&] { return next.load() > kTasks * 3 / 10; }, 120s));
  c.nodes[worker]->Signal(SIGKILL);
  c.nodes[worker]->Wait(5s);
  std::this_thread::sleep_for(1s);
  c.StartNode(worker);
  ASSERT_TRUE(Eventually([&] { return next.load() > kTasks * 6 / 10; }, 120s));
  c.nodes[admin_index]->Signal(SIGKILL);
  c.nodes[admin_index]->Wait(5s);
  std::this_thread::sleep_for(1s);
  c.StartNode(admin_index);
  for (auto& t : clients) t.join();
  ASSERT_GE(accepted.size(), 10000u) << "refused " << refused << ", unreachable " << unreachable;
  EXPECT_GT(repeats_ok.load(), 0);
  EXPECT_EQ(repeats_bad.load(), 0);

  // Everything settles; every accepted task is where it was accepted.
  ASSERT_TRUE(Eventually([&] { return Settled(c, 0) && Settled(c, 1) && Settled(c, 2); }, 120s))
      << c.Get(0, "/api/v1/tasks/stats").dump() << c.Get(1, "/api/v1/tasks/stats").dump()
      << c.Get(2, "/api/v1/tasks/stats").dump();
  std::vector<std::map<std::string, json>> held(3);
  for (int i = 0; i < 3; ++i) held[i] = AllTasks(c, i);
  int succeeded = 0, dead = 0, lent = 0;
  for (const auto& [id, what] : accepted) {
    auto it = held[what.node].find(id);
    ASSERT_NE(it, held[what.node].end()) << "accepted task " << id << " was lost";
    const json& t = it->second;
    int successes = 0, counted = 0;
    for (const auto& a : t["attempts"]) {
      successes += a["state"] == "succeeded";
      counted += a["state"] == "failed" || a["state"] == "lost" || a["state"] == "timed_out";
      lent += a["agent_id"].get<std::string>().rfind("remote:", 0) == 0;
    }
    if (what.fail) {
      EXPECT_EQ(t["state"], "dead") << t.dump();
      EXPECT_EQ(successes, 0);
      EXPECT_EQ(counted, 2) << t.dump();
      ++dead;
    } else {
      EXPECT_EQ(t["state"], "succeeded") << t.dump();
      EXPECT_EQ(successes, 1) << t.dump();
      ++succeeded;
    }
  }
  EXPECT_GT(lent, 0) << "the admin never lent work across nodes";
  std::cout << "accepted " << accepted.size() << " (succeeded " << succeeded << ", dead " << dead << "), refused "
            << refused << ", unreachable " << unreachable << ", repeated keys " << repeats_ok << ", attempts run on "
            << "another node " << lent << "\n";
  for (int i = 0; i < 3; ++i) {
    const json st = c.Get(i, "/admin/status");
    if (st.is_object()) std::cout << "node " << i << " cluster " << st["tasks"]["cluster"].dump() << "\n";
  }
}

TEST(TasksEndToEnd, BackpressureAnswers429WithRetryAfterAndLosesNothing) {
  Cluster c;
  c.StartNode(0, false,
              {"--set", "tasks.max_queue_depth=20", "--set", "agents.initial_agents=1", "--set",
               "agents.autoscaling.enabled=false"});
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 20s));
  std::vector<std::string> ok;
  int limited = 0;
  for (int i = 0; i < 120; ++i) {
    cli::ClientOptions o;
    o.url = c.Url(0);
    o.token = kAdminToken;
    auto r = cli::Call(o, "POST", "/api/v1/tasks", R"({"executor":"builtin","input":{"op":"sleep","ms":30}})");
    ASSERT_TRUE(r.ok());
    if (r->status == 201) {
      ok.push_back(json::parse(r->body)["id"]);
    } else {
      ASSERT_EQ(r->status, 429) << r->body;
      EXPECT_EQ(json::parse(r->body)["error"]["code"], "too_many_requests");
      ++limited;
    }
  }
  EXPECT_GT(limited, 0);
  ASSERT_TRUE(Eventually([&] { return Settled(c, 0); }, 60s));
  for (const auto& id : ok) EXPECT_EQ(c.Get(0, "/api/v1/tasks/" + id)["state"], "succeeded") << id;
  // The Retry-After header is there (raw request).
  std::string raw;
  for (int i = 0; i < 40 && raw.find(" 429 ") == std::string::npos; ++i) {
    const std::string body = R"({"executor":"builtin","input":{"op":"sleep","ms":30}})";
    raw = testing::RawExchange(c.http[0], "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                              std::string(kAdminToken) + "\r\nContent-Type: application/json\r\n"
                                              "Content-Length: " + std::to_string(body.size()) +
                                              "\r\nConnection: close\r\n\r\n" + body);
  }
  EXPECT_NE(raw.find("Retry-After: 1"), std::string::npos) << raw;
}

TEST(TasksEndToEnd, CliSubmitWatchDeadLetterReplayPurgeAndBadInput) {
  Cluster c;
  c.StartNode(0, false, {"--set", "tasks.retry_backoff_base=50ms"});
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 20s));
  const std::string url = c.Url(0);
  auto [code, out] = c.Cli({"task", "submit", "--url", url, "-e", "builtin", "-i", R"({"op":"echo","value":"hi"})", "--wait"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("succeeded"), std::string::npos) << out;
  EXPECT_NE(out.find("\"value\":\"hi\""), std::string::npos) << out;

  auto [c1, o1] = c.Cli({"task", "submit", "--url", url, "-e", "builtin", "-i", R"({"op":"echo"})", "-k", "same"});
  auto [c2, o2] = c.Cli({"task", "submit", "--url", url, "-e", "builtin", "-i", R"({"op":"echo"})", "-k", "same"});
  ASSERT_EQ(c1, 0);
  ASSERT_EQ(c2, 0);
  EXPECT_EQ(o1.substr(0, 22), o2.substr(0, 22));  // same task id

  auto [cf, of] = c.Cli({"task", "submit", "--url", url, "-e", "builtin", "-i", R"({"op":"fail","message":"nope"})",
                         "--max-attempts", "2", "--wait"});
  EXPECT_EQ(cf, 1) << of;
  EXPECT_NE(of.find("dead"), std::string::npos) << of;
  const json dlq = c.Get(0, "/api/v1/dlq");
  ASSERT_EQ(dlq["tasks"].size(), 1u) << dlq.dump();
  const std::string dead = dlq["tasks"][0]["id"];
  auto [cr, orr] = c.Cli({"dlq", "replay", "--url", url, dead});
  EXPECT_EQ(cr, 0) << orr;
  auto [cw, ow] = c.Cli({"task", "watch", "--url", url, dead});
  EXPECT_EQ(cw, 1) << ow;  // it fails again
  EXPECT_NE(ow.find("replayed"), std::string::npos) << ow;
  EXPECT_EQ(c.Get(0, "/api/v1/tasks/" + dead)["attempts"].size(), 4u);
  auto [cp, op] = c.Cli({"dlq", "purge", "--url", url, dead});
  EXPECT_EQ(cp, 0) << op;
  EXPECT_TRUE(c.Get(0, "/api/v1/tasks/" + dead).is_null());

  // Bad input: a clear 400 and nothing stored.
  const json before = c.Get(0, "/api/v1/tasks/stats");
  for (const std::string bad : {R"({"executor":"builtin","input":{"op":"nope"}})", R"({"executor":"warp"})",
                                R"({"input":{}})", R"({"executor":"builtin","input":{"op":"echo"},"extra":1})",
                                R"({"executor":"builtin","priority":"high"})", "[1,2]", "{not json",
                                R"({"executor":"command","input":{"argv":["ls"],"network":true}})"}) {
    cli::ClientOptions o;
    o.url = url;
    o.token = kAdminToken;
    auto r = cli::Call(o, "POST", "/api/v1/tasks", bad);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << bad << " → " << r->body;
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "bad_request") << r->body;
  }
  EXPECT_EQ(c.Get(0, "/api/v1/tasks/stats")["by_state"], before["by_state"]);
  EXPECT_TRUE(c.Get(0, "/api/v1/tasks?state=nope").is_null());
  EXPECT_TRUE(c.Get(0, "/api/v1/tasks/t-missing").is_null());

  // The agent pool: list and scale.
  auto [ca, oa] = c.Cli({"agents", "scale", "--url", url, "3"});
  EXPECT_EQ(ca, 0) << oa;
  EXPECT_EQ(c.Get(0, "/api/v1/agents")["summary"]["size"], 3);
  const json checks = c.Get(0, "/health/checks");
  // Degraded only where the command sandbox cannot start (no unprivileged
  // user namespaces), and then saying so.
  const Status sandbox = executors::Sandbox(config::SandboxConfig{}, c.dir.File("probe")).Probe();
  EXPECT_EQ(checks["checks"]["agent-pool"]["status"], sandbox.ok() ? "healthy" : "degraded") << checks.dump();
  if (!sandbox.ok()) {
    EXPECT_NE(checks["checks"]["agent-pool"].value("message", "").find("command and llm tasks cannot run"),
              std::string::npos)
        << checks.dump();
  }
  // Metrics of SPEC §3.6 exist.
  cli::ClientOptions o;
  o.url = url;
  auto m = cli::Call(o, "GET", "/metrics");
  ASSERT_TRUE(m.ok());
  for (const char* name : {"no_agent_pool_size", "no_agent_pool_active", "no_agent_pool_idle", "no_agent_pool_failed",
                           "no_agent_pool_healthy_ratio", "no_loop_iteration_duration_seconds", "no_task_queue_depth",
                           "no_loop_efficiency_ratio", "no_agent_performance_score", "no_tasks_total",
                           "no_task_latency_seconds"}) {
    EXPECT_NE(m->body.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace bzzz::e2e
