// OwnedThreads: nothing is detached; finished threads are reaped; the
// destructor waits for the rest; an owner destroyed by its own thread
// does not deadlock.
#include "base/threads.h"

#include <gtest/gtest.h>

#include <chrono>

namespace bzzz {
namespace {

using namespace std::chrono_literals;

TEST(OwnedThreadsTest, JoinsEveryThreadAndCountsTheRunningOnes) {
  std::atomic<int> ran{0};
  std::atomic<bool> release{false};
  {
    OwnedThreads threads;
    for (int i = 0; i < 8; ++i) threads.Spawn([&] { ++ran; });
    threads.Spawn([&] {
      while (!release.load()) std::this_thread::sleep_for(1ms);
      ++ran;
    });
    for (int i = 0; i < 1000 && threads.Running() > 1; ++i) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(threads.Running(), 1u);
    release = true;
  }  // the destructor joined the slow one
  EXPECT_EQ(ran.load(), 9);
}

// The last reference to an owner held by one of its own threads: the
// owner's destructor runs on that thread and must not join it.
TEST(OwnedThreadsTest, AnOwnerDestroyedOnItsOwnThreadDoesNotDeadlock) {
  struct Owner {
    OwnedThreads threads;
  };
  std::atomic<bool> done{false};
  {
    auto owner = std::make_shared<Owner>();
    owner->threads.Spawn([keep = owner, &done]() mutable {
      std::this_thread::sleep_for(20ms);
      keep.reset();  // may be the last reference
      done = true;
    });
  }
  for (int i = 0; i < 2000 && !done.load(); ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(done.load());
}

}  // namespace
}  // namespace bzzz
