#include "ops/shutdown.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "ops/request_log.h"

namespace bzzz::ops {
namespace {

using namespace std::chrono_literals;

TEST(ShutdownTest, RunsHandlersByPriorityThenRegistrationOrder) {
  ShutdownCoordinator c;
  std::mutex mu;
  std::vector<std::string> order;
  auto step = [&](std::string name) {
    return [&, name] {
      std::lock_guard lock(mu);
      order.push_back(name);
      return Status::Ok();
    };
  };
  ASSERT_TRUE(c.AddHandler("flush", kPriorityFlushStores, 1s, step("flush")).ok());
  ASSERT_TRUE(c.AddHandler("stop-accepting", kPriorityStopAccepting, 1s, step("stop-accepting")).ok());
  ASSERT_TRUE(c.AddHandler("drain", kPriorityDrainRequests, 1s, step("drain")).ok());
  ASSERT_TRUE(c.AddHandler("drain-2", kPriorityDrainRequests, 1s, step("drain-2")).ok());
  ASSERT_TRUE(c.Request("test").ok());
  ASSERT_TRUE(c.WaitFor(5s));
  EXPECT_EQ(order, (std::vector<std::string>{"stop-accepting", "drain", "drain-2", "flush"}));
  for (const auto& h : c.Handlers()) EXPECT_EQ(h.state, HandlerState::kDone) << h.name;
  EXPECT_TRUE(c.GetStatus().finished);
  EXPECT_EQ(c.GetStatus().reason, "test");
}

TEST(ShutdownTest, TimeoutsAndFailuresAreRecordedAndTheSequenceGoesOn) {
  ShutdownCoordinator c;
  std::atomic<bool> last_ran{false};
  auto release = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(c.AddHandler("stuck", 1, 50ms, [release] {
                 for (int i = 0; i < 1000 && !release->load(); ++i) std::this_thread::sleep_for(10ms);
                 return Status::Ok();
               }).ok());
  ASSERT_TRUE(c.AddHandler("fails", 2, 1s, [] { return Unavailable("disk"); }).ok());
  ASSERT_TRUE(c.AddHandler("throws", 3, 1s, []() -> Status { throw std::runtime_error("bad"); }).ok());
  ASSERT_TRUE(c.AddHandler("last", 4, 1s, [&] {
                 last_ran = true;
                 return Status::Ok();
               }).ok());
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.Request("test").ok());
  ASSERT_TRUE(c.WaitFor(5s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "the stuck step is abandoned at its timeout";
  EXPECT_TRUE(last_ran.load());
  const auto h = c.Handlers();
  EXPECT_EQ(h[0].state, HandlerState::kTimedOut);
  EXPECT_NE(h[0].error.find("50 ms"), std::string::npos);
  EXPECT_EQ(h[1].state, HandlerState::kFailed);
  EXPECT_NE(h[1].error.find("disk"), std::string::npos);
  EXPECT_EQ(h[2].state, HandlerState::kFailed);
  EXPECT_EQ(h[3].state, HandlerState::kDone);
  // The stuck step's thread is still owned (not detached) until it returns.
  EXPECT_EQ(c.StepsStillRunning(), 1u);
  release->store(true);
  for (int i = 0; i < 500 && c.StepsStillRunning() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(c.StepsStillRunning(), 0u);
}

TEST(ShutdownTest, SecondRequestIsConflict) {
  ShutdownCoordinator c;
  std::atomic<bool> release{false};
  ASSERT_TRUE(c.AddHandler("wait", 1, 5s, [&] {
                 while (!release) std::this_thread::sleep_for(1ms);
                 return Status::Ok();
               }).ok());
  ASSERT_TRUE(c.Request("first").ok());
  const Status second = c.Request("second");
  EXPECT_EQ(second.code(), StatusCode::kConflict);
  EXPECT_NE(second.message().find("first"), std::string::npos);
  EXPECT_EQ(c.AddHandler("late", 1, 1s, [] { return Status::Ok(); }).code(), StatusCode::kConflict);
  EXPECT_FALSE(c.GetStatus().finished);
  release = true;
  EXPECT_TRUE(c.WaitFor(5s));
}

TEST(RequestLogTest, KeepsTheNewestWithinCapacity) {
  RequestLog log(3);
  for (int i = 0; i < 5; ++i) {
    const std::string id = "r" + std::to_string(i);
    http::RequestRecord r;
    r.method = "GET";
    r.route = "/health";
    r.path = "/health";
    r.status = 200;
    r.request_id = id;
    r.principal = "anonymous";
    log.Record(r);
  }
  EXPECT_EQ(log.total(), 5u);
  auto recent = log.Recent(10);
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].request_id, "r4");
  EXPECT_EQ(recent[2].request_id, "r2");
  EXPECT_EQ(log.Recent(1).size(), 1u);
}

}  // namespace
}  // namespace bzzz::ops
