// RedisLayer: the cache's Redis layer, a pool of hiredis connections with
// a circuit: while Redis is down every call returns kSkipped at once and a
// background thread reconnects (backoff from 50 ms up to
// cache.redis.reconnect_interval). The first connection is tried in the
// constructor; a failure there only starts Redis down.
//
// Pool: at most pool.max_connections; the background thread keeps
// pool.min_connections open while Redis is up and closes idle ones above
// the minimum after pool.idle_timeout. A call waits up to
// pool.acquire_timeout for a connection, then skips. Every connection has
// cache.redis.timeout on connect and on each command; a connection whose
// command fails at the socket is dropped and Redis is marked down (one
// failure is enough: the node must not keep paying timeouts). A Redis
// error reply (OOM, a read-only replica) is counted and leaves it up.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "base/clock.h"
#include "cache/cache.h"
#include "config/config.h"

struct redisContext;

namespace bzzz::cache {

class RedisLayer {
 public:
  enum class Outcome { kHit, kMiss, kDone, kSkipped, kError };

  // `on_state` is called with true when Redis comes up and false when it
  // goes down (from whichever thread noticed; never under a lock).
  RedisLayer(config::RedisConfig config, std::function<void(bool up)> on_state);
  ~RedisLayer();
  RedisLayer(const RedisLayer&) = delete;
  RedisLayer& operator=(const RedisLayer&) = delete;

  Outcome Get(std::string_view key, std::string* value);
  Outcome Set(std::string_view key, std::string_view value, std::int64_t ttl_ms);
  Outcome Del(std::string_view key);
  Outcome Ping();

  RedisHealth Health() const;
  bool up() const { return up_flag_.load(); }

 private:
  struct Conn {
    redisContext* ctx = nullptr;
    SteadyTime last_used;
  };
  // A connected, authenticated, selected connection, or null with `why`.
  redisContext* Connect(std::string* why) const;
  redisContext* Acquire();
  void Release(redisContext* ctx, bool broken, const std::string& why);
  // Runs one command (argv form, binary-safe) and classifies the reply.
  Outcome Run(std::initializer_list<std::string_view> argv, std::string* value);
  // A counted connection (already freed, or never opened) failed: counts
  // the error, forgets it and marks Redis down.
  void LoseConnection(const std::string& why);
  void MarkDownLocked(const std::string& why, std::vector<redisContext*>* to_free);
  void Worker();

  const config::RedisConfig config_;
  const std::function<void(bool)> on_state_;
  const std::string endpoint_;

  mutable std::mutex mu_;
  std::condition_variable free_cv_;    // a connection returned or the state changed
  std::condition_variable worker_cv_;  // down, stopping, or time to tend the pool
  std::deque<Conn> idle_;              // back: most recently used
  int open_ = 0;
  bool up_ = false;
  bool stopping_ = false;
  std::string last_error_;
  std::int64_t down_since_ms_ = 0;
  std::atomic<bool> up_flag_{false};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> skipped_{0};
  std::thread worker_;
};

}  // namespace bzzz::cache
