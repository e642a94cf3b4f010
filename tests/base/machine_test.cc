// base/machine.h on this machine: figures in range, consistent with
// /proc, and a busy thread shows up in the CPU sample.
#include "base/machine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace bzzz {
namespace {

using namespace std::chrono_literals;

TEST(MachineTest, FiguresAreInRange) {
  EXPECT_GT(AvailableCores(), 0.0);
  EXPECT_GT(MemoryLimitBytes(), 0u);
  const double used = MemoryUsedRatio();
  EXPECT_GE(used, 0.0);
  EXPECT_LE(used, 1.0);
}

TEST(MachineTest, ABusyThreadIsSeen) {
  CpuSampler sampler;
  EXPECT_EQ(sampler.Sample(), 0.0) << "nothing to compare with yet";
  std::atomic<bool> stop{false};
  std::thread spin([&] {
    volatile std::uint64_t x = 0;
    while (!stop.load(std::memory_order_relaxed)) x = x + 1;
  });
  std::this_thread::sleep_for(300ms);
  const double busy = sampler.Sample();
  stop = true;
  spin.join();
  EXPECT_GT(busy, 0.0);
  EXPECT_LE(busy, 1.0);
}

}  // namespace
}  // namespace bzzz
