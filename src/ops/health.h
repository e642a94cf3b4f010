// HealthRegistry: named health checks, run on a schedule and on demand.
//
// Each check has an interval, a timeout and a critical flag. The registry
// runs every check at its interval on background threads and caches the
// last result; RunNow() runs one live. A check that exceeds its timeout is
// reported unhealthy ("timed out") and its late result is discarded; a
// check still hung from an earlier run is not started again until it
// returns.
//
// Rollup (SPEC §3.2): unhealthy if any critical check is unhealthy;
// degraded if any check is degraded or a non-critical one is unhealthy;
// healthy otherwise. Score: healthy 1, degraded 0.5, unhealthy 0.
//
// Components register their own checks (storage-health, memory, and later
// election-health, pubsub-health, dht-health, agent-pool, slurp-health).
// All methods are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace prometheus {
class Registry;
}

namespace bzzz::ops {

enum class HealthStatus { kHealthy, kDegraded, kUnhealthy, kUnknown };

std::string_view HealthStatusName(HealthStatus status);  // "healthy", ...
double HealthScore(HealthStatus status);                   // 1, 0.5, 0 (unknown: 0)

// What a check function returns.
struct CheckOutcome {
  HealthStatus status = HealthStatus::kHealthy;
  std::string message;
  std::string details_json = "{}";  // a JSON object with check-specific facts

  static CheckOutcome Healthy(std::string message, std::string details_json = "{}");
  static CheckOutcome Degraded(std::string message, std::string details_json = "{}");
  static CheckOutcome Unhealthy(std::string message, std::string details_json = "{}");
};

struct HealthCheckSpec {
  std::string name;  // e.g. "storage-health"
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{5000};
  bool critical = true;
  std::string description;
  // Runs on a registry thread; may block up to the timeout; may throw (an
  // exception is reported as unhealthy with its message).
  std::function<CheckOutcome()> fn;
};

// How long a check's own wait may last: its timeout less a margin for the
// registry to record the result before the timeout expires.
std::chrono::milliseconds CheckWait(std::chrono::milliseconds timeout);

// The last known result of a check.
struct CheckState {
  std::string name;
  HealthStatus status = HealthStatus::kUnknown;
  std::string message = "not run yet";
  std::string details_json = "{}";
  std::chrono::milliseconds duration{0};
  std::optional<std::chrono::system_clock::time_point> last_run;
  bool critical = true;
  std::chrono::milliseconds interval{0};
  std::chrono::milliseconds timeout{0};
  std::uint64_t runs = 0;
  std::uint64_t failures = 0;  // runs that were not healthy
};

// The rollup of a set of check states.
HealthStatus Rollup(const std::vector<CheckState>& checks);

class HealthRegistry {
 public:
  // `metrics` may be null.
  explicit HealthRegistry(prometheus::Registry* metrics);
  ~HealthRegistry();
  HealthRegistry(const HealthRegistry&) = delete;
  HealthRegistry& operator=(const HealthRegistry&) = delete;

  // Adds a check. AlreadyExists for a duplicate name; InvalidArgument for an
  // empty name, a missing function or non-positive interval/timeout. Checks
  // added after Start() are scheduled at once.
  Status Register(HealthCheckSpec spec);

  // Runs every check once (in parallel, each bounded by its timeout), then
  // schedules them. Idempotent.
  void Start();
  // Stops scheduling and waits (bounded) for running checks.
  void Stop();

  // Cached states, sorted by name.
  std::vector<CheckState> Snapshot() const;
  // Runs one check live and returns its new state. NotFound for an unknown name.
  Result<CheckState> RunNow(std::string_view name);
  // Runs every check live, in parallel; returns when all finished or timed out.
  std::vector<CheckState> RunAllNow();

  bool Has(std::string_view name) const;

  // The rollup of the cached states, kept current as results arrive; cheap
  // enough for every GET /health.
  HealthStatus Overall() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::ops
