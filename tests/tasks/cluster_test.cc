// The cluster protocol without a network: PlanTransfers (the admin's
// decision), term fencing of offers, lending only what fits the worker,
// borrowed work run and reported until acknowledged, and results from
// anyone but the lease holder ignored.
#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include <nlohmann/json.hpp>

#include "executors/executors.h"
#include "storage/sqlite/sqlite.h"
#include "support/support.h"
#include "tasks/cluster.h"

namespace bzzz::tasks {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

LoadReport Report(std::string node, int queued, int agents, int idle) {
  LoadReport r;
  r.node_id = std::move(node);
  r.queued = queued;
  r.agents = agents;
  r.idle = idle;
  r.executors = {"builtin"};
  return r;
}

TEST(PlanTransfersTest, BacklogGoesToIdleNodesAndNeverToItself) {
  std::size_t cursor = 0;
  // a: 100 queued, 1 idle agent (backlog 99); b: 2 idle, nothing queued; c: busy.
  auto offers = PlanTransfers({Report("a", 100, 2, 1), Report("b", 0, 2, 2), Report("c", 5, 4, 0)},
                              Strategy::kLeastLoaded, 7, cursor, 256, 16);
  // c has a backlog too but b's 32 slots go to the larger backlog first.
  ASSERT_EQ(offers.size(), 1u);
  EXPECT_EQ(offers[0].owner, "a");
  EXPECT_EQ(offers[0].worker, "b");
  EXPECT_EQ(offers[0].count, 32);
  EXPECT_EQ(offers[0].term, 7u);
  EXPECT_EQ(offers[0].executors, std::vector<std::string>{"builtin"});
  // Nobody idle, or nobody with a backlog: nothing to do.
  EXPECT_TRUE(PlanTransfers({Report("a", 100, 2, 0), Report("b", 3, 2, 0)}, Strategy::kRoundRobin, 1, cursor).empty());
  EXPECT_TRUE(PlanTransfers({Report("a", 0, 2, 2), Report("b", 0, 2, 2)}, Strategy::kRoundRobin, 1, cursor).empty());
  // A node with a backlog and idle agents does not lend to itself.
  EXPECT_TRUE(PlanTransfers({Report("a", 50, 4, 0)}, Strategy::kRoundRobin, 1, cursor).empty());
}

TEST(PlanTransfersTest, StrandedTasksAreLentEvenWhileTheOwnerHasIdleAgents) {
  std::size_t cursor = 0;
  // a: 1 queued task its 2 idle agents cannot run (a capability they lack).
  LoadReport a = Report("a", 1, 2, 2);
  a.stranded = 1;
  LoadReport b = Report("b", 0, 1, 1);
  b.capabilities = {"gpu"};
  const auto offers = PlanTransfers({a, b}, Strategy::kRoundRobin, 3, cursor, 256, 16);
  ASSERT_EQ(offers.size(), 1u);
  EXPECT_EQ(offers[0].owner, "a");
  EXPECT_EQ(offers[0].worker, "b");
  EXPECT_EQ(offers[0].count, 1);
  EXPECT_EQ(offers[0].capabilities, std::vector<std::string>{"gpu"});
  a.stranded = 0;
  EXPECT_TRUE(PlanTransfers({a, b}, Strategy::kRoundRobin, 3, cursor, 256, 16).empty())
      << "without stranded tasks, idle agents at home take the queue";
}

TEST(LoadReportTest, RoundTripAndRefusals) {
  LoadReport r = Report("n1", 3, 4, 1);
  r.capabilities = {"gpu"};
  auto back = DecodeReport(EncodeReport(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(EncodeReport(*back), EncodeReport(r));
  EXPECT_EQ(EncodeReport(r).find("stranded"), std::string::npos) << "absent when 0, as older builds send it";
  r.stranded = 2;
  back = DecodeReport(EncodeReport(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->stranded, 2);
  for (const char* bad : {R"("stranded":4)", R"("stranded":-1)", R"("stranded":"x")"}) {
    std::string text = EncodeReport(Report("n1", 3, 4, 1));
    text.insert(1, std::string(bad) + ",");
    EXPECT_FALSE(DecodeReport(text).ok()) << text;
  }
  for (const char* bad : {"", "[]", R"({"node_id":"n"})",
                          R"({"node_id":"n","role":"","capabilities":[],"executors":[],"queued":-1,"in_flight":0,"agents":1,"idle":0,"performance":0.5,"at_ms":1})",
                          R"({"node_id":"n","role":"","capabilities":[],"executors":[],"queued":0,"in_flight":0,"agents":1,"idle":2,"performance":0.5,"at_ms":1})"}) {
    EXPECT_FALSE(DecodeReport(bad).ok()) << bad;
  }
}

// Records what a node sends.
class FakeTransport : public ClusterTransport {
 public:
  Status Send(const std::string& node, const std::string& type, std::string payload) override {
    std::lock_guard l(mu);
    sent.push_back({node, type, json::parse(payload)});
    return Status::Ok();
  }
  Status Broadcast(std::string) override { return Status::Ok(); }
  std::vector<std::tuple<std::string, std::string, json>> Sent(const std::string& type) {
    std::lock_guard l(mu);
    std::vector<std::tuple<std::string, std::string, json>> out;
    for (auto& s : sent) {
      if (std::get<1>(s) == type) out.push_back(s);
    }
    return out;
  }
  std::mutex mu;
  std::vector<std::tuple<std::string, std::string, json>> sent;
};

class ClusterLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.node.data_dir = dir_.File("data");
    executors_ = executors::MakeRegistry(config_);
    storage::sqlite::SqliteOptions o;
    o.path = dir_.File("bzzz.db");
    auto storage = std::move(storage::sqlite::Open(o)).value();
    ASSERT_TRUE(storage.store->Migrate().ok());
    store_ = storage.tasks;
    ManagerOptions mo;
    mo.core.node_id = "owner";
    mo.store = store_;
    mo.executors = executors_.get();
    manager_ = std::move(TaskManager::Start(mo, nullptr)).value();
    ClusterLink::Options lo;
    lo.node_id = "owner";
    lo.resend_interval_ms = 50;
    link_ = std::make_unique<ClusterLink>(lo, *manager_, transport_, nullptr);
    link_->Start();
  }
  void TearDown() override {
    link_.reset();
    manager_.reset();
  }
  std::string Submit(const std::string& executor, const std::string& input) {
    SubmitRequest r;
    r.executor = executor;
    r.input = input;
    std::promise<Result<SubmitOutcome>> p;
    manager_->Submit(r, [&p](Result<SubmitOutcome> o) { p.set_value(std::move(o)); });
    auto out = p.get_future().get();
    EXPECT_TRUE(out.ok());
    return out.ok() ? out->task.id : "";
  }
  static std::string Offer(std::uint64_t term, int count, std::vector<std::string> executors = {"builtin"}) {
    return json{{"term", term}, {"worker", "w"}, {"count", count}, {"role", ""}, {"capabilities", json::array()},
                {"executors", executors}}
        .dump();
  }

  testing::TempDir dir_;
  config::Config config_;
  std::unique_ptr<executors::ExecutorRegistry> executors_;
  std::shared_ptr<TaskRepository> store_;
  std::unique_ptr<TaskManager> manager_;
  FakeTransport transport_;
  std::unique_ptr<ClusterLink> link_;
};

TEST_F(ClusterLinkTest, OwnerLendsOnlyOnCurrentTermsAndOnlyWhatFits) {
  const std::string echo = Submit("builtin", R"({"op":"echo","value":1})");
  Submit("command", R"({"argv":["true"]})");
  link_->OnMessage("admin", "tasks.offer", Offer(5, 10));
  auto grants = transport_.Sent("tasks.grant");
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(std::get<0>(grants[0]), "w");
  const json& jobs = std::get<2>(grants[0])["jobs"];
  ASSERT_EQ(jobs.size(), 1u);  // the command task does not fit a builtin-only worker
  EXPECT_EQ(jobs[0]["task_id"], echo);
  EXPECT_EQ(jobs[0]["agent_id"], "remote:w");
  // A deposed admin's offer (older term) moves nothing.
  link_->OnMessage("old-admin", "tasks.offer", Offer(4, 10, {"builtin", "command"}));
  EXPECT_EQ(transport_.Sent("tasks.grant").size(), 1u);
  EXPECT_EQ(link_->GetStats().offers_refused, 1u);
  // The current term's offer that fits lends the command task.
  link_->OnMessage("admin", "tasks.offer", Offer(5, 10, {"builtin", "command"}));
  EXPECT_EQ(transport_.Sent("tasks.grant").size(), 2u);
}

// With the election's word (admin_of): offers and expectations only from
// the admin of their term; a grant runs only up to what the admin told this
// worker to expect from that owner, and one that arrives first waits for
// its expectation (2 s) before it is refused.
TEST_F(ClusterLinkTest, OffersAndGrantsNeedTheAdminsWord) {
  link_.reset();
  ClusterLink::Options lo;
  lo.node_id = "owner";
  lo.resend_interval_ms = 50;
  lo.admin_of = [](const std::string& from, std::uint64_t term) { return from == "admin" && term == 5; };
  link_ = std::make_unique<ClusterLink>(lo, *manager_, transport_, nullptr);
  link_->Start();

  // Offers: a member claiming a huge term, or the admin with a stale term, moves nothing.
  Submit("builtin", R"({"op":"echo","value":1})");
  link_->OnMessage("mallory", "tasks.offer", Offer(1000000, 10));
  link_->OnMessage("admin", "tasks.offer", Offer(4, 10));
  EXPECT_TRUE(transport_.Sent("tasks.grant").empty());
  EXPECT_EQ(link_->GetStats().offers_unauthorized, 2u);
  link_->OnMessage("admin", "tasks.offer", Offer(5, 10));
  EXPECT_EQ(transport_.Sent("tasks.grant").size(), 1u);

  auto grant = [](int first, int n) {
    json jobs = json::array();
    for (int i = first; i < first + n; ++i) {
      jobs.push_back({{"task_id", "t" + std::to_string(i)}, {"attempt", 1}, {"agent_id", "remote:owner"},
                      {"executor", "builtin"}, {"input", R"({"op":"echo","value":1})"}, {"timeout_ms", 5000}});
    }
    return json{{"jobs", jobs}}.dump();
  };
  auto expect = [](std::uint64_t term, const std::string& owner, int count) {
    return json{{"term", term}, {"owner", owner}, {"count", count}}.dump();
  };
  // A grant nobody assigned: held, then refused.
  link_->OnMessage("o1", "tasks.grant", grant(0, 2));
  // An expectation from a non-admin changes nothing.
  link_->OnMessage("mallory", "tasks.expect", expect(5, "o1", 100));
  EXPECT_TRUE(testing::Eventually([&] { return link_->GetStats().grants_refused == 2; }, 5s));
  EXPECT_EQ(link_->GetStats().borrowed, 0u);
  // The admin's expectation of 1 from o1: one of a grant of 2 runs.
  link_->OnMessage("admin", "tasks.expect", expect(5, "o1", 1));
  link_->OnMessage("o1", "tasks.grant", grant(10, 2));
  EXPECT_EQ(link_->GetStats().borrowed, 1u);
  EXPECT_EQ(link_->GetStats().grants_refused, 3u);
  // A grant that overtakes its expectation runs once the expectation comes.
  link_->OnMessage("o2", "tasks.grant", grant(20, 1));
  EXPECT_EQ(link_->GetStats().borrowed, 1u);
  link_->OnMessage("admin", "tasks.expect", expect(5, "o2", 1));
  EXPECT_EQ(link_->GetStats().borrowed, 2u);
}

TEST_F(ClusterLinkTest, OnlyTheLeaseHolderEndsTheAttemptAndEveryResultIsAcknowledged) {
  const std::string id = Submit("builtin", R"({"op":"echo","value":1})");
  link_->OnMessage("admin", "tasks.offer", Offer(1, 1));
  ASSERT_EQ(transport_.Sent("tasks.grant").size(), 1u);
  const json result = {{"results",
                        {{{"task_id", id}, {"attempt", 1}, {"agent_id", "remote:w"}, {"state", "succeeded"},
                          {"result", R"({"value":1})"}, {"error", ""}}}}};
  // From another node: acknowledged, not recorded.
  link_->OnMessage("intruder", "tasks.result", result.dump());
  EXPECT_EQ(manager_->Get(id)->state, TaskState::kAssigned);
  EXPECT_EQ(link_->GetStats().stale_results, 1u);
  // From the holder: recorded once; a duplicate is stale.
  link_->OnMessage("w", "tasks.result", result.dump());
  EXPECT_EQ(manager_->Get(id)->state, TaskState::kSucceeded);
  link_->OnMessage("w", "tasks.result", result.dump());
  EXPECT_EQ(manager_->Get(id)->SuccessfulAttempts(), 1);
  EXPECT_EQ(transport_.Sent("tasks.ack").size(), 3u);
  // Malformed messages change nothing.
  for (const char* bad : {"", "{}", "[1]", R"({"results":"x"})", R"({"jobs":[{"task_id":1}]})"}) {
    link_->OnMessage("w", "tasks.result", bad);
    link_->OnMessage("w", "tasks.grant", bad);
    link_->OnMessage("w", "tasks.offer", bad);
  }
  EXPECT_EQ(manager_->Get(id)->SuccessfulAttempts(), 1);
}

TEST_F(ClusterLinkTest, BorrowedWorkIsReportedUntilAcknowledged) {
  // This node borrows one attempt from "other" and finishes it.
  const json grant = {{"jobs",
                       {{{"task_id", "t-x"}, {"attempt", 2}, {"agent_id", "remote:owner"}, {"executor", "builtin"},
                         {"input", R"({"op":"echo"})"}, {"timeout_ms", 1000}}}}};
  link_->OnMessage("other", "tasks.grant", grant.dump());
  WorkerSlot slot;
  slot.agent_id = "a1";
  auto job = manager_->Await(slot, 1s);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->owner, "other");
  AttemptOutcome ok;
  ok.result = "1";
  ASSERT_TRUE(manager_->Complete(*job, ok).ok());
  // Resent until acknowledged.
  ASSERT_TRUE(testing::Eventually([&] { return transport_.Sent("tasks.result").size() >= 2; }, 3s));
  link_->OnMessage("other", "tasks.ack", json{{"acks", {{{"task_id", "t-x"}, {"attempt", 2}}}}}.dump());
  ASSERT_TRUE(testing::Eventually([&] { return link_->GetStats().unacknowledged == 0; }, 1s));
  const std::size_t sent = transport_.Sent("tasks.result").size();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(transport_.Sent("tasks.result").size(), sent);
  // A grant for another node's lease is ignored.
  link_->OnMessage("other", "tasks.grant",
                   json{{"jobs", {{{"task_id", "t-y"}, {"attempt", 1}, {"agent_id", "remote:someone"}, {"executor", "builtin"},
                                   {"input", "{}"}, {"timeout_ms", 1000}}}}}
                       .dump());
  EXPECT_TRUE(manager_->ForeignHeld().empty());
}

}  // namespace
}  // namespace bzzz::tasks
