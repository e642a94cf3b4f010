#include "cache/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <mutex>

namespace bzzz::cache {
namespace {

constexpr std::array<const char*, 3> kDomains = {"task", "dht", "other"};
constexpr std::array<const char*, 3> kResults = {"memory", "redis", "miss"};
// The hit ratio's window: six buckets of ten seconds.
constexpr std::int64_t kBucketMs = 10000;
constexpr std::size_t kBuckets = 6;

std::size_t DomainIndex(std::string_view domain) {
  for (std::size_t i = 0; i + 1 < kDomains.size(); ++i) {
    if (domain == kDomains[i]) return i;
  }
  return kDomains.size() - 1;
}

}  // namespace

struct CacheProbe::State {
  prometheus::Counter* lookups[kDomains.size()][kResults.size()] = {};
  prometheus::Gauge* ratio = nullptr;
  prometheus::Gauge* entries = nullptr;
  prometheus::Gauge* bytes = nullptr;
  prometheus::Gauge* redis_up = nullptr;
  prometheus::Counter* redis_errors = nullptr;
  prometheus::Counter* redis_skipped = nullptr;
  prometheus::Counter* redis_reconnects = nullptr;

  mutable std::mutex mu;  // the window
  struct Bucket {
    std::int64_t start = -1;
    std::uint64_t hits = 0;
    std::uint64_t lookups = 0;
  };
  std::array<Bucket, kBuckets> window;
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
  bool was_up = false;
  bool seen_state = false;

  double RatioLocked(std::int64_t now_ms) const {
    std::uint64_t h = 0, n = 0;
    for (const auto& b : window) {
      if (b.start >= 0 && b.start > now_ms - static_cast<std::int64_t>(kBuckets) * kBucketMs) {
        h += b.hits;
        n += b.lookups;
      }
    }
    return n == 0 ? 0.0 : static_cast<double>(h) / static_cast<double>(n);
  }
};

CacheProbe::CacheProbe(prometheus::Registry* registry, bool with_redis) : state_(std::make_unique<State>()) {
  if (registry == nullptr) return;
  auto& s = *state_;
  auto& lookups = prometheus::BuildCounter()
                      .Name("bzzz_cache_lookups_total")
                      .Help("Cache lookups by domain and by the layer that answered (miss: none did)")
                      .Register(*registry);
  for (std::size_t d = 0; d < kDomains.size(); ++d) {
    for (std::size_t r = 0; r < kResults.size(); ++r) {
      s.lookups[d][r] = &lookups.Add({{"domain", kDomains[d]}, {"result", kResults[r]}});
    }
  }
  s.ratio = &prometheus::BuildGauge()
                 .Name("no_cache_hit_ratio")
                 .Help("Cache hits over lookups in the last minute, every layer (0 without lookups)")
                 .Register(*registry)
                 .Add({});
  s.entries = &prometheus::BuildGauge()
                   .Name("bzzz_cache_memory_entries")
                   .Help("Entries in the in-memory cache layer")
                   .Register(*registry)
                   .Add({});
  s.bytes = &prometheus::BuildGauge()
                 .Name("bzzz_cache_memory_bytes")
                 .Help("Bytes in the in-memory cache layer (keys, values and a fixed overhead per entry)")
                 .Register(*registry)
                 .Add({});
  if (!with_redis) return;
  s.redis_up = &prometheus::BuildGauge()
                    .Name("bzzz_cache_redis_up")
                    .Help("1 while the Redis cache layer answers, 0 while the node runs on memory only")
                    .Register(*registry)
                    .Add({});
  s.redis_errors = &prometheus::BuildCounter()
                        .Name("bzzz_cache_redis_errors_total")
                        .Help("Redis commands that failed (the call went on without Redis)")
                        .Register(*registry)
                        .Add({});
  s.redis_skipped = &prometheus::BuildCounter()
                         .Name("bzzz_cache_redis_skipped_total")
                         .Help("Cache calls that skipped Redis: down, or no free connection in time")
                         .Register(*registry)
                         .Add({});
  s.redis_reconnects = &prometheus::BuildCounter()
                            .Name("bzzz_cache_redis_reconnects_total")
                            .Help("Times Redis came back after being down")
                            .Register(*registry)
                            .Add({});
}

CacheProbe::~CacheProbe() = default;

void CacheProbe::Lookup(std::string_view domain, Result result, std::int64_t now_ms) {
  auto& s = *state_;
  const bool hit = result != Result::kMiss;
  (hit ? s.hits : s.misses)++;
  double ratio;
  {
    std::lock_guard lock(s.mu);
    const std::int64_t start = now_ms - now_ms % kBucketMs;
    auto& b = s.window[static_cast<std::size_t>(start / kBucketMs) % kBuckets];
    if (b.start != start) b = State::Bucket{start, 0, 0};
    b.lookups++;
    if (hit) b.hits++;
    ratio = s.RatioLocked(now_ms);
  }
  if (s.ratio == nullptr) return;
  s.lookups[DomainIndex(domain)][static_cast<std::size_t>(result)]->Increment();
  s.ratio->Set(ratio);
}

void CacheProbe::Memory(std::size_t entries, std::size_t bytes) {
  if (state_->entries == nullptr) return;
  state_->entries->Set(static_cast<double>(entries));
  state_->bytes->Set(static_cast<double>(bytes));
}

void CacheProbe::RedisUp(bool up) {
  auto& s = *state_;
  {
    std::lock_guard lock(s.mu);
    const bool came_back = s.seen_state && !s.was_up && up;
    s.seen_state = true;
    s.was_up = up;
    if (came_back && s.redis_reconnects != nullptr) s.redis_reconnects->Increment();
  }
  if (s.redis_up != nullptr) s.redis_up->Set(up ? 1 : 0);
}

void CacheProbe::RedisError() {
  if (state_->redis_errors != nullptr) state_->redis_errors->Increment();
}

void CacheProbe::RedisSkipped() {
  if (state_->redis_skipped != nullptr) state_->redis_skipped->Increment();
}

double CacheProbe::HitRatio(std::int64_t now_ms) const {
  std::lock_guard lock(state_->mu);
  return state_->RatioLocked(now_ms);
}

std::uint64_t CacheProbe::hits() const { return state_->hits.load(); }
std::uint64_t CacheProbe::misses() const { return state_->misses.load(); }

}  // namespace bzzz::cache
