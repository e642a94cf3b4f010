// The cache in the running node: the cache-health check (not critical:
// healthy with every configured layer answering, degraded while Redis is
// down and the node runs on its memory layer) and the "cache" section of
// GET /admin/status. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache.h"
#include "ops/component.h"

namespace bzzz::cache {

// The JSON object describing `h` (the check's details and the status section).
std::string HealthJson(const CacheHealth& h);
// healthy / degraded as above, with a message naming what is missing.
ops::CheckOutcome AssessCacheHealth(const CacheHealth& h);

class CacheComponent : public ops::Component {
 public:
  explicit CacheComponent(std::shared_ptr<Cache> cache) : cache_(std::move(cache)) {}
  std::string_view Name() const override { return "cache"; }
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"cache"}; }
  std::string StatusJson(std::string_view section) const override;

 private:
  std::shared_ptr<Cache> cache_;
};

}  // namespace bzzz::cache
