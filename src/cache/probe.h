// Metrics of the cache (SPEC §3.11, §4). Only this class knows their names:
//   no_cache_hit_ratio                          hits / lookups over the last minute (0 without lookups)
//   bzzz_cache_lookups_total{domain,result}     domain "task"|"dht"|"other", result "memory"|"redis"|"miss"
//   bzzz_cache_memory_entries, bzzz_cache_memory_bytes
//   bzzz_cache_redis_up                         1 up, 0 down (absent without a Redis layer)
//   bzzz_cache_redis_errors_total               failed Redis commands (the call went on without Redis)
//   bzzz_cache_redis_skipped_total              calls that skipped Redis (down, or no free connection)
//   bzzz_cache_redis_reconnects_total           times Redis came back after being down
// Every series with a known label set exists at zero from start.
// Thread-safe; no-ops without a registry (the hit ratio is still kept).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "cache/cache.h"

namespace prometheus {
class Registry;
}

namespace bzzz::cache {

class CacheProbe {
 public:
  CacheProbe(prometheus::Registry* registry, bool with_redis);
  ~CacheProbe();

  enum class Result { kMemory, kRedis, kMiss };
  void Lookup(std::string_view domain, Result result, std::int64_t now_ms);
  void Memory(std::size_t entries, std::size_t bytes);
  void RedisUp(bool up);
  void RedisError();
  void RedisSkipped();

  // Hits and lookups over the last minute, as no_cache_hit_ratio shows them.
  double HitRatio(std::int64_t now_ms) const;
  std::uint64_t hits() const;
  std::uint64_t misses() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::cache
