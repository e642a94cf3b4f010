// HMMM end to end (docs/hmmm.md): two nodes on one PostgreSQL. A free room
// is opened on node 0 with the CLI; node 1 reads it from the shared store
// and forwards its agents' posts to the owner over a signed direct message
// (recorded with node 1's verified id); a long poll sees a message as it
// is accepted; a plan is agreed and decided when its window closes. A
// failing task's room escalates on a keyword: the task stops (escalated),
// the webhook receives the history, signed; both nodes restart; an operator
// resolves the room with the CLI and a new input, and the task runs again
// to success.
//
// Stuck agents ask for help: three nodes on their own SQLite stores, each
// with its own local model server (node 2's speaks the OpenAI protocol).
// An llm task on node 0 fails the same command until it asks; the nodes
// with the task's capabilities answer with their own model's reply, and
// the task's next prompt holds the answers.
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "e2e/cluster.h"
#include "executors/sandbox.h"
#include "security/authenticator.h"
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

const std::string kUserToken = "user-token-e2e-hmmm-0000000000001";        // role user: hmmm:read
const std::string kAgentToken = "agent-token-e2e-hmmm-000000000002";      // role suggestion: hmmm:read, hmmm:write

Reply Call(const Cluster& c, int node, const char* method, const std::string& path, const json& body = nullptr,
           std::chrono::milliseconds timeout = 10s, const std::string& token = kAdminToken) {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = token;
  o.timeout = timeout;
  auto r = cli::Call(o, method, path, body.is_null() ? "" : body.dump());
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false)};
}

TEST(HmmmEndToEnd, RoomsAcrossTwoNodesDecideEscalateResolveAndSurviveAClusterRestart) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_EQ(pg.CreateDatabase("bzzz_hmmm"), "bzzz_hmmm");
  std::mutex hook_mu;
  std::vector<json> hooked;
  testing::MiniServer hook([&](const std::string&, const std::string&, const std::string& body) {
    std::lock_guard lock(hook_mu);
    hooked.push_back(json::parse(body, nullptr, false));
    return std::make_pair(200, std::string("{}"));
  });
  Cluster c;
  const std::string config = c.dir.Write(
      "bzzz.yaml", "security:\n  api_tokens:\n    - name: reader\n      token_hash: \"" +
                       security::HashToken(kUserToken) + "\"\n      roles: [user]\n    - name: agent\n      token_hash: \"" +
                       security::HashToken(kAgentToken) + "\"\n      roles: [suggestion]\n");
  c.node_args = {"--config", config,
                 "--set", "security.rate_limit.enabled=false",
                 "--set", "tasks.retry_backoff_base=2s",
                 "--set", "tasks.retry_backoff_max=2s",
                 "--set", "hmmm.escalation_webhook=" + hook.url() + "/escalations",
                 "--set", "hmmm.escalation_webhook_secret=e2e-secret",
                 "--set", "hmmm.objection_window=1s",
                 "--set", "hmmm.escalation_keywords=stuck,manual intervention"};
  for (const auto& a : pg.NodeArgs("bzzz_hmmm")) c.node_args.push_back(a);
  c.StartBootstrap();
  for (int i = 0; i < 2; ++i) c.StartNode(i);
  std::vector<std::string> ids(2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Eventually([&] { return Call(c, i, "GET", "/health/ready").status == 200; }, 40s)) << c.AllLogs();
    ids[i] = Call(c, i, "GET", "/health/detailed").body.value("node_id", "");
  }
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) >= 1 && c.Peers(1) >= 1; }, 20s));

  // A free room opened with the CLI on node 0.
  auto [oc, out] = c.Cli({"hmmm", "open", "--url", c.Url(0), "--project", "bzzz", "--title", "the build fails",
                          "--agent", "asker", "attempts 1-3: missing header"});
  ASSERT_EQ(oc, 0) << out;
  const auto room_at = out.find("room      room-");
  ASSERT_NE(room_at, std::string::npos) << out;
  const std::string free_room = out.substr(room_at + 10, out.find(' ', room_at + 10) - room_at - 10);

  // Node 1 reads it from the shared store and forwards its agents' posts.
  const Reply seen = Call(c, 1, "GET", "/api/v1/hmmm/rooms/" + free_room);
  ASSERT_EQ(seen.status, 200) << seen.body.dump();
  EXPECT_EQ(seen.body["owner"], ids[0]);
  EXPECT_EQ(seen.body["owned"], false);
  // Who may do what: a reader reads and posts nothing; an agent's token
  // posts but does not resolve.
  EXPECT_EQ(Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + free_room, nullptr, 10s, kUserToken).status, 200);
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + free_room + "/messages",
                 {{"type", "help_response"}, {"agent", "reader"}}, 10s, kUserToken).status, 403);
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + free_room + "/resolve", {{"kind", "answer"}}, 10s, kAgentToken).status,
            403);
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + free_room + "/messages",
                 {{"type", "help_response"}, {"agent", "agent-1"}, {"body", "vendoring works here"}}, 10s, kAgentToken).status,
            201);
  // Bad bodies change nothing.
  for (const json& bad : {json{{"type", "help_response"}}, json{{"type", "nope"}, {"agent", "a"}},
                          json{{"type", "help_response"}, {"agent", "a"}, {"extra", 1}},
                          json{{"type", "help_response"}, {"agent", "a"}, {"hop_count", 999}}}) {
    EXPECT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + free_room + "/messages", bad).status, 400) << bad.dump();
  }

  const Reply fwd = Call(c, 1, "POST", "/api/v1/hmmm/rooms/" + free_room + "/messages",
                         {{"type", "plan_proposed"}, {"agent", "planner"}, {"id", "plan-1"}, {"body", "vendor the header"}});
  ASSERT_EQ(fwd.status, 202) << fwd.body.dump();
  EXPECT_EQ(fwd.body["forwarded_to"], ids[0]);
  json plan;
  ASSERT_TRUE(Eventually([&] {
    const Reply r = Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + free_room);
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
    return Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + free_room + "/messages?after=" + std::to_string(plan["seq"].get<int>()) +
                                 "&wait_ms=10000", nullptr, 15s);
  });
  std::this_thread::sleep_for(200ms);
  const Reply agree = Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + free_room + "/messages",
                           {{"type", "agreement"}, {"agent", "asker"}, {"in_reply_to", "plan-1"}});
  ASSERT_EQ(agree.status, 201) << agree.body.dump();
  const Reply polled = poll.get();
  ASSERT_EQ(polled.status, 200);
  ASSERT_GE(polled.body["messages"].size(), 1u);
  EXPECT_EQ(polled.body["messages"][0]["type"], "agreement");

  // The window closes: decided (the proposer and the asker agree, 2 of 3).
  ASSERT_TRUE(Eventually([&] { return Call(c, 1, "GET", "/api/v1/hmmm/rooms/" + free_room).body.value("state", "") == "decided"; }, 10s));
  const Reply decided = Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + free_room);
  EXPECT_EQ(decided.body["messages"].back()["type"], "decision");
  EXPECT_EQ(decided.body["messages"].back()["in_reply_to"], "plan-1");
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + free_room + "/messages", {{"type", "help_response"}, {"agent", "late"}}).status,
            409);

  // A failing task (retried every 2 s) and its room: a keyword escalates
  // the room, and the task stops.
  const Reply task = Call(c, 0, "POST", "/api/v1/tasks",
                          {{"executor", "builtin"}, {"input", {{"op", "fail"}, {"message", "missing header"}}},
                           {"max_attempts", 50}});
  ASSERT_EQ(task.status, 201) << task.body.dump();
  const std::string task_id = task.body["id"];
  EXPECT_EQ(Call(c, 1, "POST", "/api/v1/hmmm/rooms",
                 {{"title", "x"}, {"task_id", task_id}, {"seed", {{"type", "help_request"}, {"agent", "a"}}}}).status,
            409)
      << "a task's room is opened on the task's owner";
  auto [tc, tout] = c.Cli({"hmmm", "open", "--url", c.Url(0), "--task", task_id, "--title", "the build fails",
                           "--agent", "asker", "attempts keep failing: missing header"});
  ASSERT_EQ(tc, 0) << tout;
  ASSERT_EQ(Call(c, 0, "POST", "/api/v1/hmmm/rooms/" + task_id + "/messages",
                 {{"type", "help_response"}, {"agent", "helper"}, {"body", "this needs Manual Intervention"}}).status, 201);
  EXPECT_EQ(Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + task_id).body["escalation"], "keyword");
  ASSERT_TRUE(Eventually([&] { return Call(c, 0, "GET", "/api/v1/tasks/" + task_id).body.value("state", "") == "escalated"; }, 10s));
  const std::size_t attempts = Call(c, 0, "GET", "/api/v1/tasks/" + task_id).body["attempts"].size();
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(hook_mu);
    return !hooked.empty();
  }, 10s)) << "the escalation webhook was called";
  {
    std::lock_guard lock(hook_mu);
    EXPECT_EQ(hooked[0]["task_id"], task_id);
    EXPECT_EQ(hooked[0]["reason"], "keyword");
    EXPECT_GE(hooked[0]["history"].size(), 3u);
  }
  EXPECT_NE(hook.heads()[0].find("X-Bzzz-Signature: sha256="), std::string::npos);

  // The whole cluster restarts (both nodes stop, then start again): the
  // room and the task are still escalated, and the task was not retried
  // meanwhile.
  for (int i : {0, 1}) c.nodes[i]->Signal(SIGTERM);
  for (int i : {0, 1}) c.nodes[i]->Wait(30s);
  std::this_thread::sleep_for(2500ms);
  for (int i : {0, 1}) c.StartNode(i);
  for (int i : {0, 1}) {
    ASSERT_TRUE(Eventually([&] { return Call(c, i, "GET", "/health/ready").status == 200; }, 40s)) << c.AllLogs();
  }
  const Reply after = Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + task_id);
  EXPECT_EQ(after.body["state"], "escalated");
  EXPECT_EQ(after.body["owned"], true);
  const Reply stopped = Call(c, 0, "GET", "/api/v1/tasks/" + task_id);
  EXPECT_EQ(stopped.body["state"], "escalated");
  EXPECT_EQ(stopped.body["attempts"].size(), attempts) << "automation on an escalated task stops";

  // An operator answers with a new input: the task runs again, to success.
  EXPECT_EQ(Call(c, 1, "POST", "/api/v1/hmmm/rooms/" + task_id + "/resolve", {{"kind", "answer"}}).status, 409)
      << "only the owner resolves";
  auto [bad, bout] = c.Cli({"hmmm", "resolve", "--url", c.Url(0), task_id, "--kind", "retry", "--input",
                            R"({"op": "nope"})", "try this"});
  EXPECT_EQ(bad, 1) << "an input the executor refuses: " << bout;
  auto [rc, rout] = c.Cli({"hmmm", "resolve", "--url", c.Url(0), task_id, "--kind", "retry", "--input",
                           R"({"op": "echo", "value": "vendored"})", "vendor the header"});
  ASSERT_EQ(rc, 0) << rout;
  EXPECT_NE(rout.find("(resolved)"), std::string::npos) << rout;
  ASSERT_TRUE(Eventually([&] { return Call(c, 1, "GET", "/api/v1/tasks/" + task_id).body.value("state", "") == "succeeded"; }, 20s));
  EXPECT_EQ(Call(c, 0, "GET", "/api/v1/tasks/" + task_id).body["result"]["value"], "vendored");
  auto [lc, lout] = c.Cli({"hmmm", "rooms", "--url", c.Url(1), "--state", "resolved"});
  ASSERT_EQ(lc, 0) << lout;
  EXPECT_NE(lout.find(task_id), std::string::npos) << lout;

  // Metrics on the owner (since its restart).
  EXPECT_EQ(c.Metric(0, "bzzz_hmmm_rooms{state=\"resolved\"}"), 1);
  EXPECT_EQ(c.Metric(0, "bzzz_hmmm_decisions_total{kind=\"resolution\"}"), 1);
}


// A local model server: a helper's prompt gets a hint naming this server;
// the asking loop runs a failing command until answers are in its prompt,
// then completes with the hints it read there.
class ModelServer {
 public:
  ModelServer(std::string name, bool openai)
      : name_(std::move(name)), openai_(openai), server_([this](const std::string&, const std::string& path, const std::string& body) {
          return Answer(path, body);
        }) {}
  std::string url() const { return server_.url(); }
  std::vector<std::string> prompts() const {
    std::lock_guard lock(mu_);
    return prompts_;
  }

 private:
  std::pair<int, std::string> Answer(const std::string& path, const std::string& body) {
    if (path == "/api/tags") return {200, R"({"models":[{"name":"llama3"}]})"};
    if (path == "/v1/models") return {200, R"({"object":"list","data":[{"id":"llama3"}]})"};
    const json req = json::parse(body, nullptr, false);
    if (!req.is_object() || !req.contains("messages")) return {400, "{}"};
    std::string prompt;
    for (const auto& m : req["messages"]) prompt += m.value("content", "") + "\n";
    {
      std::lock_guard lock(mu_);
      prompts_.push_back(prompt);
    }
    std::string reply;
    if (prompt.find("Another agent working on a task") != std::string::npos) {
      reply = "The tool is missing here.\n```sh\ntrue\n```\nHINT-" + name_;
    } else if (const auto at = prompt.find("Their answers:"); at != std::string::npos) {
      reply = "TASK_COMPLETE fixed with";
      for (auto h = prompt.find("HINT-", at); h != std::string::npos; h = prompt.find("HINT-", h + 1)) {
        reply += " " + prompt.substr(h, prompt.find_first_of(" \n", h) - h);
      }
    } else {
      reply = "```sh\nfalse\n```";
    }
    if (openai_) {
      return {200, json{{"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", reply}}}}}}}.dump()};
    }
    return {200, json{{"model", "llama3"}, {"message", {{"role", "assistant"}, {"content", reply}}}, {"done", true}}.dump()};
  }

  std::string name_;
  bool openai_;
  mutable std::mutex mu_;
  std::vector<std::string> prompts_;
  testing::MiniServer server_;
};

TEST(HmmmEndToEnd, AStuckLlmTaskAsksTheOtherNodesAndTheirModelsAnswer) {
  testing::TempDir probe;
  if (Status sandbox = executors::Sandbox(config::SandboxConfig{}, probe.File("probe")).Probe(); !sandbox.ok()) {
    GTEST_SKIP() << "the command sandbox cannot start here: " << sandbox.ToString();
  }
  std::vector<std::unique_ptr<ModelServer>> models;
  for (int i = 0; i < 3; ++i) models.push_back(std::make_unique<ModelServer>("n" + std::to_string(i), i == 2));
  Cluster c;
  c.node_args = {"--set", "security.rate_limit.enabled=false", "--set", "hmmm.help_answers=2",
                 "--set", "agents.llm.stuck_repeats=3", "--set", "agents.llm.help_wait=20s"};
  const std::vector<std::string> capabilities = {"gpu,python", "gpu,python", "gpu"};
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) {
    c.StartNode(i, true, {"--set", "agents.llm.endpoint=" + models[i]->url(), "--set",
                          std::string("agents.llm.api=") + (i == 2 ? "openai" : "ollama"), "--set",
                          "node.capabilities=" + capabilities[i]});
  }
  std::vector<std::string> ids(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Eventually([&] { return Call(c, i, "GET", "/health/ready").status == 200; }, 40s)) << c.AllLogs();
    ids[i] = Call(c, i, "GET", "/health/detailed").body.value("node_id", "");
  }
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) >= 2 && c.Peers(1) >= 2 && c.Peers(2) >= 2; }, 30s));

  const auto run = [&](const std::string& prompt, const std::vector<std::string>& needs) {
    const Reply created = Call(c, 0, "POST", "/api/v1/tasks",
                               {{"executor", "llm"},
                                {"capabilities", needs},
                                {"max_attempts", 1},
                                {"timeout_ms", 60000},
                                {"input", {{"prompt", prompt}, {"max_iterations", 6}}}});
    EXPECT_EQ(created.status, 201) << created.body.dump();
    const std::string id = created.body.value("id", "");
    json task;
    EXPECT_TRUE(Eventually([&] {
      task = Call(c, 0, "GET", "/api/v1/tasks/" + id).body;
      const std::string state = task.value("state", "");
      return state == "succeeded" || state == "dead" || state == "failed";
    }, 60s)) << task.dump();
    return task;
  };

  // Every node has "gpu": nodes 1 and 2 answer, each with its own model.
  const json gpu = run("make the build pass on the gpu box", {"gpu"});
  ASSERT_EQ(gpu.value("state", ""), "succeeded") << gpu.dump() << ReadFile(c.logs[0]);
  ASSERT_EQ(gpu["owner_node"], ids[0]) << "the task ran where it was submitted";
  const json result = gpu["result"];
  const std::string answer = result.value("answer", "");
  EXPECT_NE(answer.find("HINT-n1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("HINT-n2"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("HINT-n0"), std::string::npos) << "the asking node does not answer itself";
  EXPECT_EQ(result["help_requests"], 1);

  // The room holds the request and the two answers, from the verified nodes.
  const Reply room = Call(c, 0, "GET", "/api/v1/hmmm/rooms/" + gpu["id"].get<std::string>());
  ASSERT_EQ(room.status, 200) << room.body.dump();
  EXPECT_EQ(room.body["state"], "open");
  std::string request;
  std::set<std::string> answered_by;
  for (const auto& m : room.body["messages"]) {
    if (m["type"] == "help_request") {
      request = m["id"];
      EXPECT_EQ(m["node"], ids[0]);
      EXPECT_NE(m["body"].get<std::string>().find("the same command failed 3 times: false"), std::string::npos) << m.dump();
    } else if (m["type"] == "help_response") {
      EXPECT_EQ(m["in_reply_to"], request);
      EXPECT_EQ(m["agent"], "llm-helper");
      EXPECT_EQ(m["hop_count"], 1);
      answered_by.insert(m["node"].get<std::string>());
    }
  }
  EXPECT_EQ(answered_by, (std::set<std::string>{ids[1], ids[2]})) << room.body.dump();
  // Each helper's answer came from its own model call, on its protocol.
  for (int i : {1, 2}) {
    const auto prompts = models[i]->prompts();
    ASSERT_EQ(prompts.size(), 1u) << "node " << i;
    EXPECT_NE(prompts[0].find("make the build pass on the gpu box"), std::string::npos) << prompts[0];
  }

  // Only node 1 has "python": node 2 skips the request.
  const json py = run("port the script to python 3", {"python"});
  ASSERT_EQ(py.value("state", ""), "succeeded") << py.dump() << ReadFile(c.logs[0]);
  EXPECT_EQ(py["result"].value("answer", ""), "fixed with HINT-n1");
  EXPECT_EQ(models[2]->prompts().size(), 1u);
  EXPECT_EQ(c.Metric(0, "bzzz_hmmm_help_requests_total{result=\"answered\"}"), 2);
  EXPECT_EQ(c.Metric(1, "bzzz_hmmm_help_answers_total{result=\"answered\"}"), 2);
  EXPECT_EQ(c.Metric(2, "bzzz_hmmm_help_answers_total{result=\"answered\"}"), 1);
  EXPECT_GE(c.Metric(2, "bzzz_hmmm_help_answers_total{result=\"skipped\"}"), 1);
}

}  // namespace
}  // namespace bzzz::e2e
