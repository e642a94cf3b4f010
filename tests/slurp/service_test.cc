// SlurpService in process, on a real SQLite store and a local context
// store: API events with their keys, hooks, the processor following the
// admin's terms (stop, start for a newer term, refusal of an older one),
// slurp-health on the admin and elsewhere, the status section.
#include "slurp/service.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>

#include "storage/sqlite/sqlite.h"
#include "support/support.h"
#include "ucxl/context_store.h"

namespace bzzz::slurp {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;

class SlurpServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::sqlite::SqliteOptions so;
    so.path = dir_.File("bzzz.db");
    auto opened = storage::sqlite::Open(so);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    storage_ = std::move(*opened);
    ASSERT_TRUE(storage_.store->Migrate().ok());
    context_ = std::make_unique<ucxl::ContextStore>(storage_.contexts, nullptr);
    SlurpService::Options o;
    o.config.slurp.queue_capacity = 100;
    o.node_id = "node-a";
    o.store = storage_.slurp;
    o.context = context_.get();
    o.metrics = &registry_;
    o.sources.rooms = storage_.hmmm;
    o.sources.task = [](const std::string& id) -> Result<TaskFacts> {
      if (id != "t-1") return NotFound("no task " + id);
      return TaskFacts{"t-1", "dead", "command", "bzzz", "", "ana", {"a1"}, 3, "exit code 2"};
    };
    o.admin = [this](std::uint64_t* term) {
      std::lock_guard lock(mu_);
      *term = term_;
      return admin_;
    };
    auto started = SlurpService::Start(std::move(o));
    ASSERT_TRUE(started.ok()) << started.status().message();
    svc_ = std::move(*started);
  }

  void SetAdmin(const std::string& admin, std::uint64_t term) {
    std::lock_guard lock(mu_);
    admin_ = admin;
    term_ = term;
  }

  ops::CheckOutcome Health() { return svc_->HealthChecks(config::OperationsConfig{})[0].fn(); }

  std::int64_t Done() {
    auto s = storage_.slurp->Stats();
    return s.ok() ? s->done : -1;
  }

  testing::TempDir dir_;
  storage::Storage storage_;
  std::unique_ptr<ucxl::ContextStore> context_;
  prometheus::Registry registry_;
  std::mutex mu_;
  std::string admin_ = "node-b";
  std::uint64_t term_ = 1;
  std::shared_ptr<SlurpService> svc_;
};

TEST_F(SlurpServiceTest, EventsAreTakenEverywhereAndProcessedOnlyForTheAdminsTerm) {
  // SQLite and not the admin: API events are refused, naming the admin.
  const std::string body = R"({"project":"bzzz","summary":"s","decision":"d","citations":[{"kind":"task","id":"t-1"}]})";
  auto refused = svc_->Submit("k1", body, "ana");
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("node-b"), std::string::npos) << refused.status().message();
  EXPECT_EQ(Health().status, ops::HealthStatus::kHealthy) << "not applicable on a follower";

  // This node becomes admin of term 2: it takes and processes events.
  SetAdmin("node-a", 2);
  ASSERT_TRUE(svc_->StartTerm(2).ok());
  auto first = svc_->Submit("k1", body, "ana");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->second);
  auto again = svc_->Submit("k1", body, "bob");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->second) << "the same key is the same event";
  EXPECT_EQ(again->first.seq, first->first.seq);
  EXPECT_EQ(svc_->Submit("k1", R"({"project":"bzzz","summary":"other","decision":"d"})", "ana").status().code(),
            StatusCode::kConflict);
  EXPECT_EQ(svc_->Submit("bad key", body, "ana").status().code(), StatusCode::kInvalidArgument);
  // Hooks: a task outcome and a decision of a room that does not exist
  // (dead at once: it cites nothing that is there).
  svc_->TaskFinished(TaskFacts{"t-1", "dead", "command", "bzzz", "", "ana", {"a1"}, 3, "exit code 2"});
  svc_->RoomDecided("room-x", "decision-1", "bzzz", "");
  ASSERT_TRUE(Eventually([&] { return Done() == 2; }, 10s)) << Done();
  ASSERT_TRUE(Eventually([&] { return storage_.slurp->Stats()->dead == 1; }, 10s));
  EXPECT_EQ(Health().status, ops::HealthStatus::kHealthy) << Health().message;
  const json status = json::parse(svc_->StatusJson("slurp"));
  EXPECT_EQ(status["running_term"], 2);
  EXPECT_EQ(status["is_admin"], true);

  // Another node is admin of term 3 and raises the fence: this node's
  // processor stops there, and says so while it still believes it is admin.
  ASSERT_TRUE(storage_.slurp->AdmitTerm(3).ok());
  ASSERT_TRUE(svc_->Submit("k2", body, "ana").ok());
  ASSERT_TRUE(Eventually([&] { return Health().status == ops::HealthStatus::kUnhealthy; }, 10s)) << Health().message;
  EXPECT_NE(Health().message.find("term"), std::string::npos) << Health().message;
  EXPECT_EQ(Done(), 2) << "nothing written by the fenced term";
  svc_->StopTerm(2);

  // Admin again in term 4: it goes on from the store's queue.
  SetAdmin("node-a", 4);
  ASSERT_TRUE(svc_->StartTerm(4).ok());
  ASSERT_TRUE(Eventually([&] { return Done() == 3; }, 10s)) << Done();
  EXPECT_EQ(Health().status, ops::HealthStatus::kHealthy) << Health().message;
  // A start for an older term than the store's fence does not process.
  svc_->StopTerm(4);
  SetAdmin("node-a", 3);
  ASSERT_TRUE(svc_->StartTerm(3).ok());
  ASSERT_TRUE(Eventually([&] { return Health().status == ops::HealthStatus::kUnhealthy; }, 10s)) << Health().message;
  svc_->Stop();
}

}  // namespace
}  // namespace bzzz::slurp
