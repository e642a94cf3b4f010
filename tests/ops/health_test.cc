#include "ops/health.h"
#include "ops/operational_api.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "support/support.h"

namespace bzzz::ops {
namespace {

using namespace std::chrono_literals;

CheckState State(HealthStatus s, bool critical) {
  CheckState c;
  c.status = s;
  c.critical = critical;
  return c;
}

TEST(RollupTest, Rules) {
  using S = HealthStatus;
  EXPECT_EQ(Rollup({}), S::kHealthy);
  EXPECT_EQ(Rollup({State(S::kHealthy, true), State(S::kHealthy, false)}), S::kHealthy);
  EXPECT_EQ(Rollup({State(S::kHealthy, true), State(S::kDegraded, true)}), S::kDegraded);
  EXPECT_EQ(Rollup({State(S::kHealthy, true), State(S::kUnhealthy, false)}), S::kDegraded);
  EXPECT_EQ(Rollup({State(S::kDegraded, false), State(S::kUnhealthy, true)}), S::kUnhealthy);
  EXPECT_EQ(Rollup({State(S::kUnknown, true)}), S::kUnhealthy) << "a critical check without a result";
  EXPECT_DOUBLE_EQ(HealthScore(S::kHealthy), 1.0);
  EXPECT_DOUBLE_EQ(HealthScore(S::kDegraded), 0.5);
  EXPECT_DOUBLE_EQ(HealthScore(S::kUnhealthy), 0.0);
}

HealthCheckSpec Spec(std::string name, std::function<CheckOutcome()> fn, bool critical = true,
                     std::chrono::milliseconds timeout = 1000ms, std::chrono::milliseconds interval = 60000ms) {
  HealthCheckSpec s;
  s.name = std::move(name);
  s.fn = std::move(fn);
  s.critical = critical;
  s.timeout = timeout;
  s.interval = interval;
  return s;
}

std::string Metrics(prometheus::Registry& r) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, r.Collect());
  return out.str();
}

TEST(HealthRegistryTest, RegisterValidates) {
  HealthRegistry registry(nullptr);
  EXPECT_TRUE(registry.Register(Spec("a", [] { return CheckOutcome::Healthy("ok"); })).ok());
  EXPECT_EQ(registry.Register(Spec("a", [] { return CheckOutcome::Healthy("ok"); })).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.Register(Spec("", [] { return CheckOutcome::Healthy("ok"); })).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register(Spec("b", nullptr)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register(Spec("c", [] { return CheckOutcome::Healthy("ok"); }, true, 0ms)).code(),
            StatusCode::kInvalidArgument);
}

TEST(HealthRegistryTest, StartRunsEveryCheckAndCachesResults) {
  prometheus::Registry metrics;
  HealthRegistry registry(&metrics);
  std::atomic<int> calls{0};
  ASSERT_TRUE(registry.Register(Spec("good", [&] {
                        ++calls;
                        return CheckOutcome::Healthy("fine", R"({"x":1})");
                      })).ok());
  ASSERT_TRUE(registry.Register(Spec("meh", [] { return CheckOutcome::Degraded("slow"); }, false)).ok());
  registry.Start();
  auto snap = registry.Snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].name, "good");
  EXPECT_EQ(snap[0].status, HealthStatus::kHealthy);
  EXPECT_EQ(snap[0].details_json, R"({"x":1})");
  EXPECT_TRUE(snap[0].last_run.has_value());
  EXPECT_EQ(snap[1].status, HealthStatus::kDegraded);
  EXPECT_EQ(Rollup(snap), HealthStatus::kDegraded);
  // Snapshots are cached: no new run.
  registry.Snapshot();
  EXPECT_EQ(calls.load(), 1);
  auto live = registry.RunNow("good");
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(live->runs, 2u);
  EXPECT_EQ(registry.RunNow("missing").status().code(), StatusCode::kNotFound);
  const std::string m = Metrics(metrics);
  EXPECT_NE(m.find("bzzz_system_health_score 0.5"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(bzzz_component_health_score{component="good"} 1)"), std::string::npos);
  EXPECT_NE(m.find(R"(bzzz_component_health_score{component="meh"} 0.5)"), std::string::npos);
  EXPECT_NE(m.find(R"(bzzz_health_checks_passed_total{check="good"} 2)"), std::string::npos);
  EXPECT_NE(m.find(R"(bzzz_health_checks_failed_total{check="meh"} 1)"), std::string::npos);
  EXPECT_NE(m.find(R"(bzzz_health_checks_failed_total{check="good"} 0)"), std::string::npos);
  registry.Stop();
}

TEST(HealthRegistryTest, TimeoutIsUnhealthyAndHungCheckIsNotRestarted) {
  HealthRegistry registry(nullptr);
  std::atomic<bool> release{false};
  std::atomic<int> started{0};
  ASSERT_TRUE(registry.Register(Spec("hangs", [&] {
                        ++started;
                        while (!release.load()) std::this_thread::sleep_for(5ms);
                        return CheckOutcome::Healthy("late");
                      }, true, 100ms)).ok());
  auto first = registry.RunNow("hangs");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->status, HealthStatus::kUnhealthy);
  EXPECT_NE(first->message.find("timed out"), std::string::npos);
  auto second = registry.RunNow("hangs");
  EXPECT_EQ(second->status, HealthStatus::kUnhealthy);
  EXPECT_EQ(started.load(), 1) << "a hung check must not pile up threads";
  release = true;
  // The late result is discarded; once it returned, a new run starts.
  ASSERT_TRUE(bzzz::testing::Eventually(
      [&] {
        auto s = registry.RunNow("hangs");
        return s.ok() && s->status == HealthStatus::kHealthy;
      },
      5s));
  EXPECT_EQ(started.load(), 2);
}

TEST(HealthRegistryTest, ExceptionIsUnhealthy) {
  HealthRegistry registry(nullptr);
  ASSERT_TRUE(registry.Register(Spec("throws", []() -> CheckOutcome { throw std::runtime_error("disk gone"); })).ok());
  auto s = registry.RunNow("throws");
  EXPECT_EQ(s->status, HealthStatus::kUnhealthy);
  EXPECT_NE(s->message.find("disk gone"), std::string::npos);
  EXPECT_EQ(s->failures, 1u);
}

TEST(HealthRegistryTest, SchedulerRerunsAtTheInterval) {
  HealthRegistry registry(nullptr);
  std::atomic<int> calls{0};
  ASSERT_TRUE(registry.Register(Spec("tick", [&] {
                        ++calls;
                        return CheckOutcome::Healthy("ok");
                      }, true, 1000ms, 20ms)).ok());
  registry.Start();
  EXPECT_TRUE(bzzz::testing::Eventually([&] { return calls.load() >= 4; }, 10s));
  registry.Stop();
  const int after_stop = calls.load();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), after_stop) << "no runs after Stop";
}

TEST(HealthRegistryTest, RunAllNowRunsInParallel) {
  HealthRegistry registry(nullptr);
  std::atomic<int> running{0}, peak{0};
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(registry.Register(Spec(name, [&] {
                          const int now = ++running;
                          int expected = peak.load();
                          while (now > expected && !peak.compare_exchange_weak(expected, now)) {
                          }
                          std::this_thread::sleep_for(500ms);
                          --running;
                          return CheckOutcome::Healthy("ok");
                        })).ok());
  }
  auto states = registry.RunAllNow();
  EXPECT_EQ(states.size(), 3u);
  EXPECT_EQ(peak.load(), 3);
}

TEST(MemoryCheckTest, ReportsUsage) {
  auto spec = MemoryCheck(0.85, 0.95, 1000ms, 1000ms);
  EXPECT_EQ(spec.name, "memory");
  EXPECT_FALSE(spec.critical);
  auto outcome = spec.fn();
  EXPECT_EQ(outcome.status, HealthStatus::kHealthy) << outcome.message;
  EXPECT_NE(outcome.details_json.find("resident_bytes"), std::string::npos);
  auto strict = MemoryCheck(0.0000001, 0.0000002, 1000ms, 1000ms).fn();
  EXPECT_EQ(strict.status, HealthStatus::kUnhealthy);
}

}  // namespace
}  // namespace bzzz::ops
