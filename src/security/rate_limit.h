// Rate limiting (SPEC §3.10): token buckets per principal and route class.
//
// A request is charged to its principal when it carries a valid identity,
// else to its client address, in one of two classes: reads (GET, HEAD) and
// writes (every other method), each with its own rate and burst
// (security.rate_limit.*). A bucket holds up to `burst` tokens and refills
// at `rate` per second; a request takes one or is refused, and the answer
// says when to come back. Limits are per node: a client spreading its
// requests over N nodes gets N times the limit (docs/security.md).
//
// The client address is the connection's peer unless the peer is one of
// the configured trusted proxies, in which case it is the right-most
// address of X-Forwarded-For that is not a trusted proxy
// (ClientBehindProxies); forwarded headers from anyone else are ignored.
//
// Thread-safe (sharded locks); memory is bounded: buckets that have
// refilled are forgotten, and past `max_buckets` the idlest go first.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bzzz::security {

enum class RouteClass { kRead, kWrite };
std::string_view RouteClassName(RouteClass c);

struct RateLimitOptions {
  double read_rate = 100, read_burst = 200;
  double write_rate = 50, write_burst = 100;
  std::size_t max_buckets = 100000;
  // Monotonic seconds (tests pass their own).
  std::function<double()> now;
};

struct RateDecision {
  bool allowed = true;
  double limit = 0;          // the bucket's burst: X-RateLimit-Limit
  double remaining = 0;      // tokens left after this request: X-RateLimit-Remaining
  double reset_seconds = 0;  // until the bucket is full again: X-RateLimit-Reset
  double retry_after = 0;    // when refused: until one token is back (Retry-After)
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimitOptions options);
  // Takes one token of `key`'s bucket of `cls`.
  RateDecision Take(std::string_view key, RouteClass cls);
  std::size_t buckets() const;

 private:
  struct Bucket {
    double tokens = 0;
    double updated = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
    std::uint64_t takes = 0;
  };
  void Sweep(Shard& shard, double now);

  RateLimitOptions options_;
  std::array<Shard, 16> shards_;
};

// The client a request comes from: `peer` (an IP address), or, when `peer`
// is one of `trusted_proxies`, the right-most address of `forwarded_for`
// (X-Forwarded-For, "client, proxy1, proxy2") that is not a trusted proxy.
// Entries that are not IP literals stop the walk (the peer is used).
std::string ClientBehindProxies(const std::string& peer, const std::string* forwarded_for,
                                const std::vector<std::string>& trusted_proxies);

}  // namespace bzzz::security
