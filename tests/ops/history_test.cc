// The node's own history (ops/history.h): samples taken from a real
// metrics registry and health registry, rates from counter deltas, the
// changes of checks and of the admin, the bound, and the long poll.
#include "ops/history.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <future>
#include <mutex>

#include "support/support.h"

namespace bzzz::ops {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics = std::make_shared<prometheus::Registry>();
    peers = &prometheus::BuildGauge().Name("bzzz_p2p_connected_peers").Register(*metrics).Add({});
    pool = &prometheus::BuildGauge().Name("no_agent_pool_size").Register(*metrics).Add({});
    pool->Set(2);
    auto& tasks = prometheus::BuildCounter().Name("no_tasks_total").Register(*metrics);
    succeeded = &tasks.Add({{"state", "succeeded"}, {"executor", "builtin"}});
    dead = &tasks.Add({{"state", "dead"}, {"executor", "builtin"}});
    created = &tasks.Add({{"state", "created"}, {"executor", "builtin"}});
    health = std::make_shared<HealthRegistry>(metrics.get());
    HealthCheckSpec check;
    check.name = "storage-health";
    check.interval = 50ms;
    check.fn = [this] { return ok.load() ? CheckOutcome::Healthy("ok") : CheckOutcome::Unhealthy("unreachable"); };
    ASSERT_TRUE(health->Register(check).ok());
    health->Start();
  }
  void TearDown() override {
    if (history) history->Stop();
    health->Stop();
  }

  void StartHistory(std::size_t samples = 900) {
    HistorySources sources;
    sources.health = health;
    sources.metrics = metrics.get();
    sources.node_id = "n1";
    sources.started_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796000000000));
    sources.admin = [this](std::uint64_t* term) {
      std::lock_guard lock(admin_mu);
      *term = admin_term;
      return admin;
    };
    sources.on_sample = [this](const HistorySample& s) {
      std::lock_guard lock(admin_mu);
      rollups.push_back(s.health);
    };
    history = History::Start(std::move(sources), {.interval = 100ms, .samples = samples, .changes = 100});
  }

  json Answer(std::uint64_t after = 0) { return json::parse(history->Json(after)); }

  std::shared_ptr<prometheus::Registry> metrics;
  prometheus::Gauge *peers = nullptr, *pool = nullptr;
  prometheus::Counter *succeeded = nullptr, *dead = nullptr, *created = nullptr;
  std::shared_ptr<HealthRegistry> health;
  std::atomic<bool> ok{true};
  std::mutex admin_mu;
  std::string admin = "aa";
  std::uint64_t admin_term = 1;
  std::vector<std::string> rollups;  // the health of each sample handed on
  std::shared_ptr<History> history;
};

TEST_F(HistoryTest, SamplesCarryTheRegistryFiguresAndRatesFromCounterDeltas) {
  peers->Set(3);
  StartHistory();
  ASSERT_TRUE(Eventually([&] { return history->Latest() >= 1; }, 5s));
  const std::uint64_t first = history->Latest();
  succeeded->Increment(50);
  dead->Increment(5);
  created->Increment(1000);  // not a finished task: counted in neither rate
  ASSERT_TRUE(Eventually([&] { return history->Latest() >= first + 1; }, 5s));
  const json a = Answer();
  EXPECT_EQ(a["node_id"], "n1");
  EXPECT_EQ(a["started_ms"], 1796000000000);
  EXPECT_EQ(a["interval_ms"], 100);
  ASSERT_GE(a["samples"].size(), 2u);
  const json& s0 = a["samples"][0];
  EXPECT_EQ(s0["peers"], 3.0);
  EXPECT_TRUE(s0["succeeded_per_s"].is_null()) << "no rate before a second sample";
  EXPECT_EQ(s0["health"], "healthy");
  EXPECT_EQ(s0["admin_id"], "aa");
  EXPECT_EQ(s0["term"], 1);
  EXPECT_TRUE(s0["links"].is_null()) << "a metric the registry does not have is unknown, not 0";
  // The samples after the increments: 50 succeeded and 5 dead over the
  // seconds between two samples, whichever sample holds them.
  double succeeded_seen = 0, failed_seen = 0;
  for (std::size_t i = 1; i < a["samples"].size(); ++i) {
    const json& s = a["samples"][i];
    const double seconds = (s["t_ms"].get<double>() - a["samples"][i - 1]["t_ms"].get<double>()) / 1000;
    succeeded_seen += s["succeeded_per_s"].get<double>() * seconds;
    failed_seen += s["failed_per_s"].get<double>() * seconds;
  }
  EXPECT_NEAR(succeeded_seen, 50, 1.5);
  EXPECT_NEAR(failed_seen, 5, 0.5);
  EXPECT_GT(a["samples"].back()["resident_bytes"].get<double>(), 0);
}

TEST_F(HistoryTest, ChecksAdminsAndPoolSizesAreRecordedAsTheyChange) {
  StartHistory();
  ASSERT_TRUE(Eventually([&] { return history->Latest() >= 1; }, 5s));
  pool->Set(3);
  ok = false;
  ASSERT_TRUE(health->RunNow("storage-health").ok());
  {
    std::lock_guard lock(admin_mu);
    admin = "bb";
    admin_term = 2;
  }
  ASSERT_TRUE(Eventually([&] {
    const json a = Answer();
    return a["health_changes"].size() >= 2 && a["leadership"].size() >= 2 && a["scaling"].size() >= 1;
  }, 5s));
  const json a = Answer();
  ASSERT_EQ(a["scaling"].size(), 1u) << "the first size seen is not a change";
  EXPECT_EQ(a["scaling"][0]["from"], 2.0);
  EXPECT_EQ(a["scaling"][0]["to"], 3.0);
  EXPECT_EQ(a["samples"].back()["agents"], 3.0);
  EXPECT_EQ(a["health_changes"][0]["check"], "storage-health");
  EXPECT_EQ(a["health_changes"][0]["from"], "unknown");
  EXPECT_EQ(a["health_changes"][0]["to"], "healthy");
  EXPECT_EQ(a["health_changes"][1]["from"], "healthy");
  EXPECT_EQ(a["health_changes"][1]["to"], "unhealthy");
  EXPECT_EQ(a["health_changes"][1]["message"], "unreachable");
  EXPECT_EQ(a["leadership"][0]["admin_id"], "aa");
  EXPECT_EQ(a["leadership"][1]["admin_id"], "bb");
  EXPECT_EQ(a["leadership"][1]["term"], 2);
  // Each sample is handed to the node (which announces its health).
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(admin_mu);
    return !rollups.empty() && rollups.back() == "unhealthy";
  }, 5s));
  std::lock_guard lock(admin_mu);
  EXPECT_EQ(rollups.front(), "healthy");
}

TEST_F(HistoryTest, TheWindowIsBoundedAndAfterSelectsNewerSamples) {
  StartHistory(10);
  ASSERT_TRUE(Eventually([&] { return history->Latest() >= 14; }, 10s));
  const json all = Answer();
  ASSERT_EQ(all["samples"].size(), 10u);
  const std::uint64_t newest = all["seq"];
  EXPECT_EQ(all["samples"].back()["seq"], all["samples"][9]["seq"]);
  const std::uint64_t oldest = all["samples"][0]["seq"];
  const json newer = Answer(oldest + 7);
  for (const auto& s : newer["samples"]) EXPECT_GT(s["seq"].get<std::uint64_t>(), oldest + 7);
  EXPECT_EQ(Answer(1)["samples"].size(), 10u) << "a number older than the window gets the whole window";
  EXPECT_EQ(Answer(newest + 1000)["samples"].size(), 10u)
      << "a number from before a restart gets the whole window";
}

TEST_F(HistoryTest, WatchWaitsForTheNextSampleAndStopAnswersWaiters) {
  StartHistory();
  ASSERT_TRUE(Eventually([&] { return history->Latest() >= 1; }, 5s));
  const std::uint64_t now = history->Latest();
  std::promise<std::string> answered;
  history->Watch(now, 10s, [&](std::string body) { answered.set_value(std::move(body)); });
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "a sample comes every 100 ms";
  const json a = json::parse(f.get());
  ASSERT_FALSE(a["samples"].empty());
  EXPECT_GT(a["samples"][0]["seq"].get<std::uint64_t>(), now);

  // A waiter whose time is up gets what there is; Stop answers the rest.
  std::promise<std::string> at_stop;
  history->Stop();
  history->Watch(history->Latest(), 10s, [&](std::string body) { at_stop.set_value(std::move(body)); });
  auto g = at_stop.get_future();
  EXPECT_EQ(g.wait_for(1s), std::future_status::ready) << "a stopped history answers at once";
}

}  // namespace
}  // namespace bzzz::ops
