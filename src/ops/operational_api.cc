#include "ops/operational_api.h"

#include <charconv>
#include <map>
#include <optional>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/clock.h"
#include "http/blocking.h"
#include "ops/process_metrics.h"

namespace bzzz::ops {

namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

double UptimeSeconds(const NodeInfo& info) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - info.started_steady).count();
}

json CheckJson(const CheckState& c, bool admin) {
  json details = ParseJson(c.details_json);
  if (details.is_discarded()) details = json::object();
  json j = {
      {"status", HealthStatusName(c.status)},
      {"message", c.message},
      {"duration_ms", c.duration.count()},
      {"last_run", c.last_run ? json(FormatIso8601(*c.last_run)) : json(nullptr)},
      {"critical", c.critical},
      {"details", std::move(details)},
  };
  if (admin) {
    j["interval_ms"] = c.interval.count();
    j["timeout_ms"] = c.timeout.count();
    j["runs"] = c.runs;
    j["failures"] = c.failures;
  }
  return j;
}

json ChecksJson(const std::vector<CheckState>& checks, bool admin) {
  json out = json::object();
  for (const auto& c : checks) out[c.name] = CheckJson(c, admin);
  return out;
}

// What an anonymous caller sees of the checks: status and criticality, no
// messages or details (they name paths, peers and errors). A caller with a
// valid token sees everything.
json VisibleChecksJson(const std::vector<CheckState>& checks, bool known_caller) {
  if (known_caller) return ChecksJson(checks, false);
  json out = json::object();
  for (const auto& c : checks) out[c.name] = {{"status", HealthStatusName(c.status)}, {"critical", c.critical}};
  return out;
}

int StatusCodeFor(HealthStatus status) { return status == HealthStatus::kUnhealthy ? 503 : 200; }

struct Api {
  OperationalApi deps;
  http::BlockingRuns runs;
  std::vector<std::pair<std::string, std::string>> routes;  // for /info: "METHOD path" -> permission
};

json Process() {
  const ProcessStats s = ReadProcessStats();
  return {{"resident_bytes", s.resident_bytes},   {"virtual_bytes", s.virtual_bytes},
          {"cpu_seconds", s.cpu_seconds},         {"open_fds", s.open_fds},
          {"threads", s.threads},                 {"memory_limit_bytes", s.memory_limit_bytes},
          {"memory_usage_ratio", s.memory_usage_ratio}};
}

}  // namespace

std::string RenderMetrics(prometheus::Registry& registry,
                          const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  auto families = registry.Collect();
  for (const auto& c : collectables) {
    auto more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

HealthCheckSpec MemoryCheck(double degraded_ratio, double unhealthy_ratio, std::chrono::milliseconds interval,
                            std::chrono::milliseconds timeout) {
  HealthCheckSpec spec;
  spec.name = "memory";
  spec.interval = interval;
  spec.timeout = timeout;
  spec.critical = false;  // memory pressure degrades; it does not stop traffic by itself
  spec.description = "resident memory against the cgroup or machine limit";
  spec.fn = [degraded_ratio, unhealthy_ratio] {
    const ProcessStats s = ReadProcessStats();
    const json details = {{"resident_bytes", s.resident_bytes},
                          {"limit_bytes", s.memory_limit_bytes},
                          {"usage_ratio", s.memory_usage_ratio},
                          {"degraded_ratio", degraded_ratio},
                          {"unhealthy_ratio", unhealthy_ratio}};
    char summary[128];
    std::snprintf(summary, sizeof summary, "resident %.1f MiB, %.1f%% of %.0f MiB",
                  static_cast<double>(s.resident_bytes) / 1048576.0, s.memory_usage_ratio * 100.0,
                  static_cast<double>(s.memory_limit_bytes) / 1048576.0);
    if (s.memory_limit_bytes == 0) return CheckOutcome::Degraded("memory limit unknown", Dump(details));
    if (s.memory_usage_ratio >= unhealthy_ratio) return CheckOutcome::Unhealthy(summary, Dump(details));
    if (s.memory_usage_ratio >= degraded_ratio) return CheckOutcome::Degraded(summary, Dump(details));
    return CheckOutcome::Healthy(summary, Dump(details));
  };
  return spec;
}

Status RegisterOperationalRoutes(http::Router& router, OperationalApi deps) {
  auto api = std::make_shared<Api>();
  api->deps = std::move(deps);
  using http::Method;
  using http::Request;
  using http::Response;
  std::string error;
  auto add = [&](Method method, std::string pattern, std::string permission, bool probe, std::string summary,
                 http::Handler handler, http::AsyncHandler async = nullptr, bool blocking = false) -> bool {
    http::Route route;
    route.blocking = blocking;
    route.method = method;
    route.pattern = std::move(pattern);
    route.permission = std::move(permission);
    route.probe = probe;
    route.summary = std::move(summary);
    route.handler = std::move(handler);
    route.async_handler = std::move(async);
    api->routes.emplace_back(std::string(http::MethodName(method)) + " " + route.pattern, route.permission);
    return router.Add(std::move(route), &error);
  };
  const auto& info = api->deps.info;
  const auto health = api->deps.health;
  const auto shutdown = api->deps.shutdown;
  Api* a = api.get();

  bool ok = true;
  // GET /health is what load balancers and monitors hammer: the fixed part
  // of the body is serialized once, the rest appended by hand.
  const std::string health_tail = ",\"version\":" + Dump(info.version) + ",\"node_id\":" + Dump(info.node_id) +
                                  ",\"role\":" + Dump(info.role) + "}";
  ok &= add(Method::kGet, "/health", std::string(http::kPublic), true, "rollup of all health checks",
            [api, health_tail](Request&) {
              const auto status = api->deps.health->Overall();
              std::string body;
              body.reserve(96 + health_tail.size());
              body += "{\"status\":\"";
              body += HealthStatusName(status);
              body += "\",\"timestamp\":\"";
              body += FormatIso8601(std::chrono::system_clock::now());
              body += "\",\"uptime_s\":";
              char number[32];
              const auto end = std::to_chars(number, number + sizeof number, UptimeSeconds(api->deps.info),
                                             std::chars_format::fixed, 3).ptr;
              body.append(number, end);
              body += health_tail;
              return Response::Json(StatusCodeFor(status), std::move(body));
            });
  ok &= add(Method::kGet, "/health/live", std::string(http::kPublic), true, "liveness probe", [api](Request&) {
    json body = {{"status", "alive"},
                 {"timestamp", FormatIso8601(std::chrono::system_clock::now())},
                 {"uptime_s", UptimeSeconds(api->deps.info)}};
    return Response::Json(200, Dump(body));
  });
  ok &= add(Method::kGet, "/health/ready", std::string(http::kPublic), true,
            "readiness probe: 503 when a critical check is unhealthy or the node is shutting down",
            [api](Request&) {
              const auto checks = api->deps.health->Snapshot();
              json failing = json::array();
              for (const auto& c : checks) {
                if (c.critical && c.status != HealthStatus::kHealthy && c.status != HealthStatus::kDegraded) {
                  failing.push_back(c.name);
                }
              }
              const bool stopping = api->deps.shutdown->GetStatus().requested;
              const bool ready = failing.empty() && !stopping;
              json body = {{"status", ready ? "ready" : "not_ready"},
                           {"timestamp", FormatIso8601(std::chrono::system_clock::now())},
                           {"failing_checks", std::move(failing)},
                           {"shutting_down", stopping}};
              return Response::Json(ready ? 200 : 503, Dump(body));
            });
  ok &= add(Method::kGet, "/health/detailed", std::string(http::kPublic), true, "every check, run live (details with a valid token)",
            nullptr, [api](Request& req, http::Responder respond) {
              const bool known = req.identity.authenticated;
              api->runs.Run("detailed", req.request_id, std::move(respond), [api, known] {
                const auto checks = api->deps.health->RunAllNow();
                const auto status = Rollup(checks);
                const auto& i = api->deps.info;
                json body = {{"status", HealthStatusName(status)},
                             {"score", HealthScore(status)},
                             {"timestamp", FormatIso8601(std::chrono::system_clock::now())},
                             {"uptime_s", UptimeSeconds(i)},
                             {"version", i.version},
                             {"node_id", i.node_id},
                             {"role", i.role},
                             {"checks", VisibleChecksJson(checks, known)}};
                if (known) body["process"] = Process();
                return Response::Json(StatusCodeFor(status), Dump(body));
              });
            });
  ok &= add(Method::kGet, "/health/checks", std::string(http::kPublic), true, "cached check results by name (details with a valid token)",
            [api](Request& req) {
              const auto checks = api->deps.health->Snapshot();
              json body = {{"status", HealthStatusName(Rollup(checks))},
                           {"timestamp", FormatIso8601(std::chrono::system_clock::now())},
                           {"checks", VisibleChecksJson(checks, req.identity.authenticated)}};
              return Response::Json(200, Dump(body));
            });
  if (api->deps.metrics) {
    ok &= add(Method::kGet, "/metrics", std::string(http::kPublic), true, "Prometheus metrics", [api](Request&) {
      return Response::Text(200, RenderMetrics(*api->deps.metrics, api->deps.collectables),
                            "text/plain; version=0.0.4; charset=utf-8");
    });
  }
  ok &= add(Method::kGet, "/info", "system:read", false, "node identity, version and routes", [a](Request&) {
    const auto& i = a->deps.info;
    json routes = json::array();
    for (const auto& [route, permission] : a->routes) routes.push_back({{"route", route}, {"permission", permission}});
    json body = {{"name", i.name},
                 {"node_id", i.node_id},
                 {"version", i.version},
                 {"git_commit", i.git_commit},
                 {"role", i.role},
                 {"started_at", FormatIso8601(i.started_at)},
                 {"uptime_s", UptimeSeconds(i)},
                 {"data_dir", i.data_dir},
                 {"build", {{"compiler", __VERSION__}, {"cxx_standard", __cplusplus}}},
                 {"routes", std::move(routes)}};
    return Response::Json(200, Dump(body));
  });
  ok &= add(Method::kGet, "/admin/status", "admin:read", false, "node status for operators", [a](Request&) {
    const auto checks = a->deps.health->Snapshot();
    const auto status = Rollup(checks);
    const auto shutdown_status = a->deps.shutdown->GetStatus();
    json counts = {{"healthy", 0}, {"degraded", 0}, {"unhealthy", 0}, {"unknown", 0}};
    for (const auto& c : checks) counts[std::string(HealthStatusName(c.status))] = counts[std::string(HealthStatusName(c.status))].get<int>() + 1;
    const auto& i = a->deps.info;
    json body = {
        {"node", {{"name", i.name}, {"node_id", i.node_id}, {"role", i.role}, {"version", i.version},
                  {"git_commit", i.git_commit}, {"started_at", FormatIso8601(i.started_at)},
                  {"uptime_s", UptimeSeconds(i)}, {"data_dir", i.data_dir}}},
        {"health", {{"status", HealthStatusName(status)}, {"score", HealthScore(status)}, {"checks", counts}}},
        {"shutdown", {{"requested", shutdown_status.requested}, {"finished", shutdown_status.finished},
                      {"reason", shutdown_status.reason}}},
        {"process", Process()},
        {"requests", {{"recorded", a->deps.requests ? a->deps.requests->total() : 0}}},
    };
    for (const auto& section : a->deps.status_sections) {
      json value = ParseJson(section.json());
      body[section.name] = value.is_discarded() ? json(nullptr) : std::move(value);
    }
    return Response::Json(200, Dump(body));
  }, nullptr, /*blocking=*/true);  // status sections may read the store
  ok &= add(Method::kPost, "/admin/shutdown", "admin:write", false, "start a graceful shutdown", [a](Request& req) {
    const Status s = a->deps.shutdown->Request("api (principal " + req.identity.principal + ", request " +
                                               req.request_id + ")");
    if (!s.ok()) return http::ErrorResponse(409, "conflict", s.message(), req.request_id);
    json handlers = json::array();
    for (const auto& h : a->deps.shutdown->Handlers()) handlers.push_back(h.name);
    json body = {{"status", "shutting_down"},
                 {"requested_at", FormatIso8601(std::chrono::system_clock::now())},
                 {"handlers", std::move(handlers)}};
    return Response::Json(202, Dump(body));
  });
  ok &= add(Method::kGet, "/admin/shutdown/handlers", "admin:read", false, "shutdown steps and their state",
            [a](Request&) {
              const auto st = a->deps.shutdown->GetStatus();
              json handlers = json::array();
              for (const auto& h : a->deps.shutdown->Handlers()) {
                handlers.push_back({{"name", h.name},
                                    {"priority", h.priority},
                                    {"timeout_ms", h.timeout.count()},
                                    {"state", HandlerStateName(h.state)},
                                    {"duration_ms", h.duration.count()},
                                    {"error", h.error.empty() ? json(nullptr) : json(h.error)}});
              }
              json body = {{"shutdown",
                            {{"requested", st.requested},
                             {"finished", st.finished},
                             {"reason", st.reason},
                             {"requested_at", st.requested_at ? json(FormatIso8601(*st.requested_at)) : json(nullptr)}}},
                           {"handlers", std::move(handlers)}};
              return Response::Json(200, Dump(body));
            });
  ok &= add(Method::kGet, "/admin/health/checks", "admin:read", false, "every check with its schedule",
            [a](Request&) {
              const auto checks = a->deps.health->Snapshot();
              json body = {{"status", HealthStatusName(Rollup(checks))},
                           {"timestamp", FormatIso8601(std::chrono::system_clock::now())},
                           {"checks", ChecksJson(checks, true)}};
              return Response::Json(200, Dump(body));
            });
  ok &= add(Method::kPost, "/admin/health/check/:name", "admin:write", false, "run one check now", nullptr,
            [api](Request& req, http::Responder respond) {
              const std::string name(req.Param("name"));
              if (!api->deps.health->Has(name)) {
                respond(http::ErrorResponse(404, "not_found", "no health check named '" + name + "'",
                                            req.request_id));
                return;
              }
              api->runs.Run("check:" + name, req.request_id, std::move(respond), [api, name, id = req.request_id] {
                auto state = api->deps.health->RunNow(name);
                if (!state.ok()) return http::ErrorResponse(404, "not_found", state.status().message(), id);
                json body = {{"name", name}, {"check", CheckJson(*state, true)}};
                return Response::Json(200, Dump(body));
              });
            });
  ok &= add(Method::kGet, "/debug/requests", "debug:read", false, "recent requests (ring buffer)",
            [a](Request& req) {
              std::size_t limit = 100;
              if (auto text = req.QueryParam("limit")) {
                char* end = nullptr;
                const long v = std::strtol(text->c_str(), &end, 10);
                if (text->empty() || *end != '\0' || v < 1 || v > 100000) {
                  return http::ErrorResponse(400, "bad_request", "limit must be an integer in 1..100000",
                                             req.request_id);
                }
                limit = static_cast<std::size_t>(v);
              }
              json entries = json::array();
              for (const auto& e : a->deps.requests->Recent(limit)) {
                entries.push_back({{"time", FormatIso8601(e.time)},
                                   {"method", e.method},
                                   {"route", e.route},
                                   {"path", e.path},
                                   {"status", e.status},
                                   {"duration_ms", e.duration_ms},
                                   {"request_id", e.request_id},
                                   {"principal", e.principal},
                                   {"remote_address", e.remote_address},
                                   {"response_bytes", e.response_bytes}});
              }
              json body = {{"capacity", a->deps.requests->capacity()},
                           {"total", a->deps.requests->total()},
                           {"requests", std::move(entries)}};
              return Response::Json(200, Dump(body));
            });
  (void)info;
  (void)health;
  (void)shutdown;
  if (!ok) return InvalidArgument("cannot register operational routes: " + error);
  return Status::Ok();
}

}  // namespace bzzz::ops
