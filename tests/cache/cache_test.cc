// The cache against a real Redis started on loopback (support/services.h):
// layers, sharing between nodes, TTLs, losing Redis and getting it back.
#include "cache/cache.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "cache/service.h"
#include "support/services.h"

namespace bzzz::cache {
namespace {

using namespace std::chrono_literals;

config::CacheConfig MemoryOnly() {
  config::CacheConfig c;
  c.layers = {"memory"};
  return c;
}

config::CacheConfig WithRedis(std::uint16_t port, std::vector<std::string> layers = {"memory", "redis"}) {
  config::CacheConfig c;
  c.layers = std::move(layers);
  c.redis.host = "127.0.0.1";
  c.redis.port = port;
  c.redis.reconnect_interval = 200ms;
  return c;
}

// Waits up to 15 s for `pred`.
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 300; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

double Metric(prometheus::Registry& registry, const std::string& name,
              const std::vector<std::pair<std::string, std::string>>& labels = {}) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& l : m.label) found = found || (l.name == k && l.value == v);
        match = match && found;
      }
      if (!match) continue;
      return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return -1;
}

TEST(Cache, MemoryLayerAnswersAndCountsHitsAndMisses) {
  prometheus::Registry registry;
  auto cache = Cache::Open(MemoryOnly(), &registry);
  EXPECT_FALSE(cache->Get("task", "t1").has_value());
  cache->Put("task", "t1", "row");
  auto hit = cache->Get("task", "t1");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->value, "row");
  EXPECT_EQ(hit->layer, Layer::kMemory);
  EXPECT_FALSE(cache->Get("dht", "t1").has_value());  // domains do not mix

  const CacheHealth h = cache->Health();
  EXPECT_TRUE(h.enabled);
  EXPECT_EQ(h.hits, 1u);
  EXPECT_EQ(h.misses, 2u);
  EXPECT_NEAR(h.hit_ratio, 1.0 / 3.0, 1e-9);
  EXPECT_FALSE(h.redis.configured);
  EXPECT_EQ(AssessCacheHealth(h).status, ops::HealthStatus::kHealthy);
  EXPECT_NEAR(Metric(registry, "no_cache_hit_ratio"), 1.0 / 3.0, 1e-9);
  EXPECT_EQ(Metric(registry, "bzzz_cache_lookups_total", {{"domain", "task"}, {"result", "memory"}}), 1);
  EXPECT_EQ(Metric(registry, "bzzz_cache_lookups_total", {{"domain", "task"}, {"result", "miss"}}), 1);
  EXPECT_EQ(Metric(registry, "bzzz_cache_lookups_total", {{"domain", "dht"}, {"result", "miss"}}), 1);
  EXPECT_EQ(Metric(registry, "bzzz_cache_memory_entries"), 1);
  EXPECT_EQ(Metric(registry, "bzzz_cache_redis_up"), -1);  // no Redis layer, no series

  cache->Erase("task", "t1");
  EXPECT_FALSE(cache->Get("task", "t1").has_value());
}

TEST(Cache, DisabledCachesNothing) {
  config::CacheConfig c = MemoryOnly();
  c.enabled = false;
  auto cache = Cache::Open(c);
  cache->Put("task", "t1", "row");
  EXPECT_FALSE(cache->Get("task", "t1").has_value());
  EXPECT_FALSE(cache->Health().enabled);
  EXPECT_EQ(cache->Health().misses, 0u);  // not even counted
}

TEST(Cache, EntriesExpireAfterTheirTtl) {
  auto cache = Cache::Open(MemoryOnly());
  cache->Put("task", "short", "v", 50ms);
  cache->Put("task", "long", "v", 60s);
  std::this_thread::sleep_for(120ms);
  EXPECT_FALSE(cache->Get("task", "short").has_value());
  EXPECT_TRUE(cache->Get("task", "long").has_value());
}

TEST(Cache, ClearMemoryRemovesOneDomain) {
  auto cache = Cache::Open(MemoryOnly());
  cache->Put("dht", "a", "v");
  cache->Put("dht", "b", "v");
  cache->Put("task", "a", "v");
  EXPECT_EQ(cache->ClearMemory("dht"), 2u);
  EXPECT_FALSE(cache->Get("dht", "a").has_value());
  EXPECT_TRUE(cache->Get("task", "a").has_value());
}

class CacheRedis : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<testing::RedisServer>();
    ASSERT_TRUE(redis_->ok()) << redis_->error();
  }
  std::unique_ptr<testing::RedisServer> redis_;
};

TEST_F(CacheRedis, NodesShareWhatOneOfThemCached) {
  auto a = Cache::Open(WithRedis(redis_->port()));
  auto b = Cache::Open(WithRedis(redis_->port()));
  ASSERT_TRUE(a->Health().redis.up) << a->Health().redis.last_error;
  const std::string binary("row\0with\xff bytes", 15);
  a->Put("task", "t1", binary, 60s);

  // In Redis under the prefix, with the TTL.
  EXPECT_EQ(redis_->Cli("EXISTS bzzz:task:t1"), "1");
  const long pttl = std::stol(redis_->Cli("PTTL bzzz:task:t1"));
  EXPECT_GT(pttl, 50000);
  EXPECT_LE(pttl, 60000);

  auto first = b->Get("task", "t1");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->value, binary);
  EXPECT_EQ(first->layer, Layer::kRedis);
  auto second = b->Get("task", "t1");  // promoted into b's memory
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->layer, Layer::kMemory);
  EXPECT_EQ(AssessCacheHealth(b->Health()).status, ops::HealthStatus::kHealthy);
}

TEST_F(CacheRedis, AHitTheCallerMustCheckIsNotPromoted) {
  auto a = Cache::Open(WithRedis(redis_->port()));
  auto b = Cache::Open(WithRedis(redis_->port()));
  a->Put("dht", "rec", "signed bytes");
  ASSERT_EQ(b->Get("dht", "rec", /*promote=*/false)->layer, Layer::kRedis);
  ASSERT_EQ(b->Get("dht", "rec", /*promote=*/false)->layer, Layer::kRedis);
  b->Put("dht", "rec", "signed bytes", 60s, Cache::Scope::kMemoryOnly);
  EXPECT_EQ(b->Get("dht", "rec")->layer, Layer::kMemory);
}

TEST_F(CacheRedis, RedisExpiresEntriesAndEraseRemovesThemEverywhere) {
  auto only_redis = Cache::Open(WithRedis(redis_->port(), {"redis"}));
  only_redis->Put("task", "short", "v", 100ms);
  only_redis->Put("task", "gone", "v", 60s);
  only_redis->Erase("task", "gone");
  EXPECT_EQ(redis_->Cli("EXISTS bzzz:task:gone"), "0");
  EXPECT_FALSE(only_redis->Get("task", "gone").has_value());
  EXPECT_TRUE(Eventually([&] { return !only_redis->Get("task", "short").has_value(); }));
}

TEST_F(CacheRedis, KeyPrefixesKeepClustersApart) {
  config::CacheConfig one = WithRedis(redis_->port());
  config::CacheConfig two = one;
  two.redis.key_prefix = "other:";
  auto a = Cache::Open(one);
  auto b = Cache::Open(two);
  a->Put("task", "t1", "v");
  EXPECT_FALSE(b->Get("task", "t1").has_value());
  EXPECT_EQ(redis_->Cli("EXISTS other:task:t1"), "0");
}

TEST_F(CacheRedis, LosingRedisDegradesAndNeverFailsThenItReconnectsByItself) {
  prometheus::Registry registry;
  auto cache = Cache::Open(WithRedis(redis_->port()), &registry);
  cache->Put("task", "before", "v");
  ASSERT_TRUE(cache->Health().redis.up);
  EXPECT_EQ(Metric(registry, "bzzz_cache_redis_up"), 1);

  ASSERT_TRUE(redis_->Stop());
  // The first command fails and marks Redis down; the memory layer still answers.
  cache->Put("task", "during", "v");
  EXPECT_EQ(cache->Get("task", "before")->layer, Layer::kMemory);
  EXPECT_EQ(cache->Get("task", "during")->layer, Layer::kMemory);
  EXPECT_FALSE(cache->Get("task", "never").has_value());
  CacheHealth h = cache->Health();
  EXPECT_FALSE(h.redis.up);
  EXPECT_FALSE(h.redis.last_error.empty());
  EXPECT_GT(h.redis.down_since_ms, 0);
  EXPECT_EQ(h.redis.open, 0);
  const auto outcome = AssessCacheHealth(h);
  EXPECT_EQ(outcome.status, ops::HealthStatus::kDegraded);
  EXPECT_NE(outcome.message.find("memory layer only"), std::string::npos) << outcome.message;
  EXPECT_EQ(Metric(registry, "bzzz_cache_redis_up"), 0);

  // While it is down, calls skip Redis at once instead of failing again.
  const std::uint64_t errors = h.redis.errors;
  for (int i = 0; i < 100; ++i) {
    (void)cache->Get("task", "missing-" + std::to_string(i));
    cache->Put("task", "p" + std::to_string(i), "v");
  }
  h = cache->Health();
  EXPECT_GE(h.redis.skipped, 200u);
  EXPECT_LE(h.redis.errors, errors + 20);  // only the reconnection attempts fail
  EXPECT_GE(Metric(registry, "bzzz_cache_redis_skipped_total"), 200);

  ASSERT_TRUE(redis_->Start());
  ASSERT_TRUE(Eventually([&] { return cache->Health().redis.up; })) << cache->Health().redis.last_error;
  h = cache->Health();
  EXPECT_EQ(h.redis.reconnects, 1u);
  EXPECT_EQ(AssessCacheHealth(h).status, ops::HealthStatus::kHealthy);
  EXPECT_EQ(Metric(registry, "bzzz_cache_redis_up"), 1);
  EXPECT_EQ(Metric(registry, "bzzz_cache_redis_reconnects_total"), 1);
  cache->Put("task", "after", "v");
  EXPECT_EQ(redis_->Cli("EXISTS bzzz:task:after"), "1");
}

TEST_F(CacheRedis, AnIdleNodeNoticesALostRedisThroughItsHealthCheck) {
  auto cache = Cache::Open(WithRedis(redis_->port()));
  ASSERT_TRUE(cache->Health().redis.up);
  ASSERT_TRUE(redis_->Stop());
  cache->CheckRedis();  // what cache-health runs
  EXPECT_FALSE(cache->Health().redis.up);
}

TEST_F(CacheRedis, StartsWithRedisDownAndConnectsWhenItComes) {
  const std::uint16_t port = redis_->port();
  ASSERT_TRUE(redis_->Stop());
  auto cache = Cache::Open(WithRedis(port));
  EXPECT_FALSE(cache->Health().redis.up);
  EXPECT_EQ(AssessCacheHealth(cache->Health()).status, ops::HealthStatus::kDegraded);
  cache->Put("task", "t", "v");  // memory only, no failure
  EXPECT_EQ(cache->Get("task", "t")->layer, Layer::kMemory);
  ASSERT_TRUE(redis_->Start());
  EXPECT_TRUE(Eventually([&] { return cache->Health().redis.up; }));
}

TEST(CacheRedisAuth, AWrongPasswordKeepsRedisDownAndSaysWhy) {
  testing::RedisServer redis(0, "s3cret-for-tests");
  ASSERT_TRUE(redis.ok()) << redis.error();
  config::CacheConfig wrong = WithRedis(redis.port());
  wrong.redis.password = "not-it";
  auto refused = Cache::Open(wrong);
  const CacheHealth h = refused->Health();
  EXPECT_FALSE(h.redis.up);
  EXPECT_NE(h.redis.last_error.find("AUTH"), std::string::npos) << h.redis.last_error;
  EXPECT_EQ(h.redis.endpoint.find("not-it"), std::string::npos);  // never the password

  config::CacheConfig right = WithRedis(redis.port());
  right.redis.password = "s3cret-for-tests";
  right.redis.db = 3;
  auto cache = Cache::Open(right);
  ASSERT_TRUE(cache->Health().redis.up) << cache->Health().redis.last_error;
  cache->Put("task", "t", "v");
  EXPECT_EQ(redis.Cli("-n 3 EXISTS bzzz:task:t"), "1");
  EXPECT_EQ(redis.Cli("-n 0 EXISTS bzzz:task:t"), "0");
}

TEST_F(CacheRedis, ThePoolNeverOpensMoreThanItsMaximum) {
  config::CacheConfig c = WithRedis(redis_->port(), {"redis"});
  c.redis.pool.min_connections = 1;
  c.redis.pool.max_connections = 2;
  auto cache = Cache::Open(c);
  std::atomic<int> most{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      most = std::max(most.load(), cache->Health().redis.open);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 6; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        cache->Put("task", std::to_string(t) + "-" + std::to_string(i), "v");
        (void)cache->Get("task", std::to_string(t) + "-" + std::to_string(i));
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  watcher.join();
  const CacheHealth h = cache->Health();
  EXPECT_LE(most.load(), 2);
  EXPECT_TRUE(h.redis.up);
  EXPECT_EQ(h.redis.errors, 0u);
  // Every lookup was answered by Redis or skipped for want of a connection.
  EXPECT_EQ(h.hits + h.misses, 1800u);
  EXPECT_GT(h.hits, 0u);
}

}  // namespace
}  // namespace bzzz::cache
