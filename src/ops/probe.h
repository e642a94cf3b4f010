// Metrics of the operational subsystem (health). Only this class knows
// their names:
//   bzzz_system_health_score                 1 healthy, 0.5 degraded, 0 unhealthy
//   bzzz_component_health_score{component}   the same, per check
//   bzzz_health_checks_passed_total{check}   runs that were healthy
//   bzzz_health_checks_failed_total{check}   runs that were degraded or unhealthy
//   bzzz_errors_total{component="health"}    check runs that threw or timed out
// Thread-safe.
#pragma once

#include <string>

namespace prometheus {
class Registry;
}

namespace bzzz::ops {

class HealthProbe {
 public:
  // `registry` may be null: every method is then a no-op.
  explicit HealthProbe(prometheus::Registry* registry);

  void CheckRegistered(const std::string& name);
  void CheckRan(const std::string& name, bool passed, double score, bool errored);
  void SystemScore(double score);

 private:
  prometheus::Registry* registry_;
};

}  // namespace bzzz::ops
