// Component: the one shape in which a subsystem joins a node.
//
// Each subsystem (cluster membership, P2P and DHT, election, UCXI, tasks,
// and the ones to come) starts in its own directory and returns a
// shared_ptr to an object implementing Component; the node keeps a list of
// them and Attach() wires each one the same way:
//
//   routes         RegisterRoutes(router), under the subsystem's own paths
//   health checks  HealthChecks(ops) -> HealthRegistry
//   status         StatusSections() names the sections of GET /admin/status
//                  it fills; StatusJson(name) renders one when asked
//   shutdown       ShutdownSteps(config) -> ShutdownCoordinator, at the
//                  standard priorities of shutdown.h
//
// What Attach registers holds the component only weakly: a status section
// of a component that is already gone renders as {}, a shutdown step of one
// that is gone does nothing, and while a section or step runs the component
// cannot be destroyed under it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "http/router.h"
#include "ops/health.h"
#include "ops/operational_api.h"
#include "ops/shutdown.h"

namespace bzzz::ops {

struct ShutdownStep {
  std::string name;     // "agents.drain"
  int priority = kPriorityStopServices;
  std::chrono::milliseconds budget{2000};
  std::function<Status()> run;
};

class Component : public std::enable_shared_from_this<Component> {
 public:
  virtual ~Component() = default;

  virtual std::string_view Name() const = 0;
  virtual Status RegisterRoutes(http::Router& router) {
    (void)router;
    return Status::Ok();
  }
  virtual std::vector<HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) {
    (void)ops;
    return {};
  }
  virtual std::vector<std::string> StatusSections() const { return {}; }
  // The JSON object of one of StatusSections().
  virtual std::string StatusJson(std::string_view section) const {
    (void)section;
    return "{}";
  }
  virtual std::vector<ShutdownStep> ShutdownSteps(const config::Config& config) {
    (void)config;
    return {};
  }
};

// Where a node collects what its components contribute.
struct ComponentSinks {
  http::Router& router;
  HealthRegistry& health;
  std::vector<StatusSection>& status_sections;
  ShutdownCoordinator& shutdown;
};

// Registers everything `component` contributes (see above). The component
// must be owned by a shared_ptr. Fails on the first route or check that
// cannot be registered (a duplicate, a malformed route).
Status Attach(const std::shared_ptr<Component>& component, const config::Config& config, ComponentSinks sinks);

}  // namespace bzzz::ops
