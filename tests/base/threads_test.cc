// OwnedThreads: nothing is detached; finished threads are reaped; the
// destructor waits for the rest; an owner destroyed by its own thread
// does not deadlock. SerialQueue: in order, one thread, drained at stop.
// NameThisThread: what /proc shows, cut to Linux's 15 bytes.
#include "base/threads.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

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

TEST(SerialQueueTest, RunsInPostOrderOnOneThreadAndDrainsAtStop) {
  std::vector<int> seen;
  std::set<std::thread::id> threads;
  std::mutex mu;
  SerialQueue q("test-queue");
  for (int i = 0; i < 100; ++i) {
    q.Post([&, i] {
      std::lock_guard lock(mu);
      seen.push_back(i);
      threads.insert(std::this_thread::get_id());
    });
  }
  std::vector<std::function<void()>> batch;
  for (int i = 100; i < 200; ++i) {
    batch.push_back([&, i] {
      std::lock_guard lock(mu);
      seen.push_back(i);
    });
  }
  q.PostAll(std::move(batch));
  q.Stop();  // what was posted before runs
  ASSERT_EQ(seen.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  q.Post([&] { seen.push_back(-1); });  // after Stop: dropped
  q.Stop();
  EXPECT_EQ(seen.size(), 200u);
}

// The calling thread's name as the kernel keeps it.
std::string ThisThreadsName() {
  std::ifstream comm("/proc/self/task/" + std::to_string(gettid()) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

TEST(NameThisThreadTest, TheKernelShowsTheNameCutTo15Bytes) {
  std::string short_name, long_name, queue_name;
  std::thread([&] {
    NameThisThread("task-writer");
    short_name = ThisThreadsName();
    NameThisThread("a-name-longer-than-fifteen-bytes");
    long_name = ThisThreadsName();
  }).join();
  EXPECT_EQ(short_name, "task-writer");
  EXPECT_EQ(long_name, "a-name-longer-t");
  SerialQueue q("task-acks");
  q.Post([&] { queue_name = ThisThreadsName(); });
  q.Stop();
  EXPECT_EQ(queue_name, "task-acks");
}

}  // namespace
}  // namespace bzzz
