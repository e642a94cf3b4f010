#include "cache/cache.h"

#include <algorithm>

#include "base/clock.h"
#include "cache/memory.h"
#include "cache/probe.h"
#include "cache/redis.h"

namespace bzzz::cache {
namespace {

// Larger values are not worth a round trip's share of Redis's memory.
constexpr std::size_t kMaxRedisValue = 4u << 20;

bool Has(const std::vector<std::string>& layers, std::string_view layer) {
  return std::find(layers.begin(), layers.end(), layer) != layers.end();
}

}  // namespace

std::string_view LayerName(Layer layer) { return layer == Layer::kMemory ? "memory" : "redis"; }

struct Cache::Impl {
  config::CacheConfig config;
  bool enabled = false;
  CacheProbe probe;
  std::unique_ptr<MemoryLayer> memory;  // null unless layered
  std::unique_ptr<RedisLayer> redis;    // null unless layered

  Impl(const config::CacheConfig& c, prometheus::Registry* registry)
      : config(c),
        enabled(c.enabled && !c.layers.empty()),
        probe(registry, c.enabled && Has(c.layers, "redis")) {
    if (!enabled) return;
    if (Has(c.layers, "memory")) memory = std::make_unique<MemoryLayer>(c.max_size, c.max_bytes);
    if (Has(c.layers, "redis")) {
      redis = std::make_unique<RedisLayer>(c.redis, [this](bool up) { probe.RedisUp(up); });
    }
  }

  std::string Key(std::string_view domain, std::string_view key) const {
    std::string k;
    k.reserve(domain.size() + 1 + key.size());
    k.append(domain).append(":").append(key);
    return k;
  }
  std::string RedisKey(const std::string& key) const { return config.redis.key_prefix + key; }

  void Count(RedisLayer::Outcome o) {
    if (o == RedisLayer::Outcome::kError) probe.RedisError();
    if (o == RedisLayer::Outcome::kSkipped) probe.RedisSkipped();
  }
  void UpdateMemoryGauges() {
    if (memory) probe.Memory(memory->entries(), memory->bytes());
  }
};

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cache::~Cache() = default;

std::shared_ptr<Cache> Cache::Open(const config::CacheConfig& config, prometheus::Registry* registry) {
  return std::shared_ptr<Cache>(new Cache(std::make_unique<Impl>(config, registry)));
}

bool Cache::enabled() const { return impl_->enabled; }

std::optional<Hit> Cache::Get(std::string_view domain, std::string_view key, bool promote) {
  Impl& n = *impl_;
  if (!n.enabled) return std::nullopt;
  const std::string k = n.Key(domain, key);
  const std::int64_t now = MonotonicMillisNow();
  if (n.memory) {
    if (auto v = n.memory->Get(k, now)) {
      n.probe.Lookup(domain, CacheProbe::Result::kMemory, now);
      return Hit{std::move(*v), Layer::kMemory};
    }
  }
  if (n.redis) {
    std::string value;
    const auto o = n.redis->Get(n.RedisKey(k), &value);
    n.Count(o);
    if (o == RedisLayer::Outcome::kHit) {
      n.probe.Lookup(domain, CacheProbe::Result::kRedis, now);
      // Redis does not say how long the entry has left: the copy in memory
      // lives for the default TTL at most (callers cache only values that
      // do not change while cached).
      if (promote && n.memory) {
        (void)n.memory->Put(k, value, now + n.config.default_ttl.count());
        n.UpdateMemoryGauges();
      }
      return Hit{std::move(value), Layer::kRedis};
    }
  }
  n.probe.Lookup(domain, CacheProbe::Result::kMiss, now);
  return std::nullopt;
}

void Cache::Put(std::string_view domain, std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                Scope scope) {
  Impl& n = *impl_;
  if (!n.enabled) return;
  if (ttl.count() <= 0) ttl = n.config.default_ttl;
  const std::string k = n.Key(domain, key);
  if (n.memory) {
    (void)n.memory->Put(k, value, MonotonicMillisNow() + ttl.count());
    n.UpdateMemoryGauges();
  }
  if (n.redis && scope == Scope::kAllLayers && value.size() <= kMaxRedisValue) {
    n.Count(n.redis->Set(n.RedisKey(k), value, ttl.count()));
  }
}

void Cache::Erase(std::string_view domain, std::string_view key) {
  Impl& n = *impl_;
  if (!n.enabled) return;
  const std::string k = n.Key(domain, key);
  if (n.memory) {
    (void)n.memory->Erase(k);
    n.UpdateMemoryGauges();
  }
  if (n.redis) n.Count(n.redis->Del(n.RedisKey(k)));
}

std::size_t Cache::ClearMemory(std::string_view domain) {
  Impl& n = *impl_;
  if (!n.memory) return 0;
  const std::size_t removed = n.memory->ErasePrefix(n.Key(domain, ""));
  n.UpdateMemoryGauges();
  return removed;
}

void Cache::CheckRedis() {
  if (impl_->redis) impl_->Count(impl_->redis->Ping());
}

CacheHealth Cache::Health() const {
  const Impl& n = *impl_;
  CacheHealth h;
  h.enabled = n.enabled;
  h.layers = n.config.layers;
  if (n.memory) {
    h.memory_entries = n.memory->entries();
    h.memory_bytes = n.memory->bytes();
    h.memory_evictions = n.memory->evictions();
  }
  h.hits = n.probe.hits();
  h.misses = n.probe.misses();
  h.hit_ratio = n.probe.HitRatio(MonotonicMillisNow());
  if (n.redis) h.redis = n.redis->Health();
  return h;
}

}  // namespace bzzz::cache
