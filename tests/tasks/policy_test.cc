// The nO loop's pure decisions: assignment strategies, retry backoff with
// jitter, and autoscaling.
#include <gtest/gtest.h>

#include "tasks/policy.h"

namespace bzzz::tasks {
namespace {

WorkerSlot Slot(std::string id, int load, double perf, std::vector<std::string> caps = {}, std::string role = "") {
  WorkerSlot s;
  s.agent_id = std::move(id);
  s.load = load;
  s.performance = perf;
  s.capabilities = std::move(caps);
  s.role = std::move(role);
  return s;
}

TEST(StrategyTest, NamesRoundTrip) {
  for (Strategy s : {Strategy::kRoundRobin, Strategy::kLeastLoaded, Strategy::kPerformance, Strategy::kCapabilityMatch}) {
    EXPECT_EQ(ParseStrategy(StrategyName(s)), s);
  }
  EXPECT_FALSE(ParseStrategy("random").has_value());
}

TEST(StrategyTest, RoundRobinRotates) {
  std::vector<WorkerSlot> slots = {Slot("a", 0, 0.5), Slot("b", 0, 0.5), Slot("c", 0, 0.5)};
  std::size_t cursor = 0;
  std::vector<int> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(PickWorker(Strategy::kRoundRobin, slots, {}, cursor));
  EXPECT_EQ(picks, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(StrategyTest, LeastLoadedPicksFewestRunning) {
  std::vector<WorkerSlot> slots = {Slot("a", 3, 0.9), Slot("b", 1, 0.1), Slot("c", 2, 0.5)};
  std::size_t cursor = 0;
  EXPECT_EQ(PickWorker(Strategy::kLeastLoaded, slots, {}, cursor), 1);
}

TEST(StrategyTest, PerformancePicksBestScoreThenLeastLoaded) {
  std::vector<WorkerSlot> slots = {Slot("a", 0, 0.4), Slot("b", 2, 0.9), Slot("c", 1, 0.9)};
  std::size_t cursor = 0;
  EXPECT_EQ(PickWorker(Strategy::kPerformance, slots, {}, cursor), 2);
}

TEST(StrategyTest, CapabilityMatchPrefersTheMostSpecialisedFit) {
  std::vector<WorkerSlot> slots = {Slot("general", 0, 0.5, {"gpu", "rust", "go"}), Slot("gpu-only", 0, 0.5, {"gpu"}),
                                   Slot("none", 0, 0.5, {})};
  std::size_t cursor = 0;
  EXPECT_EQ(PickWorker(Strategy::kCapabilityMatch, slots, Requirements{{"gpu"}, "", ""}, cursor), 1);
  EXPECT_EQ(PickWorker(Strategy::kCapabilityMatch, slots, Requirements{{"rust"}, "", ""}, cursor), 0);
}

TEST(StrategyTest, EveryStrategyHonoursCapabilitiesRoleAndFreeSlots) {
  std::vector<WorkerSlot> slots = {Slot("a", 0, 0.9, {"x"}, "coder"), Slot("b", 0, 0.9, {"x", "y"}, "reviewer")};
  slots[1].free = 0;
  for (Strategy s : {Strategy::kRoundRobin, Strategy::kLeastLoaded, Strategy::kPerformance, Strategy::kCapabilityMatch}) {
    std::size_t cursor = 0;
    EXPECT_EQ(PickWorker(s, slots, Requirements{{"x"}, "", ""}, cursor), 0) << StrategyName(s);
    EXPECT_EQ(PickWorker(s, slots, Requirements{{"y"}, "", ""}, cursor), -1) << StrategyName(s);  // b has no free slot
    EXPECT_EQ(PickWorker(s, slots, Requirements{{}, "reviewer", ""}, cursor), -1) << StrategyName(s);
    EXPECT_EQ(PickWorker(s, {}, Requirements{}, cursor), -1);
  }
}

TEST(StrategyTest, ExecutorKindsLimitWhereATaskCanGo) {
  std::vector<WorkerSlot> slots = {Slot("no-llm", 0, 0.9), Slot("llm", 3, 0.1)};
  slots[0].executors = {"builtin", "command", "http"};
  slots[1].executors = {"builtin", "command", "http", "llm"};
  std::size_t cursor = 0;
  EXPECT_EQ(PickWorker(Strategy::kLeastLoaded, slots, Requirements{{}, "", "llm"}, cursor), 1);
  EXPECT_EQ(PickWorker(Strategy::kLeastLoaded, slots, Requirements{{}, "", "builtin"}, cursor), 0);
  slots[0].executors.clear();  // empty: every kind
  EXPECT_EQ(PickWorker(Strategy::kLeastLoaded, slots, Requirements{{}, "", "llm"}, cursor), 0);
}

TEST(BackoffTest, DoublesCapsAndJitters) {
  EXPECT_EQ(RetryDelayMs(1, 500, 60000, 0.0), 250);
  EXPECT_EQ(RetryDelayMs(1, 500, 60000, 0.999999), 499);
  EXPECT_EQ(RetryDelayMs(2, 500, 60000, 0.0), 500);
  EXPECT_EQ(RetryDelayMs(3, 500, 60000, 0.0), 1000);
  EXPECT_EQ(RetryDelayMs(30, 500, 60000, 0.0), 30000);  // capped at 60 s, jittered into [30, 60] s
  EXPECT_LE(RetryDelayMs(1000, 500, 60000, 1.0), 60000);
  for (int n = 1; n < 20; ++n) {
    const auto lo = RetryDelayMs(n, 100, 5000, 0.0), hi = RetryDelayMs(n, 100, 5000, 0.99);
    EXPECT_LE(lo, hi);
    EXPECT_GE(lo, 50);
    EXPECT_LE(hi, 5000);
  }
}

config::AutoscalingConfig Scaling() {
  config::AutoscalingConfig c;
  c.enabled = true;
  c.min_agents = 2;
  c.max_agents = 6;
  c.target_cpu = 70;
  c.target_memory = 80;
  c.scale_up_cooldown = std::chrono::milliseconds(1000);
  c.scale_down_cooldown = std::chrono::milliseconds(5000);
  c.step = 2;
  return c;
}

TEST(AutoscaleTest, UpWhenWorkWaitsAndEveryAgentIsBusy) {
  ScaleInputs in{.size = 2, .busy = 2, .queue_depth = 10, .cpu_percent = 30, .memory_percent = 40, .now_ms = 10000};
  auto d = DecideScale(in, Scaling());
  EXPECT_EQ(d.delta, 2);
  in.size = 5;
  in.busy = 5;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 1);  // never above max
  in.size = 6;
  in.busy = 6;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 0);
}

TEST(AutoscaleTest, NotUpOverCpuOrMemoryTargetOrInsideCooldown) {
  ScaleInputs in{.size = 2, .busy = 2, .queue_depth = 10, .cpu_percent = 95, .memory_percent = 40, .now_ms = 10000};
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 0);
  in.cpu_percent = 30;
  in.last_scale_up_ms = 9500;  // 500 ms ago, cooldown 1 s
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 0);
  in.last_scale_up_ms = 9000;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 2);
}

TEST(AutoscaleTest, DownWhenIdleAndNothingWaitsRespectingMinAndCooldown) {
  ScaleInputs in{.size = 5, .busy = 1, .queue_depth = 0, .cpu_percent = 10, .memory_percent = 40, .now_ms = 100000};
  EXPECT_EQ(DecideScale(in, Scaling()).delta, -2);
  in.size = 3;
  in.busy = 0;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, -1);  // never below min
  in.last_scale_down_ms = 99000;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 0);
  in.size = 2;
  in.last_scale_down_ms = -1;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 0);
}

TEST(AutoscaleTest, MemoryPressureShedsAndBoundsAreRestoredAtOnce) {
  ScaleInputs in{.size = 4, .busy = 4, .queue_depth = 10, .cpu_percent = 10, .memory_percent = 95, .now_ms = 100000};
  EXPECT_EQ(DecideScale(in, Scaling()).delta, -2);
  in.size = 0;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, 2);  // below min
  in.size = 9;
  EXPECT_EQ(DecideScale(in, Scaling()).delta, -3);  // above max
  auto off = Scaling();
  off.enabled = false;
  in.size = 3;
  EXPECT_EQ(DecideScale(in, off).delta, 0);
}

}  // namespace
}  // namespace bzzz::tasks
