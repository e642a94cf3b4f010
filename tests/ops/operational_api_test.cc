// Every operational endpoint over a real socket: shapes, status codes and
// permissions.
#include "ops/operational_api.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include <atomic>
#include <thread>

#include "cli/client.h"
#include "http/server.h"
#include "ops/process_metrics.h"
#include "security/access_controller.h"
#include "support/support.h"

namespace bzzz::ops {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kAdmin[] = "admin-token";
constexpr char kUser[] = "user-token";

class OperationalApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics = std::make_shared<prometheus::Registry>();
    health = std::make_shared<HealthRegistry>(metrics.get());
    shutdown = std::make_shared<ShutdownCoordinator>();
    requests = std::make_shared<RequestLog>(16);
    HealthCheckSpec storage;
    storage.name = "storage-health";
    storage.fn = [this] {
      return storage_ok.load() ? CheckOutcome::Healthy("ok", R"({"backend":"sqlite"})")
                               : CheckOutcome::Unhealthy("unreachable");
    };
    ASSERT_TRUE(health->Register(storage).ok());
    ASSERT_TRUE(health->Register(MemoryCheck(0.85, 0.95, 10s, 1s)).ok());
    ASSERT_TRUE(shutdown->AddHandler("test.wait", 10, 5s, [this] {
                  while (!release_shutdown.load()) std::this_thread::sleep_for(1ms);
                  return Status::Ok();
                }).ok());

    OperationalApi api;
    api.info = {"abcd", "node-a", "9.9.9", "deadbeef", "agent", "/tmp/x", std::chrono::system_clock::now(),
                std::chrono::steady_clock::now()};
    api.health = health;
    api.shutdown = shutdown;
    api.requests = requests;
    api.metrics = metrics;
    api.collectables.push_back(std::make_shared<ProcessCollector>());
    api.status_sections.push_back({"extra", [] { return std::string(R"({"answer":42})"); }});
    auto router = std::make_shared<http::Router>();
    ASSERT_TRUE(RegisterOperationalRoutes(*router, api).ok());
    EXPECT_FALSE(RegisterOperationalRoutes(*router, api).ok()) << "routes exist already";

    std::vector<std::unique_ptr<security::Authenticator>> auth;
    auth.push_back(std::make_unique<security::StaticTokenAuthenticator>(
        std::vector<config::ApiToken>{{"user", "", {"user"}, security::HashToken(kUser)}}, kAdmin));
    auto access =
        std::make_shared<security::AccessController>(std::move(auth), security::Rbac(), true, metrics.get());
    http::ServerOptions options;
    options.port = 0;
    options.threads = 2;
    options.access_log = false;
    server = std::make_unique<http::Server>(options, router, access, metrics.get());
    server->Observe([r = requests](const http::RequestRecord& rec) { r->Record(rec); });
    health->Start();
    ASSERT_TRUE(server->Start().ok());
  }

  void TearDown() override {
    release_shutdown = true;
    server->Stop();
    health->Stop();
  }

  cli::ClientResponse Call(const std::string& method, const std::string& path, const std::string& token = "") {
    cli::ClientOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(server->Port());
    o.token = token;
    auto r = cli::Call(o, method, path);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::ClientResponse{};
  }
  json Body(const cli::ClientResponse& r) { return json::parse(r.body); }

  std::shared_ptr<prometheus::Registry> metrics;
  std::shared_ptr<HealthRegistry> health;
  std::shared_ptr<ShutdownCoordinator> shutdown;
  std::shared_ptr<RequestLog> requests;
  std::unique_ptr<http::Server> server;
  std::atomic<bool> storage_ok{true};
  std::atomic<bool> release_shutdown{false};
};

TEST_F(OperationalApiTest, HealthShape) {
  auto r = Call("GET", "/health");
  ASSERT_EQ(r.status, 200);
  auto b = Body(r);
  EXPECT_EQ(b["status"], "healthy");
  for (const char* key : {"status", "timestamp", "uptime_s", "version", "node_id", "role"}) {
    EXPECT_TRUE(b.contains(key)) << key;
  }
  EXPECT_EQ(b["version"], "9.9.9");
  EXPECT_EQ(b["node_id"], "abcd");
}

TEST_F(OperationalApiTest, UnhealthyCriticalCheckMakes503AndNotReady) {
  storage_ok = false;
  ASSERT_TRUE(health->RunNow("storage-health").ok());
  EXPECT_EQ(Call("GET", "/health").status, 503);
  auto ready = Call("GET", "/health/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(Body(ready)["failing_checks"], json::array({"storage-health"}));
  EXPECT_EQ(Call("GET", "/health/live").status, 200) << "liveness does not depend on checks";
  storage_ok = true;
  EXPECT_EQ(Call("GET", "/health/detailed").status, 200) << "detailed runs the checks live";
  EXPECT_EQ(Call("GET", "/health/ready").status, 200);
}

TEST_F(OperationalApiTest, ChecksAreKeyedByName) {
  auto b = Body(Call("GET", "/health/checks", kAdmin));
  ASSERT_TRUE(b["checks"].contains("storage-health"));
  ASSERT_TRUE(b["checks"].contains("memory"));
  const auto& c = b["checks"]["storage-health"];
  for (const char* key : {"status", "message", "duration_ms", "last_run", "critical", "details"}) {
    EXPECT_TRUE(c.contains(key)) << key;
  }
  EXPECT_EQ(c["details"]["backend"], "sqlite");
  EXPECT_EQ(b["checks"]["memory"]["critical"], false);
}

TEST_F(OperationalApiTest, DetailedRunsEveryCheck) {
  auto b = Body(Call("GET", "/health/detailed", kAdmin));
  EXPECT_EQ(b["checks"].size(), 2u);
  EXPECT_TRUE(b["process"].contains("resident_bytes"));
}

// Without a token the health routes say how each check is, not why: no
// messages, details (paths, errors) or process figures.
TEST_F(OperationalApiTest, AnonymousCallersSeeStatusesOnly) {
  for (const char* path : {"/health/detailed", "/health/checks"}) {
    auto b = Body(Call("GET", path));
    ASSERT_TRUE(b["checks"].contains("storage-health")) << path;
    const auto& c = b["checks"]["storage-health"];
    EXPECT_EQ(c["status"], "healthy") << path;
    EXPECT_TRUE(c.contains("critical")) << path;
    EXPECT_FALSE(c.contains("message")) << path;
    EXPECT_FALSE(c.contains("details")) << path;
    EXPECT_FALSE(b.contains("process")) << path;
    // A bad token is no better than none.
    auto bad = Body(Call("GET", path, "not-a-token"));
    EXPECT_FALSE(bad["checks"]["storage-health"].contains("details")) << path;
  }
}

TEST_F(OperationalApiTest, MetricsExposition) {
  Call("GET", "/health");
  // A request is counted after its response is written: wait until the
  // /health request shows in the exposition.
  cli::ClientResponse r;
  ASSERT_TRUE(bzzz::testing::Eventually(
      [&] {
        r = Call("GET", "/metrics");
        return r.body.find(R"(route="/health",status="200")") != std::string::npos;
      },
      5s));
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.content_type.find("text/plain"), std::string::npos);
  for (const char* name : {"no_http_requests_total", "no_http_request_duration_seconds_bucket",
                           "no_http_requests_in_flight", "bzzz_system_health_score", "bzzz_component_health_score",
                           "bzzz_health_checks_passed_total", "bzzz_health_checks_failed_total", "bzzz_errors_total",
                           "no_memory_usage_ratio", "process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_open_fds", "process_start_time_seconds", "no_auth_attempts_total"}) {
    EXPECT_NE(r.body.find(name), std::string::npos) << name;
  }
}

TEST_F(OperationalApiTest, ProtectedRoutesNeedTheirPermission) {
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/info"},
           {"GET", "/admin/status"},
           {"POST", "/admin/shutdown"},
           {"GET", "/admin/shutdown/handlers"},
           {"GET", "/admin/health/checks"},
           {"POST", "/admin/health/check/memory"},
           {"GET", "/debug/requests"}}) {
    EXPECT_EQ(Call(method, path).status, 401) << path;
    EXPECT_EQ(Call(method, path, "bad").status, 401) << path;
  }
  EXPECT_EQ(Call("GET", "/info", kUser).status, 200);
  EXPECT_EQ(Call("GET", "/admin/status", kUser).status, 403);
  EXPECT_EQ(Call("POST", "/admin/shutdown", kUser).status, 403);
  EXPECT_EQ(Call("GET", "/debug/requests", kUser).status, 403);
  EXPECT_FALSE(shutdown->GetStatus().requested);
}

TEST_F(OperationalApiTest, InfoAndAdminStatus) {
  auto info = Body(Call("GET", "/info", kAdmin));
  EXPECT_EQ(info["name"], "node-a");
  EXPECT_EQ(info["git_commit"], "deadbeef");
  EXPECT_FALSE(info["routes"].empty());
  auto status = Body(Call("GET", "/admin/status", kAdmin));
  EXPECT_EQ(status["node"]["node_id"], "abcd");
  EXPECT_EQ(status["health"]["status"], "healthy");
  EXPECT_EQ(status["health"]["checks"]["healthy"], 2);
  EXPECT_EQ(status["extra"]["answer"], 42);
  EXPECT_EQ(status["shutdown"]["requested"], false);
}

TEST_F(OperationalApiTest, AdminHealthChecksAndRunOne) {
  auto all = Body(Call("GET", "/admin/health/checks", kAdmin));
  EXPECT_TRUE(all["checks"]["memory"].contains("interval_ms"));
  const auto before = all["checks"]["memory"]["runs"].get<int>();
  auto run = Call("POST", "/admin/health/check/memory", kAdmin);
  ASSERT_EQ(run.status, 200);
  auto b = Body(run);
  EXPECT_EQ(b["name"], "memory");
  EXPECT_EQ(b["check"]["runs"].get<int>(), before + 1);
  auto missing = Call("POST", "/admin/health/check/nope", kAdmin);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Body(missing)["error"]["code"], "not_found");
  EXPECT_EQ(Call("GET", "/admin/health/check/memory", kAdmin).status, 405);
}

TEST_F(OperationalApiTest, ShutdownAcceptsOnceThen409) {
  auto handlers = Body(Call("GET", "/admin/shutdown/handlers", kAdmin));
  EXPECT_EQ(handlers["handlers"][0]["name"], "test.wait");
  EXPECT_EQ(handlers["handlers"][0]["state"], "pending");
  auto first = Call("POST", "/admin/shutdown", kAdmin);
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(Body(first)["status"], "shutting_down");
  auto second = Call("POST", "/admin/shutdown", kAdmin);
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(Body(second)["error"]["code"], "conflict");
  EXPECT_EQ(Call("GET", "/health/ready").status, 503) << "not ready while shutting down";
  auto running = Body(Call("GET", "/admin/shutdown/handlers", kAdmin));
  EXPECT_EQ(running["shutdown"]["requested"], true);
  EXPECT_NE(running["shutdown"]["reason"].get<std::string>().find("bootstrap-admin"), std::string::npos);
  // The shutdown runs on its own thread: the step starts a moment after the 202.
  EXPECT_TRUE(bzzz::testing::Eventually(
      [&] {
        return Body(Call("GET", "/admin/shutdown/handlers", kAdmin))["handlers"][0]["state"] == "running";
      },
      2s));
  release_shutdown = true;
  ASSERT_TRUE(shutdown->WaitFor(5s));
  EXPECT_EQ(Body(Call("GET", "/admin/shutdown/handlers", kAdmin))["handlers"][0]["state"], "done");
}

TEST_F(OperationalApiTest, DebugRequestsListsRecentRequests) {
  Call("GET", "/health");
  Call("GET", "/admin/status", kUser);
  ASSERT_TRUE(bzzz::testing::Eventually([&] { return requests->total() >= 2; }, 2s));
  auto r = Body(Call("GET", "/debug/requests?limit=2", kAdmin));
  EXPECT_EQ(r["capacity"], 16);
  ASSERT_EQ(r["requests"].size(), 2u);
  const auto& e = r["requests"][0];
  EXPECT_EQ(e["route"], "/admin/status");
  EXPECT_EQ(e["status"], 403);
  EXPECT_EQ(e["principal"], "user");
  for (const char* key : {"method", "route", "status", "duration_ms", "request_id", "principal"}) {
    EXPECT_TRUE(e.contains(key)) << key;
  }
  EXPECT_EQ(Call("GET", "/debug/requests?limit=abc", kAdmin).status, 400);
  EXPECT_EQ(Call("GET", "/debug/requests?limit=0", kAdmin).status, 400);
}

}  // namespace
}  // namespace bzzz::ops
