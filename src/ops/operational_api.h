// The operational HTTP interface (SPEC §2, §3.2; nO runbook appendix B):
//
//   GET  /health                      public  rollup {status, timestamp, uptime_s, version, node_id, role}
//   GET  /health/live                 public  200 while the process serves
//   GET  /health/ready                public  503 when a critical check is unhealthy or shutting down
//   GET  /health/detailed             public  every check, run live
//   GET  /health/checks               public  cached results keyed by check name
//   GET  /metrics                     public  Prometheus text format
//   GET  /info                        system:read
//   GET  /admin/status                admin:read
//   POST /admin/shutdown              admin:write  (202; 409 when already shutting down)
//   GET  /admin/shutdown/handlers     admin:read
//   GET  /admin/health/checks         admin:read
//   POST /admin/health/check/:name    admin:write  (runs one check live)
//   GET  /debug/requests              debug:read   (?limit=N)
//
// JSON shapes are documented in docs/api.md.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "http/router.h"
#include "ops/health.h"
#include "ops/request_log.h"
#include "ops/shutdown.h"

namespace prometheus {
class Registry;
class Collectable;
}  // namespace prometheus

namespace bzzz::ops {

struct NodeInfo {
  std::string node_id;
  std::string name;
  std::string version;
  std::string git_commit;
  std::string role;
  std::string data_dir;
  std::chrono::system_clock::time_point started_at;
  std::chrono::steady_clock::time_point started_steady;
};

// A named part of GET /admin/status contributed by a component. `json`
// returns a serialized JSON value; it runs on an HTTP thread and must be quick.
struct StatusSection {
  std::string name;
  std::function<std::string()> json;
};

struct OperationalApi {
  NodeInfo info;
  std::shared_ptr<HealthRegistry> health;
  std::shared_ptr<ShutdownCoordinator> shutdown;
  std::shared_ptr<RequestLog> requests;
  // Null: /metrics is not served (monitoring.prometheus_enabled=false).
  std::shared_ptr<prometheus::Registry> metrics;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;  // scraped with `metrics`
  std::vector<StatusSection> status_sections;
};

// Adds the routes above to `router`. Fails if a route exists already.
Status RegisterOperationalRoutes(http::Router& router, OperationalApi api);

// Serializes the registry and the collectables in the Prometheus text format.
std::string RenderMetrics(prometheus::Registry& registry,
                          const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables);

// The "memory" check: degraded above `degraded_ratio` of the memory the
// process may use, unhealthy above `unhealthy_ratio`.
HealthCheckSpec MemoryCheck(double degraded_ratio, double unhealthy_ratio, std::chrono::milliseconds interval,
                            std::chrono::milliseconds timeout);

}  // namespace bzzz::ops
