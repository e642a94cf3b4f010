// End-to-end: the real bzzz binary, started as a child process on loopback,
// driven over HTTP and signals, and its CLI subcommands.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include <filesystem>
#include <sys/stat.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "base/base64.h"
#include "cli/client.h"
#include "config/config.h"
#include "e2e/local_idp.h"
#include "e2e/webdriver.h"
#include "executors/sandbox.h"
#include "security/authenticator.h"
#include "security/jwt_issuer.h"
#include "support/support.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ReadFile;
using testing::Process;
using testing::TempDir;

constexpr char kAdminToken[] = "e2e-admin-token-7f3a9c2e5b";
constexpr char kUserToken[] = "e2e-user-token";
constexpr char kWriterToken[] = "e2e-writer-token";
constexpr char kUser2Token[] = "e2e-second-user-token";  // role coordination: ucxl:write, not ucxl:admin

struct CommandResult {
  int exit_code;
  std::string output;
};

CommandResult RunBzzz(const TempDir& dir, const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {}) {
  static int counter = 0;
  const std::string log = dir.File("cmd-" + std::to_string(counter++) + ".log");
  Process p(BZZZ_BINARY, args, env, log);
  const int code = p.Wait(30s);
  return {code, ReadFile(log)};
}

// A node running in its own data directory with a config file that knows a
// user token, and the bootstrap admin token in its environment.
class NodeProcess {
 public:
  explicit NodeProcess(const TempDir& dir, std::vector<std::string> extra_args = {},
                       std::vector<std::string> extra_env = {})
      : dir_(dir) {
    port_ = testing::FreePort();
    const std::string config = dir.Write("bzzz.yaml",
                                         "node:\n  name: e2e-node\n"
                                         "security:\n  api_tokens:\n"
                                         "    - name: e2e-user\n      token_hash: \"" +
                                             security::HashToken(kUserToken) + "\"\n      roles: [user]\n" +
                                             "    - name: e2e-writer\n      token_hash: \"" +
                                             security::HashToken(kWriterToken) + "\"\n      roles: [coordination]\n" +
                                             "    - name: e2e-user2\n      token_hash: \"" +
                                             security::HashToken(kUser2Token) + "\"\n      roles: [user]\n");
    std::vector<std::string> args = {"serve", "--config", config, "--data-dir", dir.File("data"),
                                     "--p2p-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:" + std::to_string(port_), "--log-level", "info"};
    // "{port}" in an extra argument is the node's HTTP port.
    for (std::string& a : extra_args) {
      for (auto at = a.find("{port}"); at != std::string::npos; at = a.find("{port}")) {
        a.replace(at, 6, std::to_string(port_));
      }
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    log_ = dir.File("node.log");
    extra_env.push_back(std::string("BZZZ_ADMIN_TOKEN=") + kAdminToken);
    process_ = std::make_unique<Process>(BZZZ_BINARY, args, extra_env, log_);
  }

  bool WaitReady() {
    return Eventually(
        [&] {
          auto r = Call("GET", "/health/live");
          return r.ok() && r->status == 200;
        },
        15s);
  }

  Result<cli::ClientResponse> Call(const std::string& method, const std::string& path,
                                   const std::string& token = "") const {
    cli::ClientOptions o;
    o.url = Url();
    o.token = token;
    o.timeout = 5s;
    return cli::Call(o, method, path);
  }
  int Status(const std::string& method, const std::string& path, const std::string& token = "") const {
    auto r = Call(method, path, token);
    return r.ok() ? r->status : -1;
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Client options for this node with `token` and a generous timeout.
  cli::ClientOptions Client(const std::string& token) const {
    cli::ClientOptions o;
    o.url = Url();
    o.token = token;
    o.timeout = 10s;
    return o;
  }
  std::uint16_t port() const { return port_; }
  Process& process() { return *process_; }
  std::string Log() const { return ReadFile(log_); }

 private:
  const TempDir& dir_;
  std::uint16_t port_;
  std::string log_;
  std::unique_ptr<Process> process_;
};

TEST(NodeE2E, ServesEveryOperationalEndpointAndExitsCleanlyOnSigterm) {
  TempDir dir;
  // Where the command sandbox cannot start (no unprivileged user
  // namespaces: a chroot, many containers) the node is degraded, and
  // agent-pool says why; everything else is the same.
  const Status sandbox = executors::Sandbox(config::SandboxConfig{}, dir.File("probe")).Probe();
  const std::string expected = sandbox.ok() ? "healthy" : "degraded";
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();

  // Public probes.
  auto health = node.Call("GET", "/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  const json h = json::parse(health->body);
  EXPECT_EQ(h["status"], expected) << health->body;
  EXPECT_EQ(h["node_id"].get<std::string>().size(), 40u);
  EXPECT_EQ(node.Status("GET", "/health/live"), 200);
  EXPECT_EQ(node.Status("GET", "/health/ready"), 200);
  EXPECT_EQ(node.Status("GET", "/health/detailed"), 200);
  const json checks = json::parse(node.Call("GET", "/health/checks")->body);
  EXPECT_EQ(checks["checks"]["storage-health"]["status"], "healthy");
  EXPECT_EQ(checks["checks"]["memory"]["status"], "healthy");
  if (!sandbox.ok()) {
    // Details (the message) only for an authenticated caller.
    const json detailed = json::parse(node.Call("GET", "/health/checks", kAdminToken)->body);
    EXPECT_EQ(detailed["checks"]["agent-pool"]["status"], "degraded");
    EXPECT_NE(detailed["checks"]["agent-pool"].value("message", "").find("command and llm tasks cannot run"),
              std::string::npos)
        << detailed.dump();
    EXPECT_NE(node.Log().find("the command sandbox cannot start here"), std::string::npos) << node.Log();
  }
  auto metrics = node.Call("GET", "/metrics");
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find(sandbox.ok() ? "bzzz_system_health_score 1" : "bzzz_system_health_score 0.5"),
            std::string::npos);
  // Counters with a known label set exist at zero from start, so rate()
  // sees their first event; the replication factor is absent until measured.
  // (DHT gets are counted from the start: the key ring is read at once.)
  for (const char* series : {"bzzz_dht_get_operations_total{result=\"not_found\"} ",
                             "bzzz_dht_operation_failures_total{operation=\"get\",reason=\"timeout\"} 0",
                             "no_tasks_total{executor=\"builtin\",state=\"dead\"} 0",
                             "no_task_latency_seconds_count{executor=\"builtin\"} 0",
                             "bzzz_ucxl_resolutions_total{result=\"not_found\",source=\"none\"} 0"}) {
    EXPECT_NE(metrics->body.find(series), std::string::npos) << series;
  }
  EXPECT_EQ(metrics->body.find("bzzz_dht_operation_failures_total{operation=\"get\",reason=\"not_found\"}"),
            std::string::npos)
      << "not_found is a result, not a failure";
  // The replication factor is absent until measured (tests/dht/probe_test.cc);
  // here it may be measured already: the node holds the key ring it
  // published at start, so when present it is a measured value.
  const std::string factor = "\nbzzz_dht_replication_factor ";
  if (const auto at = metrics->body.find(factor); at != std::string::npos) {
    EXPECT_GE(std::stod(metrics->body.substr(at + factor.size())), 1.0) << metrics->body.substr(at, 60);
  }

  // Protected routes: 401 without or with a bad identity, 403 without the
  // permission, 2xx with it.
  const std::vector<std::pair<std::string, std::string>> protected_routes = {
      {"GET", "/info"},
      {"GET", "/admin/status"},
      {"GET", "/admin/shutdown/handlers"},
      {"GET", "/admin/health/checks"},
      {"POST", "/admin/health/check/storage-health"},
      {"GET", "/debug/requests"},
      {"POST", "/admin/shutdown"}};
  for (const auto& [method, path] : protected_routes) {
    EXPECT_EQ(node.Status(method, path), 401) << path;
    EXPECT_EQ(node.Status(method, path, "not-a-token"), 401) << path;
  }
  EXPECT_EQ(node.Status("GET", "/info", kUserToken), 200);
  for (const auto& [method, path] : protected_routes) {
    if (path == "/info") continue;
    EXPECT_EQ(node.Status(method, path, kUserToken), 403) << path;
  }
  for (const auto& [method, path] : protected_routes) {
    if (path == "/admin/shutdown") continue;
    EXPECT_EQ(node.Status(method, path, kAdminToken), 200) << path;
  }
  EXPECT_EQ(node.Status("GET", "/nope"), 404);
  EXPECT_EQ(node.Status("DELETE", "/health"), 405);
  const json status = json::parse(node.Call("GET", "/admin/status", kAdminToken)->body);
  EXPECT_EQ(status["node"]["name"], "e2e-node");
  EXPECT_EQ(status["storage"]["schema_version"], status["storage"]["latest_version"]);
  EXPECT_EQ(status["config"]["security"]["api_tokens"][0]["name"], "e2e-user");

  // The CLI reaches the running node.
  auto cli_health = RunBzzz(dir, {"health", "--url", node.Url()});
  EXPECT_EQ(cli_health.exit_code, 0) << cli_health.output;
  EXPECT_NE(cli_health.output.find("\"" + expected + "\""), std::string::npos) << cli_health.output;
  auto cli_status = RunBzzz(dir, {"status", "--url", node.Url()}, {std::string("BZZZ_TOKEN=") + kAdminToken});
  EXPECT_EQ(cli_status.exit_code, 0) << cli_status.output;
  auto cli_denied = RunBzzz(dir, {"status", "--url", node.Url(), "--token", kUserToken});
  EXPECT_EQ(cli_denied.exit_code, 4) << cli_denied.output;

  node.process().Signal(SIGTERM);
  EXPECT_EQ(node.process().Wait(15s), 0) << node.Log();
  const std::string log = node.Log();
  EXPECT_NE(log.find("shutdown: requested by signal SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos);
  EXPECT_EQ(log.find(kAdminToken), std::string::npos) << "tokens never reach the log";
  EXPECT_EQ(log.find(kUserToken), std::string::npos);

  auto unreachable = RunBzzz(dir, {"health", "--url", node.Url()});
  EXPECT_EQ(unreachable.exit_code, 3) << unreachable.output;
}

// Bodies that once crashed the node or left it half-written: a task input
// nested 70,000 deep (140 KB) and a UCXI put whose Content-Type is not
// UTF-8. Each is a 400, the node lives on, and nothing was stored.
TEST(NodeE2E, HostileBodiesAreRefusedAndChangeNothing) {
  TempDir dir;
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  cli::ClientOptions o = node.Client(kAdminToken);
  const std::string deep = R"({"executor":"builtin","input":)" + std::string(70000, '[') +
                           std::string(70000, ']') + "}";
  auto r = cli::Call(o, "POST", "/api/v1/tasks", deep);
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << node.Log();
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("nests deeper"), std::string::npos) << r->body;
  EXPECT_EQ(node.Status("GET", "/health/live"), 200);
  auto list = cli::Call(o, "GET", "/api/v1/tasks");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(json::parse(list->body)["tasks"].empty()) << list->body;
  // Every node's tasks need a store shared by the nodes: SQLite says so.
  auto everyone = cli::Call(o, "GET", "/api/v1/tasks?node=all");
  ASSERT_TRUE(everyone.ok());
  EXPECT_EQ(everyone->status, 409) << everyone->body;
  EXPECT_NE(everyone->body.find("storage.backend: postgres"), std::string::npos) << everyone->body;

  const std::string at = "/ucxi/v1/put?address=ucxl://alice:developer@bzzz:t/*%5E/x";
  auto put = cli::Call(o, "PUT", at, "content", "text/\xff\xfe");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 400) << put->body;
  auto get = cli::Call(o, "GET", "/ucxi/v1/get?address=ucxl://alice:developer@bzzz:t/*%5E/x");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 404) << get->body;
  auto good = cli::Call(o, "PUT", at, "content", "text/plain");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->status, 201) << good->body;
  EXPECT_EQ(node.Status("GET", "/health/live"), 200);
}

// A bootstrap admin token that could be guessed stops the node at start
// with a line that says why and how to make a good one.
TEST(NodeE2E, WeakBootstrapTokenIsRefusedAtStart) {
  TempDir dir;
  Process node(BZZZ_BINARY,
               {"serve", "--data-dir", dir.File("data"), "--p2p-listen", "127.0.0.1:0", "--http-listen",
                "127.0.0.1:" + std::to_string(testing::FreePort())},
               {"BZZZ_ADMIN_TOKEN=x"}, dir.File("weak.log"));
  EXPECT_NE(node.Wait(15s), 0);
  const std::string log = ReadFile(dir.File("weak.log"));
  EXPECT_NE(log.find("BZZZ_ADMIN_TOKEN is too weak"), std::string::npos) << log;
  EXPECT_NE(log.find("openssl rand"), std::string::npos) << log;
}

// A first run with no credential configured makes a local admin token
// (0600) that the CLI on the same machine uses; a restart keeps it; a node
// with a configured token never makes one.
TEST(NodeE2E, FirstRunMakesALocalAdminTokenTheCliFinds) {
  TempDir dir;
  const int port = testing::FreePort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::vector<std::string> args = {"serve", "--data-dir", dir.File("data"), "--p2p-listen", "127.0.0.1:0",
                                         "--http-listen", "127.0.0.1:" + std::to_string(port)};
  std::string first;
  for (int run = 0; run < 2; ++run) {
    Process node(BZZZ_BINARY, args, {}, dir.File("first-run-" + std::to_string(run) + ".log"));
    ASSERT_TRUE(testing::Eventually([&] { return RunBzzz(dir, {"health", "--url", url}).exit_code == 0; }, 15s));
    const std::string token = ReadFile(dir.File("data/admin.token"));
    struct stat st {};
    ASSERT_EQ(stat(dir.File("data/admin.token").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(token.size(), 65u) << "64 hex digits and a newline";
    if (run == 0) first = token;
    EXPECT_EQ(token, first) << "a restart keeps the token";
    auto status = RunBzzz(dir, {"status", "--url", url}, {"BZZZ_DATA_DIR=" + dir.File("data")});
    EXPECT_EQ(status.exit_code, 0) << status.output;
    auto elsewhere = RunBzzz(dir, {"status", "--url", url}, {"BZZZ_DATA_DIR=" + dir.File("nowhere")});
    EXPECT_EQ(elsewhere.exit_code, 4) << "without the file: 401";
    node.Signal(SIGTERM);
    EXPECT_EQ(node.Wait(15s), 0);
  }
  const std::string log = ReadFile(dir.File("first-run-0.log"));
  EXPECT_NE(log.find("made an admin token for this first run"), std::string::npos) << log;
  EXPECT_EQ(log.find(first.substr(0, 64)), std::string::npos) << "the token itself is never logged";

  // A token file others may read, or one holding junk, stops the node with
  // a line naming it; the file is left as it was.
  for (const auto& [mode, content] : std::vector<std::pair<int, std::string>>{{0644, first}, {0600, "short\n"}}) {
    dir.Write("data/admin.token", content);
    chmod(dir.File("data/admin.token").c_str(), static_cast<mode_t>(mode));
    Process refused(BZZZ_BINARY, args, {}, dir.File("refused.log"));
    EXPECT_EQ(refused.Wait(15s), 1);
    const std::string why = ReadFile(dir.File("refused.log"));
    EXPECT_NE(why.find("admin.token"), std::string::npos) << why;
    EXPECT_EQ(ReadFile(dir.File("data/admin.token")), content);
  }

  // With a configured credential (here the bootstrap token) no file is made.
  TempDir other;
  NodeProcess configured(other);
  ASSERT_TRUE(configured.WaitReady()) << configured.Log();
  EXPECT_FALSE(std::filesystem::exists(other.File("data/admin.token")));
}

// A damaged election state file stops the node at start with a message
// that names it (it once died with SIGSEGV and printed nothing).
TEST(NodeE2E, DamagedElectionStateIsRefusedClearly) {
  for (const char* content : {"{}", "not json", "{\"term\": -1}"}) {
    TempDir dir;
    std::filesystem::create_directories(dir.File("data/election"));
    dir.Write("data/election/state.json", content);
    Process node(BZZZ_BINARY,
                 {"serve", "--data-dir", dir.File("data"), "--p2p-listen", "127.0.0.1:0", "--http-listen",
                  "127.0.0.1:" + std::to_string(testing::FreePort())},
                 {}, dir.File("damaged.log"));
    const int code = node.Wait(15s);
    const std::string log = ReadFile(dir.File("damaged.log"));
    EXPECT_EQ(code, 1) << content << "\n" << log;
    EXPECT_NE(log.find("state.json"), std::string::npos) << content << "\n" << log;
  }
}

// Every state file of the data directory, damaged, stops the start with one
// line naming the file and what to do, never a crash; the peer store is a
// cache and is ignored with a warning.
TEST(NodeE2E, DamagedStateFilesAreRefusedNamingTheFileAndTheWayOut) {
  TempDir seed;
  {
    NodeProcess first(seed);  // a first start writes every file
    ASSERT_TRUE(first.WaitReady()) << first.Log();
    first.process().Signal(SIGTERM);
    EXPECT_EQ(first.process().Wait(30s), 0) << first.Log();
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cluster/membership.json", "move the cluster/ directory away"},
      {"cluster/cluster.key", "move it away"},
      {"p2p/identity.key", "move it away"},
  };
  for (const auto& [file, way_out] : cases) {
    TempDir dir;
    std::filesystem::copy(seed.File("data"), dir.File("data"), std::filesystem::copy_options::recursive);
    std::filesystem::remove(dir.File("data/LOCK"));
    dir.Write("data/" + file, "{\"damaged\": ");
    Process node(BZZZ_BINARY,
                 {"serve", "--data-dir", dir.File("data"), "--p2p-listen", "127.0.0.1:0", "--http-listen",
                  "127.0.0.1:" + std::to_string(testing::FreePort())},
                 {std::string("BZZZ_ADMIN_TOKEN=") + kAdminToken}, dir.File("damaged.log"));
    const int code = node.Wait(15s);
    const std::string log = ReadFile(dir.File("damaged.log"));
    EXPECT_EQ(code, 1) << file << "\n" << log;
    EXPECT_NE(log.find(file), std::string::npos) << log;
    EXPECT_NE(log.find(way_out), std::string::npos) << log;
  }
}

// Guessing tokens: past security.auth_failure_limit failures one address
// gets 429 with Retry-After on every protected route, even with the right
// token, and the burst is counted.
TEST(NodeE2E, TokenGuessingIsThrottled) {
  TempDir dir;
  NodeProcess node(dir, {"--set", "security.auth_failure_limit=5"});
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(node.Status("GET", "/admin/status", "guess-" + std::to_string(i)), 401);
  auto throttled = node.Call("GET", "/admin/status", kAdminToken);
  ASSERT_TRUE(throttled.ok());
  EXPECT_EQ(throttled->status, 429) << throttled->body;
  // UCXI answers in its own envelope: UCXL-429-RATE_LIMITED, with Retry-After.
  const std::string ucxi = testing::RawExchange(
      node.port(), "GET /ucxi/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + std::string(kAdminToken) +
                       "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(testing::RawStatus(ucxi), 429) << ucxi;
  EXPECT_NE(ucxi.find("\"UCXL-429-RATE_LIMITED\""), std::string::npos) << ucxi;
  EXPECT_NE(ucxi.find("Retry-After: "), std::string::npos) << ucxi;
  EXPECT_EQ(node.Status("GET", "/health/live"), 200) << "public probes are not throttled";
  // The log says so in words an operator greps for, without the token.
  EXPECT_TRUE(testing::Eventually([&] { return node.Log().find("security: auth throttled for client 127.0.0.1") != std::string::npos; }, 5s))
      << node.Log();
  EXPECT_NE(node.Log().find("security: auth failure from client 127.0.0.1: invalid credentials"), std::string::npos);
  EXPECT_EQ(node.Log().find("guess-0"), std::string::npos) << "tokens are never logged";
  auto metrics = node.Call("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("no_suspicious_activity_total 1"), std::string::npos);
}

// OIDC bearer tokens against a local identity provider (discovery and JWKS
// over HTTP, keys made by the test): a mapped group grants its role, a
// token without one is authenticated but forbidden, forged and foreign
// tokens are refused, and the oidc-keys check reports the keys.
TEST(NodeE2E, OidcBearerTokensFromALocalIdentityProvider) {
  TempDir dir;
  testing::SigningKey key(testing::SigningKey::Type::kEc, "idp-1");
  const std::string jwks = testing::Jwks(key);
  std::string issuer;
  testing::MiniServer idp([&](const std::string&, const std::string& path, const std::string&) {
    if (path == "/.well-known/openid-configuration") {
      return std::make_pair(200, json{{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}.dump());
    }
    if (path == "/jwks") return std::make_pair(200, jwks);
    return std::make_pair(404, std::string("{}"));
  });
  issuer = idp.url();
  NodeProcess node(dir, {"--set", "security.oidc.enabled=true", "--set", "security.oidc.issuer=" + issuer, "--set",
                         "security.oidc.audience=bzzz", "--set", "security.oidc.role_claim=groups", "--set",
                         "security.oidc.role_mapping=bzzz-ops=operator"});
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto token = [&](json changes) {
    json c = {{"iss", issuer}, {"aud", "bzzz"}, {"sub", "carol"}, {"exp", now + 600}, {"iat", now},
              {"groups", {"bzzz-ops"}}};
    if (changes.is_object()) c.update(changes);
    return key.Sign(c);
  };
  const std::string ops = token({});
  ASSERT_TRUE(Eventually([&] { return node.Status("GET", "/api/v1/tasks", ops) == 200; }, 10s)) << node.Log();
  EXPECT_EQ(node.Status("GET", "/admin/status", ops), 200);
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks", token({{"groups", json::array()}})), 403);
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks", token({{"aud", "another-service"}})), 401);
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks", token({{"exp", now - 3600}})), 401);
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks", token({{"iss", "https://elsewhere.test"}})), 401);
  const std::string body = json{{"iss", issuer}, {"aud", "bzzz"}, {"sub", "mallory"}, {"exp", now + 600},
                                {"groups", {"bzzz-ops"}}}
                               .dump();
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks", Base64Url(R"({"alg":"none"})") + "." + Base64Url(body) + "."), 401);
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks",
                        testing::ForgeHs256({{"alg", "HS256"}, {"kid", "idp-1"}}, json::parse(body), key.PublicBytes())),
            401);
  auto health = node.Call("GET", "/health/detailed", kAdminToken);
  ASSERT_TRUE(health.ok());
  EXPECT_NE(health->body.find("\"oidc-keys\""), std::string::npos) << health->body;
  EXPECT_NE(health->body.find("1 OIDC signing key(s)"), std::string::npos) << health->body;
  EXPECT_NE(node.Log().find("security: accepting OIDC tokens (JWTs) of " + issuer), std::string::npos) << node.Log();
  EXPECT_EQ(node.Log().find(ops), std::string::npos) << "tokens are never logged";
}

// Rate limits per principal and route class: a burst passes with the
// X-RateLimit-* headers, the next request is a 429 with Retry-After (in the
// UCXI envelope on /ucxi), another principal and the probes are not
// affected, writes have their own bucket, and the refusals are counted.
TEST(NodeE2E, RateLimitsPerPrincipalAndClassWithHeaders) {
  TempDir dir;
  NodeProcess node(dir, {"--set", "security.rate_limit.requests_per_second=0.2", "--set",
                         "security.rate_limit.burst=5", "--set", "security.rate_limit.write_requests_per_second=0.2",
                         "--set", "security.rate_limit.write_burst=2"});
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  auto get = [&](const std::string& path, const std::string& token) {
    return testing::RawExchange(node.port(), "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                                                 "\r\nConnection: close\r\n\r\n");
  };
  for (int i = 0; i < 5; ++i) {
    const std::string r = get("/api/v1/tasks", kUserToken);
    ASSERT_EQ(testing::RawStatus(r), 200) << i << r;
    EXPECT_NE(r.find("X-RateLimit-Limit: 5\r\n"), std::string::npos) << r;
    EXPECT_NE(r.find("X-RateLimit-Remaining: " + std::to_string(4 - i) + "\r\n"), std::string::npos) << r;
  }
  const std::string refused = get("/api/v1/tasks", kUserToken);
  EXPECT_EQ(testing::RawStatus(refused), 429) << refused;
  EXPECT_NE(refused.find("Retry-After: "), std::string::npos) << refused;
  EXPECT_NE(refused.find("X-RateLimit-Remaining: 0\r\n"), std::string::npos) << refused;
  EXPECT_NE(refused.find("rate limit of reads exceeded for principal e2e-user"), std::string::npos) << refused;
  const std::string ucxi = get("/ucxi/v1/status", kUserToken);
  EXPECT_EQ(testing::RawStatus(ucxi), 429);
  EXPECT_NE(ucxi.find("UCXL-429-RATE_LIMITED"), std::string::npos) << ucxi;
  // Another principal, and the probes, are not limited.
  EXPECT_EQ(node.Status("GET", "/api/v1/tasks", kAdminToken), 200);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(node.Status("GET", "/health/live"), 200);
  // Writes have a bucket of their own: the user can still submit twice.
  auto submit = [&] {
    cli::ClientOptions o = node.Client(kUserToken);
    auto r = cli::Call(o, "POST", "/api/v1/tasks", R"({"executor":"builtin","input":{"op":"echo"}})");
    return r.ok() ? r->status : -1;
  };
  EXPECT_EQ(submit(), 201);
  EXPECT_EQ(submit(), 201);
  EXPECT_EQ(submit(), 429);
  auto metrics = node.Call("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("no_rate_limit_rejections_total{class=\"read\"} 2"), std::string::npos);
  EXPECT_NE(metrics->body.find("no_rate_limit_rejections_total{class=\"write\"} 1"), std::string::npos);
}

// UCXI writes: the author of a version is the caller's principal, never
// the agent the address names, and an address's role part is a claim the
// writer must hold (or ucxl:admin).
TEST(NodeE2E, UcxiAuthorsAreThePrincipalAndRolePartsNeedTheRole) {
  TempDir dir;
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  auto put = [&](const std::string& address, const char* token) {
    cli::ClientOptions o = node.Client(token);
    return cli::Call(o, "PUT", "/ucxi/v1/put?address=" + address, "content", "text/plain");
  };
  // The writer holds coordination, not developer: the developer role part is refused.
  auto refused = put("ucxl://alice:developer@bzzz:t1/*%5E/notes", kWriterToken);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_NE(refused->body.find("UCXL-403-FORBIDDEN"), std::string::npos) << refused->body;
  EXPECT_NE(refused->body.find("writing to role 'developer'"), std::string::npos) << refused->body;
  // Its own role is fine, and the author is the principal, not alice.
  auto ok = put("ucxl://alice:coordination@bzzz:t1/*%5E/notes", kWriterToken);
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->status, 201) << ok->body;
  const json v = json::parse(ok->body)["response"]["data"]["version"];
  EXPECT_EQ(v["author"]["agent"], "e2e-writer") << ok->body;
  EXPECT_EQ(v["author"]["role"], "coordination") << ok->body;
  // ucxl:admin (system_admin) may write to any role part.
  auto admin = put("ucxl://alice:developer@bzzz:t1/*%5E/notes", kAdminToken);
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->status, 201) << admin->body;
  // Delete follows the same rule.
  cli::ClientOptions w = node.Client(kWriterToken);
  auto del = cli::Call(w, "DELETE", "/ucxi/v1/delete?address=ucxl://alice:developer@bzzz:t1/*%5E/notes");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->status, 403) << del->body;
}

// Principals own the tasks they submit: another user sees the task but not
// its input, and cannot cancel it; the submitter and tasks:admin can.
TEST(NodeE2E, TasksBelongToTheirSubmitter) {
  TempDir dir;
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  auto call = [&](const char* token, const std::string& method, const std::string& path, const std::string& body = "") {
    cli::ClientOptions o = node.Client(token);
    auto r = cli::Call(o, method, path, body);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : cli::ClientResponse{};
  };
  auto submitted = call(kUserToken, "POST", "/api/v1/tasks",
                        R"({"executor":"builtin","input":{"op":"sleep","ms":20000,"note":"alice's plan"}})");
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  const json task = json::parse(submitted.body);
  const std::string id = task["id"];
  EXPECT_EQ(task["submitter"], "e2e-user");
  EXPECT_EQ(task["input"]["note"], "alice's plan");

  const auto other = call(kUser2Token, "GET", "/api/v1/tasks/" + id);
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_FALSE(json::parse(other.body).contains("input")) << other.body;
  EXPECT_EQ(json::parse(other.body)["input_hidden"], true);
  EXPECT_EQ(other.body.find("alice's plan"), std::string::npos);
  const auto listed = call(kUser2Token, "GET", "/api/v1/tasks");
  EXPECT_EQ(listed.body.find("alice's plan"), std::string::npos) << listed.body;
  const auto cancel = call(kUser2Token, "POST", "/api/v1/tasks/" + id + "/cancel");
  EXPECT_EQ(cancel.status, 403) << cancel.body;
  EXPECT_NE(cancel.body.find("needs the permission tasks:admin"), std::string::npos) << cancel.body;

  // Progress lines (an executor's output) are the submitter's too.
  auto echoed = call(kUserToken, "POST", "/api/v1/tasks",
                     R"({"executor":"builtin","input":{"op":"echo","progress":["alice-output-line"]}})");
  ASSERT_EQ(echoed.status, 201) << echoed.body;
  {
    const std::string echo_id = json::parse(echoed.body)["id"];
    ASSERT_TRUE(Eventually(
        [&] {
          return call(kUserToken, "GET", "/api/v1/tasks/" + echo_id).body.find("\"state\":\"succeeded\"") !=
                 std::string::npos;
        },
        20s));
    EXPECT_NE(call(kUserToken, "GET", "/api/v1/tasks/" + echo_id + "/events").body.find("alice-output-line"),
              std::string::npos);
    EXPECT_EQ(call(kUser2Token, "GET", "/api/v1/tasks/" + echo_id + "/events").body.find("alice-output-line"),
              std::string::npos);
    EXPECT_EQ(call(kUser2Token, "GET", "/api/v1/tasks/" + echo_id).body.find("alice-output-line"), std::string::npos);
  }
  // The submitter, and an admin, see the input; the submitter cancels.
  EXPECT_NE(call(kUserToken, "GET", "/api/v1/tasks/" + id).body.find("alice's plan"), std::string::npos);
  EXPECT_NE(call(kAdminToken, "GET", "/api/v1/tasks/" + id).body.find("alice's plan"), std::string::npos);
  EXPECT_EQ(call(kUserToken, "POST", "/api/v1/tasks/" + id + "/cancel").status, 200);
}

// The audit log: refusals and admin actions recorded as they happen, read
// through the API by those allowed to, verified by the node and by the
// CLI from its store and from an export; a changed row or a changed export
// is found and named.
TEST(NodeE2E, AuditLogRecordsRefusalsAndAdminActionsAndFindsTampering) {
  TempDir dir;
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  EXPECT_EQ(node.Status("GET", "/admin/status", "not-a-valid-token"), 401);
  EXPECT_EQ(node.Status("POST", "/admin/shutdown", kUserToken), 403);
  EXPECT_EQ(node.Status("DELETE", "/api/v1/dht/cache", kAdminToken), 200);
  EXPECT_EQ(node.Status("GET", "/api/v1/audit", kUserToken), 403);  // audit:read is operator and up

  json entries;
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = node.Call("GET", "/api/v1/audit?after=0", kAdminToken);
        if (!r.ok() || r->status != 200) return false;
        entries = json::parse(r->body)["entries"];
        return entries.size() >= 5;
      },
      10s));
  std::vector<std::string> seen;
  for (const auto& e : entries) seen.push_back(e["kind"].get<std::string>() + " " + e["action"].get<std::string>());
  EXPECT_EQ(seen, (std::vector<std::string>{"lifecycle node.start", "auth_failure GET /admin/status",
                                            "permission_denied POST /admin/shutdown",
                                            "admin_action DELETE /api/v1/dht/cache",
                                            "permission_denied GET /api/v1/audit"}));
  EXPECT_EQ(entries[2]["principal"], "e2e-user");
  EXPECT_EQ(entries[2]["client"], "127.0.0.1");
  EXPECT_EQ(entries[1]["details"]["reason"].get<std::string>().find("not-a-valid-token"), std::string::npos);
  auto filtered = node.Call("GET", "/api/v1/audit?kind=permission_denied&principal=e2e-user", kAdminToken);
  ASSERT_TRUE(filtered.ok());
  EXPECT_EQ(json::parse(filtered->body)["entries"].size(), 2u) << filtered->body;
  EXPECT_EQ(node.Status("GET", "/api/v1/audit?limit=0", kAdminToken), 400);
  auto verified = node.Call("GET", "/api/v1/audit/verify", kAdminToken);
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(json::parse(verified->body)["ok"], true) << verified->body;

  // An export verifies against the node's key; a changed export does not.
  const std::string exported = dir.File("audit.json");
  auto exp = RunBzzz(dir, {"audit", "export", "--url", node.Url(), "--token", kAdminToken, "-o", exported});
  ASSERT_EQ(exp.exit_code, 0) << exp.output;
  json doc = json::parse(ReadFile(exported));
  const std::string key = doc["public_key"];
  auto file_ok = RunBzzz(dir, {"audit", "verify", "--file", exported, "--public-key", key});
  EXPECT_EQ(file_ok.exit_code, 0) << file_ok.output;
  doc["entries"][3]["outcome"] = "404";
  dir.Write("changed.json", doc.dump());
  auto file_bad = RunBzzz(dir, {"audit", "verify", "--file", dir.File("changed.json"), "--public-key", key});
  EXPECT_EQ(file_bad.exit_code, 1) << file_bad.output;
  EXPECT_NE(file_bad.output.find("seq 4"), std::string::npos) << file_bad.output;

  auto r = node.Call("POST", "/admin/shutdown", kAdminToken);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(node.process().Wait(15s), 0) << node.Log();

  // The store, after the node stopped: the shutdown request and the stop
  // itself are the last entries, and the chain is intact.
  auto intact = RunBzzz(dir, {"audit", "verify", "--data-dir", dir.File("data"), "--json"});
  ASSERT_EQ(intact.exit_code, 0) << intact.output;
  EXPECT_EQ(json::parse(intact.output)["entries"], 7) << intact.output;

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("data/bzzz.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE audit_log SET principal = 'someone-else' WHERE seq = 3", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DELETE FROM audit_log WHERE seq = 5", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto tampered = RunBzzz(dir, {"audit", "verify", "--data-dir", dir.File("data")});
  EXPECT_EQ(tampered.exit_code, 1) << tampered.output;
  EXPECT_NE(tampered.output.find("seq 3        changed"), std::string::npos) << tampered.output;
  EXPECT_NE(tampered.output.find("seq 5        removed"), std::string::npos) << tampered.output;
}

// SHHH: one secret of each kind (and one of a configured pattern) planted
// in every path text takes into a node: task output (a command printing
// values it got sealed, a builtin task's progress lines), stored context as
// text and as JSON, request paths (the audit log, /debug/requests, the
// access log). Afterwards none of them is found in any answer, in the log,
// or anywhere in the data directory.
TEST(NodeE2E, SecretsPlantedInEveryPathAreFoundNowhere) {
  TempDir dir;
  const bool sandbox = executors::Sandbox(config::SandboxConfig{}, dir.File("probe")).Probe().ok();
  NodeProcess node(dir, {"--set", "security.shhh.patterns=corp=CORP-[0-9]{8}"});
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  // {text as written, the part that must not survive}
  const std::vector<std::pair<std::string, std::string>> planted = {
      {"Authorization: Bearer tok-9f8e7d6c5b4a", "tok-9f8e7d6c5b4a"},
      {"db_password=Zq8-hunter2-x", "Zq8-hunter2-x"},
      {"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAplanted\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEAplanted"},
      {"https://deploy:Pa55w0rd-url@git.example.test/r.git", "Pa55w0rd-url"},
      {"ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"},
      {"sk-proj-Abc123Def456Ghi789Jkl0", "Abc123Def456Ghi789Jkl0"},
      {"AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"},
      {"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlLXBsYW50ZWQ", "eyJzdWIiOiJwbGFudGVkIn0"},
      {"CORP-20261206", "20261206"},
  };
  std::string all;
  for (const auto& [text, secret] : planted) all += text + "\n";
  auto call = [&](const char* token, const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& type = "application/json") {
    cli::ClientOptions o = node.Client(token);
    auto r = cli::Call(o, method, path, body, type);
    EXPECT_TRUE(r.ok()) << method << " " << path;
    return r.ok() ? *r : cli::ClientResponse{};
  };
  std::vector<std::string> answers;  // every body read back

  // Task output: a command printing values it was given sealed (env values
  // never reach the store in clear). Without the sandbox, a builtin task's
  // progress lines and result instead: its input holds the secrets in the
  // store (inputs are the submitter's; only outputs are redacted), so the
  // database files are then left out of the final search.
  std::vector<std::string> task_ids;
  if (!sandbox) {
    json lines = json::array();
    for (const auto& [text, secret] : planted) lines.push_back(text);
    auto echo = call(kAdminToken, "POST", "/api/v1/tasks",
                     json{{"executor", "builtin"}, {"input", {{"op", "echo"}, {"progress", lines}}}}.dump());
    ASSERT_EQ(echo.status, 201) << echo.body;
    task_ids.push_back(json::parse(echo.body)["id"]);
  } else {
    json env = json::object();
    std::string script = "printf '%s\\n'";
    for (std::size_t i = 0; i < planted.size(); ++i) {
      env["S" + std::to_string(i)] = planted[i].first;
      script += " \"$S" + std::to_string(i) + "\"";
    }
    script += "; printf '%s\\n' \"$S0\" >&2";
    auto cmd = call(kAdminToken, "POST", "/api/v1/tasks",
                    json{{"executor", "command"}, {"input", {{"argv", {"/bin/sh", "-c", script}}, {"env", env}}}}.dump());
    ASSERT_EQ(cmd.status, 201) << cmd.body;
    task_ids.push_back(json::parse(cmd.body)["id"]);
  }
  for (const std::string& id : task_ids) {
    ASSERT_TRUE(Eventually(
        [&] { return call(kAdminToken, "GET", "/api/v1/tasks/" + id).body.find("\"state\":\"succeeded\"") != std::string::npos; },
        20s))
        << call(kAdminToken, "GET", "/api/v1/tasks/" + id).body;
    const auto task = call(kAdminToken, "GET", "/api/v1/tasks/" + id);
    // The output arrived, masked. The input is the submitter's and shown to
    // them as given (the builtin task's holds the secrets): searched apart.
    json shown = json::parse(task.body);
    shown.erase("input");
    EXPECT_NE(shown.dump().find("***"), std::string::npos) << task.body;
    answers.push_back(shown.dump());
    answers.push_back(call(kAdminToken, "GET", "/api/v1/tasks/" + id + "/events").body);
  }

  // Stored context, as text and as JSON.
  const std::string text_address = "ucxl://e2e-writer:coordination@bzzz:shhh/*%5E/notes";
  auto put = call(kWriterToken, "PUT", "/ucxi/v1/put?address=" + text_address, all, "text/plain");
  ASSERT_EQ(put.status, 201) << put.body;
  auto post = call(kWriterToken, "POST", "/ucxi/v1/post",
                   json{{"address", "ucxl://e2e-writer:coordination@bzzz:shhh/*^/config"},
                        {"content", json{{"note", all}, {"api_token", "plain-value-123"}}.dump()},
                        {"content_type", "application/json"}}.dump());
  ASSERT_EQ(post.status, 201) << post.body;
  for (const char* path : {"notes", "config"}) {
    const auto got = call(kWriterToken, "GET", std::string("/ucxi/v1/get?address=ucxl://e2e-writer:coordination@bzzz:shhh/*%5E/") + path);
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_NE(got.body.find("***"), std::string::npos) << got.body;
    answers.push_back(got.body);
  }
  // Request paths: refused (audited) and recorded (/debug/requests).
  for (const auto& [text, secret] : planted) {
    if (text.find_first_of("\n /:") != std::string::npos) continue;
    EXPECT_EQ(node.Status("POST", "/admin/health/check/" + text, kUserToken), 403);
  }
  ASSERT_TRUE(Eventually([&] { return call(kAdminToken, "GET", "/api/v1/audit?kind=permission_denied").body.find("health/check") != std::string::npos; }, 10s));
  answers.push_back(call(kAdminToken, "GET", "/api/v1/audit?limit=1000").body);
  answers.push_back(call(kAdminToken, "GET", "/debug/requests?limit=1000").body);
  answers.push_back(call(kAdminToken, "GET", "/metrics").body);
  const std::string metrics = answers.back();
  EXPECT_NE(metrics.find("no_shhh_redactions_total{site=\"task_output\"}"), std::string::npos);

  ASSERT_EQ(node.Status("POST", "/admin/shutdown", kAdminToken), 202);
  ASSERT_EQ(node.process().Wait(15s), 0) << node.Log();

  // Nowhere: answers, the log, every file of the data directory.
  std::vector<std::pair<std::string, std::string>> places;
  for (std::size_t i = 0; i < answers.size(); ++i) places.emplace_back("answer " + std::to_string(i), answers[i]);
  places.emplace_back("node.log", node.Log());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.File("data"))) {
    if (!entry.is_regular_file()) continue;
    if (!sandbox && entry.path().filename().string().rfind("bzzz.db", 0) == 0) continue;
    places.emplace_back(entry.path().string(), ReadFile(entry.path().string()));
  }
  for (const auto& [text, secret] : planted) {
    for (const auto& [where, content] : places) {
      EXPECT_EQ(content.find(secret), std::string::npos) << secret << " found in " << where;
    }
  }
}

// A browser, as far as sign-in needs one: one request at a time without
// following redirects, and a cookie jar that honours Set-Cookie (Path,
// Max-Age=0 deletes). Each Browser is its own user agent.
class Browser {
 public:
  struct Answer {
    int status = 0;
    std::string body;
    std::string location;
    std::vector<std::string> set_cookies;  // raw Set-Cookie values
  };

  Answer Send(const std::string& method, const std::string& url, const std::string& body = "",
              std::vector<std::string> headers = {}) {
    Answer a;
    CURL* curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (!body.empty() || method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      headers.push_back("Content-Type: application/json");
    }
    const std::string path = PathOf(url);
    std::string cookie;
    for (const auto& [name, c] : jar_) {
      if (path.rfind(c.path, 0) == 0) cookie += (cookie.empty() ? "" : "; ") + name + "=" + c.value;
    }
    if (!cookie.empty()) headers.push_back("Cookie: " + cookie);
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* out) {
      static_cast<std::string*>(out)->append(p, size * n);
      return size * n;
    });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a.body);
    std::vector<std::string> lines;
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, +[](char* p, size_t size, size_t n, void* out) {
      static_cast<std::vector<std::string>*>(out)->emplace_back(p, size * n);
      return size * n;
    });
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &lines);
    if (curl_easy_perform(curl) == CURLE_OK) {
      long code = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
      a.status = static_cast<int>(code);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    for (std::string line : lines) {
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      const std::string value = line.substr(line.find_first_not_of(' ', colon + 1));
      if (name == "location") a.location = value;
      if (name == "set-cookie") {
        a.set_cookies.push_back(value);
        Store(value);
      }
    }
    return a;
  }
  Answer Get(const std::string& url, std::vector<std::string> headers = {}) { return Send("GET", url, "", headers); }

  std::string Cookie(const std::string& name) const {
    auto it = jar_.find(name);
    return it == jar_.end() ? "" : it->second.value;
  }
  void Forget(const std::string& name) { jar_.erase(name); }

 private:
  struct Entry {
    std::string value;
    std::string path = "/";
  };
  static std::string PathOf(const std::string& url) {
    const auto scheme = url.find("://");
    const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    return slash == std::string::npos ? "/" : url.substr(slash);
  }
  void Store(const std::string& header) {
    const auto eq = header.find('=');
    const auto semi = header.find(';');
    const std::string name = header.substr(0, eq);
    Entry e;
    e.value = header.substr(eq + 1, semi == std::string::npos ? std::string::npos : semi - eq - 1);
    if (auto p = header.find("Path="); p != std::string::npos) e.path = header.substr(p + 5, header.find(';', p) - p - 5);
    if (header.find("Max-Age=0") != std::string::npos) {
      jar_.erase(name);
    } else {
      jar_[name] = e;
    }
  }
  std::map<std::string, Entry> jar_;
};

// Browser sign-in against a local identity provider speaking the real
// protocol (discovery, authorization endpoint with PKCE, token endpoint with
// the client secret, JWKS, key rotation): the code flow end to end, the
// session as a credential with CSRF protection on writes, sign-out, and the
// ways a sign-in is refused (replayed state, another browser, wrong nonce,
// a code whose verifier does not match).
TEST(NodeE2E, BrowserSignInThroughALocalIdentityProvider) {
  TempDir dir;
  testing::LocalIdentityProvider idp;
  const std::string issuer = idp.issuer();
  NodeProcess node(dir, idp.NodeFlags());
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  const std::string base = node.Url();
  ASSERT_TRUE(Eventually([&] { return Browser().Get(base + "/auth/status").body.find("\"sign_in_available\":true") != std::string::npos; }, 10s))
      << node.Log();

  // The whole flow, as a browser follows it.
  auto sign_in = [&](Browser& b, const std::string& return_to) {
    auto login = b.Get(base + "/auth/login?return_to=" + return_to);
    EXPECT_EQ(login.status, 302) << login.body;
    EXPECT_EQ(login.location.rfind(issuer + "/authorize?", 0), 0u) << login.location;
    auto at_idp = b.Get(login.location);
    EXPECT_EQ(at_idp.status, 302) << at_idp.body;
    return b.Get(at_idp.location);  // the callback
  };
  Browser dana;
  auto callback = sign_in(dana, "%2Fapi%2Fv1%2Ftasks");
  ASSERT_EQ(callback.status, 302) << callback.body;
  EXPECT_EQ(callback.location, "/api/v1/tasks");
  bool session_flags = false, csrf_flags = false;
  for (const auto& c : callback.set_cookies) {
    if (c.rfind("bzzz_session=", 0) == 0) {
      session_flags = c.find("HttpOnly") != std::string::npos && c.find("SameSite=Lax") != std::string::npos &&
                      c.find("Secure") == std::string::npos;  // http here; Secure with an https redirect_uri
    }
    if (c.rfind("bzzz_csrf=", 0) == 0) {
      csrf_flags = c.find("HttpOnly") == std::string::npos && c.find("SameSite=Strict") != std::string::npos;
    }
  }
  EXPECT_TRUE(session_flags) << ::testing::PrintToString(callback.set_cookies);
  EXPECT_TRUE(csrf_flags) << ::testing::PrintToString(callback.set_cookies);
  const std::string csrf = dana.Cookie("bzzz_csrf");
  ASSERT_FALSE(dana.Cookie("bzzz_session").empty());

  auto me = dana.Get(base + "/auth/userinfo");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(json::parse(me.body)["sub"], "dana");
  EXPECT_EQ(json::parse(me.body)["email"], "dana@example.test");
  EXPECT_EQ(json::parse(me.body)["roles"], json::array({"operator"}));
  // The session is a credential: reads with the cookie alone, writes with
  // the CSRF token too.
  EXPECT_EQ(dana.Get(base + "/api/v1/tasks").status, 200);
  EXPECT_EQ(dana.Get(base + "/admin/status").status, 200);
  const std::string task = R"({"executor":"builtin","input":{"op":"echo"}})";
  auto forged = dana.Send("POST", base + "/api/v1/tasks", task);
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_NE(forged.body.find("X-CSRF-Token"), std::string::npos) << forged.body;
  EXPECT_EQ(dana.Send("POST", base + "/api/v1/tasks", task, {"X-CSRF-Token: wrong"}).status, 403);
  auto created = dana.Send("POST", base + "/api/v1/tasks", task, {"X-CSRF-Token: " + csrf});
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(json::parse(created.body)["submitter"], "dana");
  // A made-up session cookie is nothing.
  EXPECT_EQ(Browser().Get(base + "/api/v1/tasks", {"Cookie: bzzz_session=made-up"}).status, 401);

  // Replayed callback: the state was used.
  EXPECT_EQ(dana.Get(base + "/auth/callback?code=code-1&state=whatever").status, 400);
  // Another browser cannot complete a sign-in this one started (login CSRF).
  {
    Browser victim, attacker;
    auto login = attacker.Get(base + "/auth/login");
    auto at_idp = attacker.Get(login.location);
    auto stolen = victim.Get(at_idp.location);
    EXPECT_EQ(stolen.status, 400) << stolen.body;
    EXPECT_NE(stolen.body.find("did not start this sign-in"), std::string::npos) << stolen.body;
  }
  // An ID token whose nonce is not this sign-in's.
  idp.OverrideNonce("someone-elses-nonce");
  Browser eve;
  auto wrong_nonce = sign_in(eve, "%2F");
  EXPECT_EQ(wrong_nonce.status, 401) << wrong_nonce.body;
  EXPECT_NE(wrong_nonce.body.find("nonce"), std::string::npos) << wrong_nonce.body;
  EXPECT_TRUE(eve.Cookie("bzzz_session").empty());
  idp.OverrideNonce("");
  // An open redirect is not: return_to to another host becomes "/".
  Browser frank;
  auto elsewhere = sign_in(frank, "%2F%2Fevil.example%2F");
  EXPECT_EQ(elsewhere.location, "/");

  // Key rotation at the provider: the new key is published, then used.
  idp.PublishSecondKey();
  auto health_has_two = [&] {
    auto h = node.Call("GET", "/health/detailed", kAdminToken);
    return h.ok() && h->body.find("2 OIDC signing key(s)") != std::string::npos;
  };
  ASSERT_TRUE(Eventually(health_has_two, 10s));
  idp.SignWithSecondKey();
  Browser grace;
  EXPECT_EQ(sign_in(grace, "%2F").status, 302) << "signed by the rotated-in key";
  EXPECT_EQ(dana.Get(base + "/api/v1/tasks").status, 200) << "sessions outlive a rotation";

  // Sign-out: CSRF token required; afterwards the cookie is nothing.
  EXPECT_EQ(dana.Send("POST", base + "/auth/logout").status, 403);
  auto out = dana.Send("POST", base + "/auth/logout", "", {"X-CSRF-Token: " + csrf});
  ASSERT_EQ(out.status, 200) << out.body;
  EXPECT_EQ(json::parse(out.body)["signed_out"], true);
  EXPECT_EQ(json::parse(out.body)["end_session_endpoint"], issuer + "/logout");
  EXPECT_TRUE(dana.Cookie("bzzz_session").empty());
  const std::string old_session = callback.set_cookies.front();
  EXPECT_EQ(Browser().Get(base + "/api/v1/tasks", {"Cookie: " + old_session.substr(0, old_session.find(';'))}).status,
            401);
  EXPECT_EQ(dana.Get(base + "/auth/userinfo").status, 401);

  // The audit log has the sign-ins and the refusals; the log never has a
  // session id.
  auto audit = node.Call("GET", "/api/v1/audit?action=auth.sign_in&limit=100", kAdminToken);
  ASSERT_TRUE(audit.ok());
  EXPECT_NE(audit->body.find("\"kind\":\"login\""), std::string::npos) << audit->body;
  EXPECT_NE(audit->body.find("nonce"), std::string::npos) << audit->body;
  EXPECT_EQ(node.Log().find(old_session.substr(13, 20)), std::string::npos);
}

// The same sign-in in a real browser: headless Chromium follows the
// redirects through the local identity provider, keeps the cookies as a
// browser does (the session cookie out of the page's reach), and the page's
// own script writes with the CSRF token and signs out. (The node's API
// answers forbid pages to connect anywhere, CSP default-src 'none'; the
// test lets its script past that, standing in for the console's page.)
TEST(NodeE2E, BrowserSignInInHeadlessChromium) {
  TempDir dir;
  testing::WebDriver browser(dir);
  if (!browser.ok()) {
    if (std::getenv("CI") != nullptr) FAIL() << "CI must run the browser test: " << browser.why();
    GTEST_SKIP() << browser.why();
  }
  testing::LocalIdentityProvider idp;
  NodeProcess node(dir, idp.NodeFlags());
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  const std::string base = node.Url();
  ASSERT_TRUE(Eventually([&] { return node.Call("GET", "/auth/status")->body.find("\"sign_in_available\":true") != std::string::npos; }, 10s))
      << node.Log();
  auto page_json = [&] {
    const std::string text = browser.Text();
    const auto brace = text.find('{');
    return brace == std::string::npos ? json() : json::parse(text.substr(brace), nullptr, false);
  };

  browser.BypassCsp();
  browser.Navigate(base + "/auth/login?return_to=%2Fauth%2Fstatus");
  EXPECT_EQ(browser.CurrentUrl(), base + "/auth/status");
  const json status = page_json();
  ASSERT_TRUE(status.is_object()) << browser.Text();
  EXPECT_EQ(status["signed_in"], true) << status.dump();
  EXPECT_EQ(status["user"]["sub"], "dana") << status.dump();
  EXPECT_EQ(status["user"]["roles"], json::array({"operator"})) << status.dump();

  // As the browser stores them, and as the page sees them.
  std::map<std::string, json> cookies;
  for (const auto& c : browser.Cookies()) cookies[c.value("name", "")] = c;
  ASSERT_TRUE(cookies.count("bzzz_session")) << browser.Cookies().dump();
  EXPECT_EQ(cookies["bzzz_session"]["httpOnly"], true);
  EXPECT_EQ(cookies["bzzz_session"]["sameSite"], "Lax");
  EXPECT_EQ(cookies["bzzz_csrf"]["httpOnly"], false);
  EXPECT_EQ(cookies["bzzz_csrf"]["sameSite"], "Strict");
  EXPECT_EQ(cookies.count("bzzz_login"), 0u) << "the sign-in's state cookie is gone";
  const std::string page_cookies = browser.Execute("return document.cookie;").get<std::string>();
  EXPECT_EQ(page_cookies.find("bzzz_session"), std::string::npos) << page_cookies;
  EXPECT_NE(page_cookies.find("bzzz_csrf="), std::string::npos) << page_cookies;

  // The page writes: refused without the CSRF token, accepted with it.
  const std::string post_task = R"(
    const done = arguments[arguments.length - 1];
    const csrf = (document.cookie.split('; ').find(c => c.startsWith('bzzz_csrf=')) || '=').split('=')[1];
    const send = (headers) => fetch('/api/v1/tasks', {method: 'POST', headers: headers,
        body: JSON.stringify({executor: 'builtin', input: {op: 'echo'}})})
      .then(r => r.text().then(t => ({status: r.status, body: t})));
    send({'Content-Type': 'application/json'}).then(without =>
      send({'Content-Type': 'application/json', 'X-CSRF-Token': csrf}).then(with_token =>
        done({without: without, with_token: with_token}))).catch(e => done({error: String(e)}));
  )";
  const json writes = browser.ExecuteAsync(post_task);
  EXPECT_EQ(writes["without"]["status"], 403) << writes.dump();
  ASSERT_EQ(writes["with_token"]["status"], 201) << writes.dump();
  EXPECT_EQ(json::parse(writes["with_token"]["body"].get<std::string>())["submitter"], "dana");

  // Sign out from the page; the session is gone.
  const json out = browser.ExecuteAsync(R"(
    const done = arguments[arguments.length - 1];
    const csrf = (document.cookie.split('; ').find(c => c.startsWith('bzzz_csrf=')) || '=').split('=')[1];
    fetch('/auth/logout', {method: 'POST', headers: {'X-CSRF-Token': csrf}})
      .then(r => r.json()).then(done).catch(e => done({error: String(e)}));
  )");
  EXPECT_EQ(out["signed_out"], true) << out.dump();
  browser.Navigate(base + "/auth/userinfo");
  EXPECT_NE(browser.Text().find("not signed in"), std::string::npos) << browser.Text();
  EXPECT_EQ(browser.Execute("return document.cookie;").get<std::string>().find("bzzz_csrf="), std::string::npos);
}

// Profiling a running node: admin only, one profile at a time, and what
// comes back is a profile google-pprof reads (CPU with samples taken while
// the node serves requests; the live heap sampled by tcmalloc).
TEST(NodeE2E, ProfilesAreAdminOnlyOneAtATimeAndReadByPprof) {
  ASSERT_EQ(access("/usr/bin/google-pprof", X_OK), 0) << "google-pprof (package google-perftools) is missing";
  TempDir dir;
  NodeProcess node(dir, {}, {"TCMALLOC_SAMPLE_PARAMETER=524288"});
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  EXPECT_EQ(node.Status("GET", "/debug/pprof/profile?seconds=1"), 401);
  EXPECT_EQ(node.Status("GET", "/debug/pprof/heap", kUserToken), 403);
  EXPECT_EQ(node.Status("GET", "/debug/pprof/profile?seconds=0", kAdminToken), 400);

  std::atomic<bool> stop{false};
  std::thread load([&] {
    const cli::ClientOptions o = node.Client(kAdminToken);
    while (!stop) (void)cli::Call(o, "POST", "/api/v1/tasks", R"({"executor":"builtin","input":{"op":"echo","value":1}})");
  });
  CommandResult cpu;
  std::thread profile([&] {
    cpu = RunBzzz(dir, {"profile-cpu", "3", "--url", node.Url(), "--token", kAdminToken, "-o", dir.File("cpu.pprof")});
  });
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(node.Status("GET", "/debug/pprof/heap", kAdminToken), 409) << "one profile at a time";
  profile.join();
  stop = true;
  load.join();
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  struct stat st {};
  ASSERT_EQ(stat(dir.File("cpu.pprof").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto pprof = [&](const std::string& file) {
    const std::string log = dir.File(file + ".txt");
    Process p("/usr/bin/google-pprof", {"--text", BZZZ_BINARY, dir.File(file)}, {}, log);
    EXPECT_EQ(p.Wait(60s), 0) << ReadFile(log);
    return ReadFile(log);
  };
  const std::string cpu_text = pprof("cpu.pprof");
  EXPECT_NE(cpu_text.find("Total: "), std::string::npos) << cpu_text;
  EXPECT_EQ(cpu_text.find("Total: 0 samples"), std::string::npos) << "the node was busy: " << cpu_text;

  auto heap = node.Call("GET", "/debug/pprof/heap", kAdminToken);
  ASSERT_TRUE(heap.ok());
  ASSERT_EQ(heap->status, 200) << heap->body;
  dir.Write("heap.pprof", heap->body);
  const std::string heap_text = pprof("heap.pprof");
  EXPECT_NE(heap_text.find("Total: "), std::string::npos) << heap_text;
}

// Secrets in task inputs are write-only: no token, not even the
// submitter's, reads them back from the task API, and the log never has
// them; the executor gets them.
TEST(NodeE2E, SecretsInTaskInputsAreWriteOnly) {
  TempDir dir;
  // The executor runs in the bubblewrap sandbox, which needs unprivileged
  // user namespaces (absent in a chroot and in many containers).
  if (Status sandbox = executors::Sandbox(config::SandboxConfig{}, dir.File("probe")).Probe(); !sandbox.ok()) {
    GTEST_SKIP() << "the command sandbox cannot start here: " << sandbox.ToString();
  }
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  cli::ClientOptions o = node.Client(kAdminToken);
  const json body = {{"executor", "command"},
                     {"input", {{"argv", {"/bin/sh", "-c", "test ${#TOKEN} -eq 20"}},  // the value's length
                                {"env", {{"TOKEN", "hunter2-secret-value"}}}}}};
  auto created = cli::Call(o, "POST", "/api/v1/tasks", body.dump());
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  EXPECT_EQ(created->body.find("hunter2"), std::string::npos) << created->body;
  const std::string id = json::parse(created->body)["id"];
  for (const std::string& token : {std::string(kAdminToken), std::string(kUserToken)}) {
    o.token = token;
    std::string state;
    ASSERT_TRUE(Eventually(
        [&] {
          auto t = cli::Call(o, "GET", "/api/v1/tasks/" + id);
          if (!t.ok() || t->status != 200) return false;
          EXPECT_EQ(t->body.find("hunter2"), std::string::npos) << t->body;
          state = json::parse(t->body)["state"];
          return state == "succeeded" || state == "dead";
        },
        20s));
    EXPECT_EQ(state, "succeeded") << "the executor got the value";
    auto list = cli::Call(o, "GET", "/api/v1/tasks");
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->body.find("hunter2"), std::string::npos);
  }
  EXPECT_EQ(node.Log().find("hunter2"), std::string::npos);
  // The data directory is private and its files are the node's alone, and
  // the sandbox (which ran the task above) still works.
  struct stat st {};
  ASSERT_EQ(stat(dir.File("data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(dir.File("data/bzzz.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << std::oct << (st.st_mode & 0777);
}

TEST(NodeE2E, AdminShutdownEndsTheProcess) {
  TempDir dir;
  NodeProcess node(dir);
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  auto r = node.Call("POST", "/admin/shutdown", kAdminToken);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(node.process().Wait(15s), 0) << node.Log();
}

// Keep-alive clients hammer /health while the node gets SIGTERM: every
// request sent on an established connection gets a complete answer; new
// connections are refused once the listener is closed. A connection the
// kernel completed in the instant the listener closed can be reset after
// the client sent its request: that is a refused connection, not a failed
// in-flight request, and is counted apart (it should stay rare).
TEST(NodeE2E, SigtermUnderLoadFailsNoInFlightRequest) {
  TempDir dir;
  NodeProcess node(dir, {"--set", "http.access_log=false"});
  ASSERT_TRUE(node.WaitReady()) << node.Log();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0}, failed{0};
  std::mutex mu;
  std::vector<std::string> failures;
  const std::string url = node.Url() + "/health";
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      CURL* curl = curl_easy_init();
      std::string sink;
      curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
      curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
                       +[](char* d, size_t s, size_t n, void* u) {
                         static_cast<std::string*>(u)->append(d, s * n);
                         return s * n;
                       });
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
      while (!stop.load()) {
        sink.clear();
        const CURLcode rc = curl_easy_perform(curl);
        long code = 0;
        long new_connections = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &new_connections);
        if (rc == CURLE_OK && code == 200) {
          ++ok;
        } else if (rc == CURLE_COULDNT_CONNECT) {
          ++refused;
          break;  // the listener is closed: the node is going away
        } else if (new_connections > 0 && code == 0) {
          ++refused;
          break;  // reset before the server ever accepted the connection
        } else {
          ++failed;
          std::lock_guard lock(mu);
          failures.push_back(std::string(curl_easy_strerror(rc)) + " http " + std::to_string(code) +
                             " new_connections " + std::to_string(new_connections));
        }
      }
      curl_easy_cleanup(curl);
    });
  }
  ASSERT_TRUE(Eventually([&] { return ok.load() > 200; }, 10s));
  node.process().Signal(SIGTERM);
  const int exit_code = node.process().Wait(20s);
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(exit_code, 0) << node.Log();
  EXPECT_EQ(failed.load(), 0) << (failures.empty() ? "" : failures.front());
  EXPECT_GT(ok.load(), 200);
}

TEST(NodeE2E, SecondNodeOnTheSameDataDirectoryIsRefused) {
  TempDir dir;
  NodeProcess first(dir);
  ASSERT_TRUE(first.WaitReady()) << first.Log();
  auto second = RunBzzz(dir, {"serve", "--data-dir", dir.File("data"), "--p2p-listen", "127.0.0.1:0", "--http-listen",
                              "127.0.0.1:" + std::to_string(testing::FreePort())});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.output.find("in use by another bzzz process"), std::string::npos) << second.output;
  EXPECT_EQ(first.Status("GET", "/health"), 200) << "the first node is unaffected";
}

TEST(NodeE2E, BusyPortIsAClearError) {
  TempDir dir;
  NodeProcess first(dir);
  ASSERT_TRUE(first.WaitReady()) << first.Log();
  TempDir other;
  auto second = RunBzzz(other, {"serve", "--data-dir", other.File("data"), "--p2p-listen", "127.0.0.1:0", "--http-listen",
                                "127.0.0.1:" + std::to_string(first.port())});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.output.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << second.output;
}

TEST(CliE2E, ConfigValidateExplainsBrokenFiles) {
  TempDir dir;
  auto valid = RunBzzz(dir, {"config", "validate", "--config", dir.Write("ok.yaml", "http:\n  port: 9090\n")});
  EXPECT_EQ(valid.exit_code, 0) << valid.output;
  EXPECT_NE(valid.output.find("configuration is valid"), std::string::npos);

  auto unknown = RunBzzz(dir, {"config", "validate", "--config", dir.Write("u.yaml", "http:\n  prot: 9090\n")});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("http.prot"), std::string::npos) << unknown.output;

  auto type = RunBzzz(dir, {"config", "validate", "--config", dir.Write("t.yaml", "http:\n  port: lots\n")});
  EXPECT_EQ(type.exit_code, 1);
  EXPECT_NE(type.output.find("http.port"), std::string::npos) << type.output;

  auto syntax = RunBzzz(dir, {"config", "validate", "--config", dir.Write("s.yaml", "http:\n  port: [1,\n")});
  EXPECT_EQ(syntax.exit_code, 1);
  EXPECT_NE(syntax.output.find("line"), std::string::npos) << syntax.output;

  auto missing = RunBzzz(dir, {"config", "validate", "--config", dir.File("absent.yaml")});
  EXPECT_EQ(missing.exit_code, 1);

  auto env = RunBzzz(dir, {"config", "validate"}, {"NO_SERVICE_PORT=notaport"});
  EXPECT_EQ(env.exit_code, 1);
  EXPECT_NE(env.output.find("NO_SERVICE_PORT"), std::string::npos) << env.output;

  auto usage = RunBzzz(dir, {"config", "validate", "--no-such-flag"});
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
}

TEST(CliE2E, ConfigShowMasksSecrets) {
  TempDir dir;
  auto shown = RunBzzz(dir, {"config", "show", "--format", "json"},
                       {"NO_DB_PASSWORD=hunter2", "NO_SERVICE_PORT=9999"});
  EXPECT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_EQ(shown.output.find("hunter2"), std::string::npos);
  const json j = json::parse(shown.output);
  EXPECT_EQ(j["storage"]["postgres"]["password"], "***");
  EXPECT_EQ(j["http"]["port"], 9999);
}

// `bzzz token hash` reads the token on stdin and prints a salted hash that
// matches it; weak tokens are refused; `config show` masks token hashes.
TEST(CliE2E, TokenHashPrintsASaltedHash) {
  TempDir dir;
  auto hash_of = [&](const std::string& token) {
    static int counter = 0;
    const std::string log = dir.File("hash-" + std::to_string(counter++) + ".log");
    Process p("/bin/sh", {"-c", "printf '%s\\n' '" + token + "' | " + std::string(BZZZ_BINARY) + " token hash"}, {},
              log);
    const int code = p.Wait(30s);
    return CommandResult{code, ReadFile(log)};
  };
  const std::string token = "cli-token-5e1f0a9d8c7b6a";
  auto a = hash_of(token), b = hash_of(token);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  std::string hash = a.output.substr(0, a.output.find('\n'));
  EXPECT_TRUE(security::TokenMatches(hash, token)) << a.output;
  EXPECT_FALSE(security::TokenMatches(hash, token + "x"));
  EXPECT_NE(a.output, b.output) << "each hash has its own salt";
  auto weak = hash_of("short");
  EXPECT_EQ(weak.exit_code, 2) << weak.output;
  EXPECT_NE(weak.output.find("too weak"), std::string::npos) << weak.output;

  const std::string config = dir.Write("bzzz.yaml", "security:\n  api_tokens:\n    - name: ci\n      token_hash: \"" +
                                                        hash + "\"\n      roles: [operator]\n");
  auto shown = RunBzzz(dir, {"config", "show", "--format", "json", "--config", config});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_EQ(shown.output.find(hash.substr(20)), std::string::npos) << shown.output;
  EXPECT_EQ(json::parse(shown.output)["security"]["api_tokens"][0]["token_hash"], "***");
}

TEST(CliE2E, DatabaseCommands) {
  TempDir dir;
  const std::vector<std::string> data = {"--data-dir", dir.File("data")};
  auto args = [&](std::vector<std::string> a) {
    a.insert(a.end(), data.begin(), data.end());
    return a;
  };
  auto before = RunBzzz(dir, args({"db", "health-check"}));
  EXPECT_EQ(before.exit_code, 1) << "not migrated yet: " << before.output;
  auto migrate = RunBzzz(dir, args({"db", "migrate"}));
  EXPECT_EQ(migrate.exit_code, 0) << migrate.output;
  EXPECT_NE(migrate.output.find("applied migration node/1 initial"), std::string::npos) << migrate.output;
  EXPECT_NE(migrate.output.find("applied migration tasks/1 tasks"), std::string::npos);
  auto again = RunBzzz(dir, args({"db", "migrate"}));
  EXPECT_NE(again.output.find("up to date"), std::string::npos) << again.output;
  auto vacuum = RunBzzz(dir, args({"db", "vacuum"}));
  EXPECT_EQ(vacuum.exit_code, 0) << vacuum.output;
  EXPECT_NE(vacuum.output.find("vacuumed and analyzed"), std::string::npos) << vacuum.output;
  auto health = RunBzzz(dir, args({"db", "health-check"}));
  EXPECT_EQ(health.exit_code, 0) << health.output;
  EXPECT_NE(health.output.find("\"healthy\""), std::string::npos);
  auto conn = RunBzzz(dir, args({"db", "test-connection"}));
  EXPECT_EQ(conn.exit_code, 0) << conn.output;
  EXPECT_NE(conn.output.find("connection ok"), std::string::npos);
  dir.Write("garbage.db", std::string(4096, 'g'));
  auto garbage = RunBzzz(dir, {"db", "test-connection", "--set", "storage.sqlite.path=" + dir.File("garbage.db")});
  EXPECT_NE(garbage.exit_code, 0) << garbage.output;
}

TEST(CliE2E, VersionAndUsage) {
  TempDir dir;
  auto v = RunBzzz(dir, {"version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("bzzz "), std::string::npos);
  EXPECT_EQ(RunBzzz(dir, {}).exit_code, 2);
  EXPECT_EQ(RunBzzz(dir, {"frobnicate"}).exit_code, 2);
  auto bad_listen = RunBzzz(dir, {"serve", "--data-dir", dir.File("d"), "--p2p-listen", "127.0.0.1:0", "--http-listen", "nonsense"});
  EXPECT_EQ(bad_listen.exit_code, 2) << bad_listen.output;
}

}  // namespace
}  // namespace bzzz
