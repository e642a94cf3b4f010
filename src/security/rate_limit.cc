#include "security/rate_limit.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>

namespace bzzz::security {

namespace {

double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool IsIp(std::string_view text) {
  const std::string s(text);
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr double kSweepEvery = 1024;  // takes per shard between sweeps

}  // namespace

std::string_view RouteClassName(RouteClass c) { return c == RouteClass::kRead ? "read" : "write"; }

RateLimiter::RateLimiter(RateLimitOptions options) : options_(std::move(options)) {
  if (!options_.now) options_.now = SteadySeconds;
}

RateDecision RateLimiter::Take(std::string_view key, RouteClass cls) {
  const double rate = cls == RouteClass::kRead ? options_.read_rate : options_.write_rate;
  const double burst = cls == RouteClass::kRead ? options_.read_burst : options_.write_burst;
  std::string id(key);
  id.push_back(cls == RouteClass::kRead ? 'r' : 'w');
  Shard& shard = shards_[std::hash<std::string>{}(id) % shards_.size()];
  const double now = options_.now();
  std::lock_guard lock(shard.mu);
  if (++shard.takes % static_cast<std::uint64_t>(kSweepEvery) == 0 ||
      shard.buckets.size() > options_.max_buckets / shards_.size()) {
    Sweep(shard, now);
  }
  auto [it, fresh] = shard.buckets.try_emplace(std::move(id), Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh) b.tokens = std::min(burst, b.tokens + (now - b.updated) * rate);
  b.updated = now;
  RateDecision d;
  d.limit = burst;
  if (b.tokens >= 1) {
    b.tokens -= 1;
  } else {
    d.allowed = false;
    d.retry_after = (1 - b.tokens) / rate;
  }
  d.remaining = std::floor(b.tokens);
  d.reset_seconds = (burst - b.tokens) / rate;
  return d;
}

void RateLimiter::Sweep(Shard& shard, double now) {
  // Forget buckets that have refilled (a fresh one is the same).
  for (auto it = shard.buckets.begin(); it != shard.buckets.end();) {
    const bool read = it->first.back() == 'r';
    const double rate = read ? options_.read_rate : options_.write_rate;
    const double burst = read ? options_.read_burst : options_.write_burst;
    if (it->second.tokens + (now - it->second.updated) * rate >= burst) {
      it = shard.buckets.erase(it);
    } else {
      ++it;
    }
  }
  // Still too many: the idlest go first.
  const std::size_t cap = std::max<std::size_t>(1, options_.max_buckets / shards_.size());
  if (shard.buckets.size() > cap) {
    std::vector<std::pair<double, std::string>> by_age;
    by_age.reserve(shard.buckets.size());
    for (const auto& [id, b] : shard.buckets) by_age.emplace_back(b.updated, id);
    std::sort(by_age.begin(), by_age.end());
    for (std::size_t i = 0; i < by_age.size() - cap; ++i) shard.buckets.erase(by_age[i].second);
  }
}

std::size_t RateLimiter::buckets() const {
  std::size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.buckets.size();
  }
  return n;
}

std::string ClientBehindProxies(const std::string& peer, const std::string* forwarded_for,
                                const std::vector<std::string>& trusted_proxies) {
  auto trusted = [&](std::string_view ip) {
    return std::find(trusted_proxies.begin(), trusted_proxies.end(), ip) != trusted_proxies.end();
  };
  if (forwarded_for == nullptr || !trusted(peer)) return peer;
  std::string_view list = *forwarded_for;
  // Right to left: the nearest hop first; skip our own proxies.
  while (!list.empty()) {
    const auto comma = list.rfind(',');
    const std::string_view entry = Trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(0, comma);
    if (!IsIp(entry)) return peer;
    if (!trusted(entry)) return std::string(entry);
  }
  return peer;
}

}  // namespace bzzz::security
