// The HMMM service on a real SQLite store: rooms persisted before the call
// returns and reloaded after a restart, refusals as statuses and counted,
// time closing windows (injected clock), long polls, resolution, and a
// post for another node's room without a P2P node to forward it.
#include "hmmm/service.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <future>
#include <thread>
#include <nlohmann/json.hpp>

#include "security/authenticator.h"
#include "storage/sqlite/sqlite.h"
#include "support/support.h"

namespace bzzz::hmmm {
namespace {

using namespace std::chrono_literals;

class HmmmServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::sqlite::SqliteOptions so;
    so.path = dir_.File("bzzz.db");
    auto opened = storage::sqlite::Open(so);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    storage_ = std::move(*opened);
    ASSERT_TRUE(storage_.store->Migrate().ok());
    config_.hmmm.objection_window = 1000ms;
    config_.hmmm.escalation_keywords = {"stuck"};
    Restart();
  }

  void Restart() {
    if (svc_) svc_->Stop();
    svc_.reset();
    HmmmService::Options o;
    o.config = config_;
    o.node_id = "node-a";
    o.store = storage_.hmmm;
    o.metrics = &registry_;
    o.now = [this] { return now_.load(); };
    o.ticker = false;
    o.check_task = check_task_;
    o.escalate_task = escalate_task_;
    o.resume_task = resume_task_;
    o.webhook_retry_base = 20ms;
    auto started = HmmmService::Start(std::move(o));
    ASSERT_TRUE(started.ok()) << started.status().message();
    svc_ = std::move(*started);
  }

  Post P(MessageType type, std::string agent, std::string body = "", std::string reply = "", std::string id = "") {
    Post p;
    p.type = type;
    p.agent = std::move(agent);
    p.body = std::move(body);
    p.in_reply_to = std::move(reply);
    p.id = std::move(id);
    return p;
  }

  std::string OpenTaskRoom() {
    OpenRequest r;
    r.task_id = "t-42";
    r.project = "bzzz";
    r.title = "the build fails";
    r.seed = P(MessageType::kHelpRequest, "asker", "attempts 1-3 failed: missing header");
    auto v = svc_->Open(r);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? v->row.id : "";
  }

  double Metric(const std::string& name, const std::string& label, const std::string& value) {
    for (const auto& f : registry_.Collect()) {
      if (f.name != name) continue;
      for (const auto& m : f.metric) {
        for (const auto& l : m.label) {
          if (l.name == label && l.value == value) return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
        }
      }
    }
    return -1;
  }

  testing::TempDir dir_;
  storage::Storage storage_;
  config::Config config_;
  prometheus::Registry registry_;
  std::atomic<std::int64_t> now_{1000000};
  std::shared_ptr<HmmmService> svc_;
  std::function<Status(const std::string&)> check_task_;
  std::function<Status(const std::string&, const std::string&)> escalate_task_;
  std::function<Status(const std::string&, const std::string&, const std::string&, bool)> resume_task_;
};

TEST_F(HmmmServiceTest, ARoomIsDurableBeforeTheCallReturnsAndSurvivesARestart) {
  const std::string id = OpenTaskRoom();
  ASSERT_EQ(id, "t-42");
  EXPECT_EQ(svc_->Open(OpenRequest{"", "t-42", "", "again", P(MessageType::kHelpRequest, "x")}).status().code(),
            StatusCode::kConflict);
  auto posted = svc_->PostMessage(id, P(MessageType::kHelpResponse, "helper", "add -I include", "", "h-1"));
  ASSERT_TRUE(posted.ok()) << posted.status().message();
  EXPECT_EQ(posted->message.seq, 2);
  EXPECT_EQ(posted->message.node, "node-a");
  // In the store already.
  auto stored = storage_.hmmm->ListMessages(id, 0, 10);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ((*stored)[1].body, "add -I include");

  Restart();
  auto again = svc_->PostMessage(id, P(MessageType::kHelpResponse, "helper", "add -I include", "", "h-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate) << "duplicate suppression survives the restart";
  EXPECT_EQ(again->message.seq, 2);
  auto next = svc_->PostMessage(id, P(MessageType::kHelpResponse, "other", "or vendor it"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->message.seq, 3);
  auto view = svc_->Get(id, 0, 100);
  ASSERT_TRUE(view.ok());
  EXPECT_TRUE(view->owned);
  EXPECT_EQ(view->messages.size(), 3u);
  EXPECT_EQ(view->participants.size(), 3u);
  auto listed = svc_->List(RoomQuery{"open", "t-42", "", 10});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].last_seq, 3);
}

TEST_F(HmmmServiceTest, APlanIsDecidedWhenTimeClosesItsWindowEvenAcrossARestart) {
  const std::string id = OpenTaskRoom();
  auto plan = svc_->PostMessage(id, P(MessageType::kPlanProposed, "planner", "pin the compiler"));
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(svc_->PostMessage(id, P(MessageType::kAgreement, "asker", "", plan->message.id)).ok());
  Restart();  // the open proposal is in the stored room
  now_ += 999;
  svc_->Tick();
  EXPECT_EQ(svc_->Get(id, 0, 100)->row.state, "open");
  now_ += 1;
  svc_->Tick();
  auto view = svc_->Get(id, 0, 100);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->row.state, "decided");
  EXPECT_EQ(view->messages.back().type, "decision");
  EXPECT_EQ(view->decision_id, view->messages.back().id);
  EXPECT_EQ(Metric("bzzz_hmmm_decisions_total", "kind", "quorum"), 1);
  EXPECT_EQ(Metric("bzzz_hmmm_rooms", "state", "decided"), 1);
  EXPECT_EQ(svc_->PostMessage(id, P(MessageType::kHelpResponse, "late", "x")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Metric("bzzz_hmmm_refused_total", "reason", "closed"), 1);
}

TEST_F(HmmmServiceTest, JoiningAndLeavingArePersistedAndCountAtTheClose) {
  const std::string id = OpenTaskRoom();
  ASSERT_TRUE(svc_->Join(id, "b", "node-a").ok());
  ASSERT_TRUE(svc_->Join(id, "b", "node-a").ok()) << "idempotent";
  ASSERT_TRUE(svc_->Join(id, "c", "node-a").ok());
  EXPECT_EQ(svc_->Join(id, "not valid", "node-a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(svc_->Join("no-such-room", "b", "node-a").code(), StatusCode::kNotFound);
  // asker, b, c propose and leave: b alone is left, and agrees with its own plan.
  auto plan = svc_->PostMessage(id, P(MessageType::kPlanProposed, "b", "plan"));
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(svc_->Leave(id, "c", "node-a").ok());
  ASSERT_TRUE(svc_->Leave(id, "asker", "node-a").ok());
  Restart();
  EXPECT_EQ(svc_->Get(id, 0, 10)->participants.size(), 1u) << "membership is in the stored room";
  now_ += 1000;
  // Time first: the window closed with b alone, so the room is decided
  // before "late" could join, and takes nobody any more.
  EXPECT_EQ(svc_->Join(id, "late", "node-a").code(), StatusCode::kFailedPrecondition);
  auto view = svc_->Get(id, 0, 100);
  EXPECT_EQ(view->row.state, "decided");
  EXPECT_EQ(nlohmann::json::parse(view->messages.back().body)["participants"], 1);
}

TEST_F(HmmmServiceTest, RefusalsAreStatusesAndChangeNothing) {
  const std::string id = OpenTaskRoom();
  EXPECT_EQ(svc_->PostMessage(id, P(MessageType::kAgreement, "b", "", "nothing")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(svc_->PostMessage(id, P(MessageType::kHelpResponse, "b", std::string(20000, 'x'))).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(svc_->PostMessage("no-such-room", P(MessageType::kHelpResponse, "b", "x")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(svc_->Get(id, 0, 100)->messages.size(), 1u);
  EXPECT_EQ(Metric("bzzz_hmmm_refused_total", "reason", "too_large"), 1);
  EXPECT_EQ(Metric("bzzz_hmmm_refused_total", "reason", "invalid"), 1);
}

TEST_F(HmmmServiceTest, SecretsInMessagesAreRedactedBeforeTheyAreStored) {
  const std::string id = OpenTaskRoom();
  auto posted = svc_->PostMessage(id, P(MessageType::kHelpResponse, "b", "use Authorization: Bearer abc.def.ghi"));
  ASSERT_TRUE(posted.ok());
  EXPECT_EQ(posted->message.body.find("abc.def.ghi"), std::string::npos) << posted->message.body;
  EXPECT_EQ(storage_.hmmm->ListMessages(id, 1, 1)->front().body.find("abc.def.ghi"), std::string::npos);
}

TEST_F(HmmmServiceTest, AKeywordEscalatesAndAnOperatorResolves) {
  const std::string id = OpenTaskRoom();
  ASSERT_TRUE(svc_->PostMessage(id, P(MessageType::kHelpResponse, "b", "we are stuck")).ok());
  auto view = svc_->Get(id, 0, 100);
  EXPECT_EQ(view->row.state, "escalated");
  EXPECT_EQ(view->escalation_reason, "keyword");
  EXPECT_EQ(Metric("bzzz_hmmm_escalations_total", "reason", "keyword"), 1);
  Restart();
  auto resolved = svc_->Resolve(id, "retry", "try the mirror", R"({"mirror":true})", "alice");
  ASSERT_TRUE(resolved.ok()) << resolved.status().message();
  EXPECT_EQ(resolved->row.state, "resolved");
  EXPECT_EQ(resolved->messages.back().agent, "operator:alice");
  EXPECT_EQ(svc_->Resolve(id, "answer", "", "", "alice").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Metric("bzzz_hmmm_decisions_total", "kind", "resolution"), 1);
}

TEST_F(HmmmServiceTest, AWatcherIsAnsweredByTheNextMessageOrByItsDeadline) {
  const std::string id = OpenTaskRoom();
  std::promise<Result<RoomView>> got;
  svc_->Watch(id, 1, 10s, [&](Result<RoomView> v) { got.set_value(std::move(v)); });
  auto future = got.get_future();
  EXPECT_EQ(future.wait_for(50ms), std::future_status::timeout);
  ASSERT_TRUE(svc_->PostMessage(id, P(MessageType::kHelpResponse, "b", "here")).ok());
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto v = future.get();
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->messages.size(), 1u);
  EXPECT_EQ(v->messages[0].body, "here");

  std::promise<Result<RoomView>> none;
  svc_->Watch(id, 2, 1ms, [&](Result<RoomView> r) { none.set_value(std::move(r)); });
  std::this_thread::sleep_for(5ms);
  svc_->Tick();
  auto empty = none.get_future().get();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->messages.empty());
}

TEST_F(HmmmServiceTest, AnotherNodesRoomIsReadButNotWrittenHere) {
  RoomRow row;
  row.id = "room-elsewhere";
  row.owner_node = "node-b";
  row.state = "open";
  row.doc = R"({"v":1,"participants":[],"ids":{},"decision":"","escalation":"","closed_ms":0})";
  ASSERT_TRUE(storage_.hmmm->SaveRoom(row, {}).ok());
  auto view = svc_->Get("room-elsewhere", 0, 10);
  ASSERT_TRUE(view.ok());
  EXPECT_FALSE(view->owned);
  EXPECT_EQ(svc_->PostMessage("room-elsewhere", P(MessageType::kHelpResponse, "b", "x")).status().code(),
            StatusCode::kUnavailable)
      << "no P2P node to forward it with";
  EXPECT_EQ(svc_->Resolve("room-elsewhere", "answer", "", "", "ops").status().code(), StatusCode::kFailedPrecondition);
}

// A task's room drives its task: opened only for a task this node owns,
// escalating stops the task, resolving resumes it (checked first: a bad
// input leaves the room escalated), and both are applied again at start.
TEST_F(HmmmServiceTest, ATasksRoomEscalatesAndResumesItsTaskAndRepairsThatAtStart) {
  std::vector<std::string> calls;
  std::string refuse_resume;
  check_task_ = [&](const std::string& id) {
    return id == "t-42" ? Status::Ok() : FailedPrecondition("task " + id + " belongs to node b");
  };
  escalate_task_ = [&](const std::string& id, const std::string& reason) {
    calls.push_back("escalate " + id + " " + reason);
    return Status::Ok();
  };
  resume_task_ = [&](const std::string& id, const std::string&, const std::string& input, bool dry) {
    calls.push_back(std::string(dry ? "check " : "resume ") + id + " " + input);
    return refuse_resume.empty() ? Status::Ok() : InvalidArgument(refuse_resume);
  };
  Restart();
  OpenRequest other;
  other.task_id = "t-7";
  other.seed = P(MessageType::kHelpRequest, "asker", "x");
  EXPECT_EQ(svc_->Open(other).status().code(), StatusCode::kFailedPrecondition);
  const std::string id = OpenTaskRoom();
  ASSERT_TRUE(svc_->PostMessage(id, P(MessageType::kEscalation, "asker", "a human, please")).ok());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], "escalate t-42 room t-42 escalated (requested)");
  Restart();
  ASSERT_EQ(calls.size(), 2u) << "applied again at start";

  refuse_resume = "input.op: unknown builtin op";
  EXPECT_EQ(svc_->Resolve(id, "retry", "try this", R"({"op":"nope"})", "ops").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(svc_->Get(id, 0, 10)->row.state, "escalated") << "a refused answer changes nothing";
  refuse_resume.clear();
  calls.clear();
  ASSERT_TRUE(svc_->Resolve(id, "retry", "try this", R"({"op":"echo"})", "ops").ok());
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], R"(check t-42 {"op":"echo"})");
  EXPECT_EQ(calls[1], R"(resume t-42 {"op":"echo"})");
  Restart();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2], R"(resume t-42 {"op":"echo"})") << "a resolved room's task is resumed again at start";
}

// The escalation webhook: the room's history, signed with HMAC-SHA256,
// retried after a failure, recorded as delivered in the stored room (a
// restart does not send it again).
TEST_F(HmmmServiceTest, AnEscalationReachesTheWebhookSignedAndOnce) {
  std::atomic<int> calls{0};
  testing::MiniServer hook([&](const std::string&, const std::string&, const std::string&) {
    return std::make_pair(calls++ == 0 ? 500 : 200, std::string("{}"));
  });
  config_.hmmm.escalation_webhook = hook.url() + "/hooks/hmmm";
  config_.hmmm.escalation_webhook_secret = "webhook-secret";
  Restart();
  const std::string id = OpenTaskRoom();
  ASSERT_TRUE(svc_->PostMessage(id, P(MessageType::kHelpResponse, "b", "we are stuck")).ok());
  ASSERT_TRUE(testing::Eventually([&] { return Metric("bzzz_hmmm_webhook_deliveries_total", "result", "delivered") == 1; },
                                  10s));
  EXPECT_EQ(Metric("bzzz_hmmm_webhook_deliveries_total", "result", "retried"), 1);
  const auto requests = hook.requests();
  const auto heads = hook.heads();
  ASSERT_EQ(requests.size(), 2u);
  const std::string body = requests[1].substr(std::string("POST /hooks/hmmm ").size());
  const nlohmann::json payload = nlohmann::json::parse(body);
  EXPECT_EQ(payload["event"], "hmmm.escalation");
  EXPECT_EQ(payload["task_id"], "t-42");
  EXPECT_EQ(payload["task_title"], "the build fails");
  EXPECT_EQ(payload["reason"], "keyword");
  EXPECT_EQ(payload["history"].size(), 3u);
  EXPECT_NE(heads[1].find("X-Bzzz-Signature: sha256=" + security::HmacSha256Hex("webhook-secret", body)),
            std::string::npos)
      << heads[1];
  EXPECT_NE(heads[1].find("X-Bzzz-Event: hmmm.escalation"), std::string::npos);
  Restart();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(hook.requests().size(), 2u) << "delivered once, and the room remembers it";
}

}  // namespace
}  // namespace bzzz::hmmm

namespace bzzz::hmmm {
namespace {

// A stuck task asks for help: the request opens the task's room (or goes
// into the open one), the answers replying to it come back (others do not),
// the wait ends at hmmm.help_answers answers, at its deadline or when
// cancelled, and a closed room refuses, counted.
TEST_F(HmmmServiceTest, AStuckTaskAsksForHelpAndGetsTheAnswersToItsRequest) {
  config_.hmmm.help_answers = 2;
  Restart();
  const auto answer_later = [this](std::string body, std::string reply_to_type) {
    return std::async(std::launch::async, [this, body, reply_to_type] {
      // Wait for the request, then answer it as a helper of another node.
      for (int i = 0; i < 200; ++i) {
        auto msgs = storage_.hmmm->ListMessages("t-7", 0, 100);
        if (msgs.ok()) {
          for (auto it = msgs->rbegin(); it != msgs->rend(); ++it) {
            if (it->type != reply_to_type) continue;
            Post p = P(MessageType::kHelpResponse, "llm-helper", body, it->id);
            p.node = "node-" + body;
            auto posted = svc_->PostMessage("t-7", p);
            EXPECT_TRUE(posted.ok()) << posted.status().message();
            return posted.ok();
          }
        }
        std::this_thread::sleep_for(10ms);
      }
      return false;
    });
  };
  HelpQuery q;
  q.task_id = "t-7";
  q.project = "bzzz";
  q.title = "compile";
  q.agent = "node-a-a1";
  q.reason = "the same command failed 3 times: make";
  q.question = "Task: compile\nWhy help is needed: make fails with password=hunter2\n";
  q.until = std::chrono::steady_clock::now() + 10s;
  auto b = answer_later("b", "help_request");
  auto c = answer_later("c", "help_request");
  auto answers = svc_->AskForHelp(q);
  ASSERT_TRUE(answers.ok()) << answers.status().message();
  ASSERT_TRUE(b.get());
  ASSERT_TRUE(c.get());
  ASSERT_EQ(answers->size(), 2u);
  for (const auto& a : *answers) EXPECT_EQ(a.type, "help_response");
  auto view = svc_->Get("t-7", 0, 100);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->row.task_id, "t-7");
  EXPECT_EQ(view->messages.front().type, "help_request");
  EXPECT_EQ(view->messages.front().body.find("hunter2"), std::string::npos) << "SHHH redacts the request";

  // A second request goes into the same room; an answer to the first one
  // does not count for it, and with no answer the wait ends at `until`.
  q.until = std::chrono::steady_clock::now() + 300ms;
  auto stale = std::async(std::launch::async, [this, first = view->messages.front().id] {
    std::this_thread::sleep_for(50ms);
    Post p = P(MessageType::kHelpResponse, "late", "too late", first);
    p.node = "node-d";
    return svc_->PostMessage("t-7", p).ok();
  });
  auto none = svc_->AskForHelp(q);
  ASSERT_TRUE(stale.get());
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(Metric("bzzz_hmmm_help_requests_total", "result", "answered"), 1);
  EXPECT_EQ(Metric("bzzz_hmmm_help_requests_total", "result", "unanswered"), 1);

  // Cancellation ends the wait at once.
  std::atomic<bool> cancel{true};
  q.until = std::chrono::steady_clock::now() + 60s;
  q.cancel = &cancel;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(svc_->AskForHelp(q).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);

  // A closed room takes no request: the task gets no help, and nothing changes.
  ASSERT_TRUE(svc_->PostMessage("t-7", P(MessageType::kEscalation, "op", "need a human")).ok());
  const auto before = storage_.hmmm->ListMessages("t-7", 0, 1000)->size();
  auto closed = svc_->AskForHelp(q);
  EXPECT_EQ(closed.status().code(), StatusCode::kFailedPrecondition) << closed.status().message();
  EXPECT_EQ(storage_.hmmm->ListMessages("t-7", 0, 1000)->size(), before);
  EXPECT_EQ(Metric("bzzz_hmmm_help_requests_total", "result", "failed"), 1);
  // A bad task id is refused before anything is written.
  q.task_id = "t 8";
  EXPECT_EQ(svc_->AskForHelp(q).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bzzz::hmmm
