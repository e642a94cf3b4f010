// The P2P node's delivery (p2p/delivery.h): per-subscriber order, bounded
// queues that drop and say so, a handler that throws does not stop the
// others; and the duplicate window.
#include "p2p/delivery.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/support.h"

namespace bzzz::p2p::internal {
namespace {

using namespace std::chrono_literals;

Message Numbered(int n) {
  Message m;
  m.envelope.data = std::to_string(n);
  return m;
}

TEST(DispatcherTest, EachSubscriberGetsItsMessagesInOrder) {
  Dispatcher dispatcher(2, 10000);
  std::vector<std::shared_ptr<Sink>> sinks;
  std::vector<std::vector<int>> got(3);
  std::mutex mu;
  for (int s = 0; s < 3; ++s) {
    auto sink = std::make_shared<Sink>();
    sink->name = "sink-" + std::to_string(s);
    sink->handler = [&, s](const Message& m) {
      std::lock_guard lock(mu);
      got[static_cast<std::size_t>(s)].push_back(std::stoi(m.envelope.data));
    };
    sinks.push_back(sink);
  }
  for (int i = 0; i < 1000; ++i) {
    for (auto& sink : sinks) ASSERT_TRUE(dispatcher.Push(sink, Numbered(i)));
  }
  ASSERT_TRUE(testing::Eventually(
      [&] {
        std::lock_guard lock(mu);
        return got[0].size() == 1000 && got[1].size() == 1000 && got[2].size() == 1000;
      },
      10s));
  for (const auto& g : got) {
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(g[static_cast<std::size_t>(i)], i);
  }
}

TEST(DispatcherTest, AFullQueueRefusesAndAThrowingHandlerDoesNotStopTheOthers) {
  Dispatcher dispatcher(1, 4);
  std::atomic<bool> release{false};
  std::atomic<int> slow_seen{0}, fast_seen{0};
  auto slow = std::make_shared<Sink>();
  slow->name = "slow";
  slow->handler = [&](const Message&) {
    while (!release) std::this_thread::sleep_for(1ms);
    ++slow_seen;
    throw std::runtime_error("handler failure");
  };
  ASSERT_TRUE(dispatcher.Push(slow, Numbered(0)));  // taken by the worker, which then waits
  ASSERT_TRUE(testing::Eventually(
      [&] {
        std::lock_guard lock(slow->mu);
        return slow->scheduled && slow->queue.empty();
      },
      5s));
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(dispatcher.Push(slow, Numbered(i)));
  EXPECT_FALSE(dispatcher.Push(slow, Numbered(5))) << "a full queue refuses";
  auto fast = std::make_shared<Sink>();
  fast->name = "fast";
  fast->handler = [&](const Message&) { ++fast_seen; };
  ASSERT_TRUE(dispatcher.Push(fast, Numbered(0)));
  release = true;
  ASSERT_TRUE(testing::Eventually([&] { return slow_seen == 5 && fast_seen == 1; }, 5s));
  // A closed sink discards without refusing.
  {
    std::lock_guard lock(slow->mu);
    slow->closed = true;
  }
  EXPECT_TRUE(dispatcher.Push(slow, Numbered(6)));
  {
    std::lock_guard lock(slow->mu);
    EXPECT_TRUE(slow->queue.empty());
  }
}

TEST(DedupWindowTest, SeesEachSequenceOnceWithinTheWindow) {
  DedupWindow window(3);
  PublicKey a{}, b{};
  b[0] = 1;
  EXPECT_TRUE(window.FirstTime(a, 1));
  EXPECT_FALSE(window.FirstTime(a, 1));
  EXPECT_TRUE(window.FirstTime(b, 1)) << "per sender";
  EXPECT_TRUE(window.FirstTime(a, 2));
  EXPECT_TRUE(window.FirstTime(a, 3));
  EXPECT_TRUE(window.FirstTime(a, 4));  // 1 leaves the window
  EXPECT_TRUE(window.FirstTime(a, 1)) << "forgotten past the window";
  EXPECT_FALSE(window.FirstTime(a, 4));
}

}  // namespace
}  // namespace bzzz::p2p::internal
