#include "cache/service.h"

#include <nlohmann/json.hpp>

#include "base/clock.h"

namespace bzzz::cache {

using nlohmann::json;

std::string HealthJson(const CacheHealth& h) {
  json j = {{"enabled", h.enabled},
            {"layers", h.layers},
            {"hits", h.hits},
            {"misses", h.misses},
            {"hit_ratio", h.hit_ratio},
            {"memory", {{"entries", h.memory_entries}, {"bytes", h.memory_bytes}, {"evictions", h.memory_evictions}}}};
  if (h.redis.configured) {
    j["redis"] = {{"endpoint", h.redis.endpoint}, {"up", h.redis.up},
                  {"last_error", h.redis.last_error}, {"errors", h.redis.errors},
                  {"reconnects", h.redis.reconnects}, {"skipped", h.redis.skipped},
                  {"pool", {{"open", h.redis.open}, {"idle", h.redis.idle}, {"min", h.redis.min}, {"max", h.redis.max}}}};
    if (!h.redis.up && h.redis.down_since_ms > 0) {
      j["redis"]["down_since"] = FormatIso8601(SystemTime(std::chrono::milliseconds(h.redis.down_since_ms)));
    }
  }
  return j.dump();
}

ops::CheckOutcome AssessCacheHealth(const CacheHealth& h) {
  const std::string details = HealthJson(h);
  if (!h.enabled) return ops::CheckOutcome::Healthy("cache disabled", details);
  if (h.redis.configured && !h.redis.up) {
    std::string why = "redis " + h.redis.endpoint + " is down";
    if (!h.redis.last_error.empty()) why += " (" + h.redis.last_error + ")";
    return ops::CheckOutcome::Degraded(why + ": running on the memory layer only, reconnecting", details);
  }
  return ops::CheckOutcome::Healthy("ok", details);
}

std::vector<ops::HealthCheckSpec> CacheComponent::HealthChecks(const config::OperationsConfig& ops) {
  ops::HealthCheckSpec spec;
  spec.name = "cache-health";
  spec.interval = ops.health_check_interval;
  spec.timeout = ops.health_check_timeout;
  spec.critical = false;  // losing the cache makes the node slower, not wrong
  spec.description = "every configured cache layer answers (Redis down: degraded, memory layer only)";
  spec.fn = [weak = std::weak_ptr<Cache>(cache_)] {
    auto cache = weak.lock();
    if (!cache) return ops::CheckOutcome::Healthy("stopped");
    cache->CheckRedis();
    return AssessCacheHealth(cache->Health());
  };
  return {spec};
}

std::string CacheComponent::StatusJson(std::string_view section) const {
  if (section != "cache") return "{}";
  return HealthJson(cache_->Health());
}

}  // namespace bzzz::cache
