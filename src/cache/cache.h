// Cache: the node's read cache (SPEC §3.11), in layers, nearest first
// (cache.layers):
//
//   memory  an LRU in this process, bounded by cache.max_size entries and
//           cache.max_bytes; every entry has a TTL.
//   redis   a Redis server (hiredis), shared by every node pointed at it,
//           so that what one node fetched another reads without asking the
//           store or the DHT; keys start with cache.redis.key_prefix and
//           carry the entry's TTL (SET ... PX).
//
// Get looks in each layer in order; a hit in Redis is copied into memory
// unless the caller asks otherwise (it may want to verify the value first,
// as the DHT does with signed records). Put writes every layer.
//
// Losing Redis never fails a call: the first failed command marks Redis
// down, and until a background thread has reconnected (backoff from 50 ms
// up to cache.redis.reconnect_interval) every call skips it at once, so the
// node runs on its memory layer, slower but correct. A lookup that finds
// every pooled connection busy for cache.redis.pool.acquire_timeout skips
// Redis too (a miss, counted). Health() says which of these holds; the
// cache-health check (service.h) reports "degraded" while Redis is down.
//
// What is cached is decided by the callers: values that do not change
// while cached (finished tasks, signed DHT records until dht.cache_ttl).
// Nothing here invalidates another node's memory layer.
//
// Keys are "<domain>:<key>"; `domain` is one of a few constants ("task",
// "dht"), a metric label. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace prometheus {
class Registry;
}

namespace bzzz::cache {

enum class Layer { kMemory, kRedis };
std::string_view LayerName(Layer layer);  // "memory", "redis"

struct Hit {
  std::string value;
  Layer layer = Layer::kMemory;
};

struct RedisHealth {
  bool configured = false;     // cache.layers has redis
  bool up = false;
  std::string endpoint;        // host:port/db, never the password
  std::string last_error;      // why it went down last ("" before any failure)
  std::int64_t down_since_ms = 0;  // Unix ms; 0 while up
  std::uint64_t errors = 0;        // failed commands and connections
  std::uint64_t reconnects = 0;    // times it came back after being down
  std::uint64_t skipped = 0;       // lookups and writes that skipped Redis (down or pool busy)
  int open = 0;                    // pooled connections
  int idle = 0;
  int min = 0;
  int max = 0;
};

struct CacheHealth {
  bool enabled = false;
  std::vector<std::string> layers;  // as configured, nearest first
  std::size_t memory_entries = 0;
  std::size_t memory_bytes = 0;
  std::uint64_t memory_evictions = 0;
  std::uint64_t hits = 0;           // since start, every layer
  std::uint64_t misses = 0;
  double hit_ratio = 0;             // over the last minute (no_cache_hit_ratio); 0 without lookups
  RedisHealth redis;
};

class Cache {
 public:
  // Never fails for Redis: when it cannot be reached now, the cache starts
  // with Redis down and connects in the background. `registry` may be null.
  static std::shared_ptr<Cache> Open(const config::CacheConfig& config, prometheus::Registry* registry = nullptr);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // The value under domain:key from the nearest layer holding it, nullopt
  // on a miss (or when the cache is disabled). A Redis hit is copied into
  // memory when `promote`; a caller that must check the value first passes
  // false and calls Put(..., kMemoryOnly) once it has.
  std::optional<Hit> Get(std::string_view domain, std::string_view key, bool promote = true);

  enum class Scope { kAllLayers, kMemoryOnly };
  // Stores `value` for `ttl` (cache.default_ttl when zero). Values larger
  // than an eighth of cache.max_bytes skip memory; larger than 4 MiB skip
  // Redis. A Redis failure is counted and otherwise ignored.
  void Put(std::string_view domain, std::string_view key, std::string_view value,
           std::chrono::milliseconds ttl = std::chrono::milliseconds(0), Scope scope = Scope::kAllLayers);

  // Removes domain:key from every layer (Redis: when it is up).
  void Erase(std::string_view domain, std::string_view key);
  // Removes every memory entry of `domain`; returns how many. Redis keeps
  // its copies (other nodes share them) until their TTL.
  std::size_t ClearMemory(std::string_view domain);

  // Sends PING to Redis when it is up (the cache-health check), so that a
  // Redis lost while the node was idle is noticed without a failed lookup.
  void CheckRedis();
  CacheHealth Health() const;
  bool enabled() const;

 private:
  struct Impl;
  explicit Cache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bzzz::cache
