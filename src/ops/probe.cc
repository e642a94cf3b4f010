#include "ops/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace bzzz::ops {

namespace {
// Families are looked up through the registry (Merge behavior returns the
// existing family), so that several probes can share a name such as
// bzzz_errors_total. These calls are not on a hot path: checks run seconds
// apart.
prometheus::Family<prometheus::Counter>& Passed(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("bzzz_health_checks_passed_total")
      .Help("Health check runs that were healthy")
      .Register(r);
}
prometheus::Family<prometheus::Counter>& Failed(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("bzzz_health_checks_failed_total")
      .Help("Health check runs that were degraded or unhealthy")
      .Register(r);
}
prometheus::Family<prometheus::Gauge>& Component(prometheus::Registry& r) {
  return prometheus::BuildGauge()
      .Name("bzzz_component_health_score")
      .Help("Health of each check: 1 healthy, 0.5 degraded, 0 unhealthy")
      .Register(r);
}
}  // namespace

HealthProbe::HealthProbe(prometheus::Registry* registry) : registry_(registry) {
  if (!registry_) return;
  prometheus::BuildGauge()
      .Name("bzzz_system_health_score")
      .Help("Rollup of all health checks: 1 healthy, 0.5 degraded, 0 unhealthy")
      .Register(*registry_)
      .Add({});
  prometheus::BuildCounter()
      .Name("bzzz_errors_total")
      .Help("Errors by component")
      .Register(*registry_)
      .Add({{"component", "health"}});
}

void HealthProbe::CheckRegistered(const std::string& name) {
  if (!registry_) return;
  Passed(*registry_).Add({{"check", name}});
  Failed(*registry_).Add({{"check", name}});
  Component(*registry_).Add({{"component", name}});
}

void HealthProbe::CheckRan(const std::string& name, bool passed, double score, bool errored) {
  if (!registry_) return;
  (passed ? Passed(*registry_) : Failed(*registry_)).Add({{"check", name}}).Increment();
  Component(*registry_).Add({{"component", name}}).Set(score);
  if (errored) {
    prometheus::BuildCounter().Name("bzzz_errors_total").Register(*registry_).Add({{"component", "health"}}).Increment();
  }
}

void HealthProbe::SystemScore(double score) {
  if (!registry_) return;
  prometheus::BuildGauge().Name("bzzz_system_health_score").Register(*registry_).Add({}).Set(score);
}

}  // namespace bzzz::ops
