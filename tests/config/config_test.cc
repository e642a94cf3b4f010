// Tests of config/loader.h: file, environment and flag sources, validation,
// rendering and the key table.
#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/loader.h"

namespace bzzz::config {
namespace {

using Env = std::map<std::string, std::string>;
using Overrides = std::vector<std::pair<std::string, std::string>>;

const std::string kHashA(64, 'a');
const std::string kHashB = std::string(63, 'b') + "0";

std::string Dump(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const ConfigIssue& issue : issues) out += "  " + issue.ToString() + "\n";
  return out;
}

// The first issue at `path`, or nullptr.
const ConfigIssue* Find(const std::vector<ConfigIssue>& issues, const std::string& path) {
  for (const ConfigIssue& issue : issues) {
    if (issue.path == path) return &issue;
  }
  return nullptr;
}

// Every key path below `prefix` that holds a value (a scalar, or a list).
void CollectLeafPaths(const nlohmann::json& node, const std::string& prefix, std::set<std::string>& out) {
  if (!node.is_object()) {
    out.insert(prefix);
    return;
  }
  for (const auto& [name, value] : node.items()) {
    CollectLeafPaths(value, prefix.empty() ? name : prefix + "." + name, out);
  }
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/bzzz_config_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  LoadResult LoadYaml(const std::string& yaml, Env env = {}, Overrides overrides = {}) {
    return Load(Write("bzzz.yaml", yaml), std::move(env), std::move(overrides));
  }

  static LoadResult Load(std::optional<std::string> file, Env env = {}, Overrides overrides = {}) {
    LoadOptions options;
    options.file = std::move(file);
    options.env = std::move(env);
    options.overrides = std::move(overrides);
    return LoadConfig(options);
  }

  static LoadResult LoadEnv(Env env) { return Load(std::nullopt, std::move(env)); }
  static LoadResult LoadFlag(const std::string& path, const std::string& value) {
    return Load(std::nullopt, {}, {{path, value}});
  }

  std::string dir_;
};

// A file that sets every key to something other than its default.
const char kFullYaml[] = R"(
node:
  name: walnut
  data_dir: /var/lib/bzzz
  role: backend_developer
  environment: staging
  capabilities: [code, review]
  log_level: debug
  log_format: json
http:
  host: 0.0.0.0
  port: 9090
  threads: 4
  body_limit_bytes: 2MiB
  read_timeout: 10s
  keepalive_timeout: 2m
  max_connections: 500
  access_log: false
  health_listen: 0.0.0.0:8081
p2p:
  listen: "[::1]:9101"
  bootstrap: ["walnut:9101", "ironwood:9102", "10.0.0.3:9103"]
  network_id: 0x1234
  multicast_discovery: true
  presence_interval: 2s
  peer_expiry: 20s
dht:
  replication_factor: 5
  provider_refresh: 30s
  cache_ttl: 1h
  cache_max_bytes: 128MiB
election:
  admin_capable: false
  heartbeat_interval: 100ms
  election_timeout: 500
  stability_window: 0
agents:
  initial_agents: 3
  heartbeat_interval: 2s
  autoscaling:
    enabled: false
    min_agents: 2
    max_agents: 12
    target_cpu: 65.5
    target_memory: 75
    scale_up_cooldown: 1m
    scale_down_cooldown: 5m
    step: 2
tasks:
  default_max_attempts: 5
  default_timeout: 2m
  lease_duration: 15s
  max_queue_depth: 5000
  retry_backoff_base: 250ms
  retry_backoff_max: 30s
hmmm:
  enabled: false
  objection_window: 10s
  message_limit: 50
  room_ttl: 12h
  hop_limit: 4
  max_participants: 10
  escalation_keywords: [stuck, "need human"]
  escalation_webhook: https://hooks.example.com/escalate
slurp:
  enabled: false
  queue_capacity: 500
  max_retries: 2
ucxi:
  enabled: false
  max_payload_bytes: 8MiB
security:
  rbac_enabled: false
  api_tokens:
    - name: ci
      token_sha256: )"
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         R"(
      roles: [operator, service_account]
    - name: cli
      token_sha256: )"
                         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb0"
                         R"(
      roles: [system_admin]
  roles:
    - name: auditor
      permissions: ["audit:read", "tasks:*", "*"]
  oidc:
    enabled: true
    issuer: https://id.example.com
    audience: bzzz
    jwks_uri: https://id.example.com/jwks
    client_id: bzzz-web
    client_secret: s3cret
    redirect_uri: https://bzzz.example.com/auth/callback
    leeway: 30s
  rate_limit:
    enabled: false
    requests_per_second: 12.5
    burst: 40
    trust_forwarded_headers: true
    trusted_proxies: [10.0.0.1, "2001:db8::7"]
storage:
  backend: postgres
  sqlite:
    path: /tmp/x.db
    synchronous: full
    busy_timeout: 1s
  postgres:
    host: db.internal
    port: 6432
    database: bzzz_prod
    user: bzzz_app
    password: pg-pass
    sslmode: verify-full
  pool:
    enabled: false
    min_connections: 1
    max_connections: 4
    acquire_timeout: 5s
    idle_timeout: 1m
cache:
  enabled: false
  default_ttl: 10m
  max_size: 2000
  layers: [memory, redis]
  redis:
    host: redis.internal
    port: 6380
    password: redis-pass
    db: 2
monitoring:
  prometheus_enabled: false
  grafana_enabled: true
operations:
  shutdown_timeout: 20s
  drain_timeout: 5s
  debug_requests_capacity: 64
  health_check_interval: 15s
  health_check_timeout: 3s
  memory_degraded_ratio: 0.8
  memory_unhealthy_ratio: 0.9
)";

void ExpectFullConfig(const Config& c) {
  EXPECT_EQ(c.node.name, "walnut");
  EXPECT_EQ(c.node.data_dir, "/var/lib/bzzz");
  EXPECT_EQ(c.node.capabilities, (std::vector<std::string>{"code", "review"}));
  EXPECT_EQ(c.node.log_level, "debug");
  EXPECT_EQ(c.node.log_format, "json");
  EXPECT_EQ(c.http.host, "0.0.0.0");
  EXPECT_EQ(c.http.port, 9090);
  EXPECT_EQ(c.http.body_limit_bytes, 2u << 20);
  EXPECT_EQ(c.http.read_timeout, Millis(10000));
  EXPECT_EQ(c.http.keepalive_timeout, Millis(120000));
  EXPECT_FALSE(c.http.access_log);
  EXPECT_EQ(c.http.health_listen, "0.0.0.0:8081");
  EXPECT_EQ(c.p2p.listen, "[::1]:9101");
  EXPECT_EQ(c.p2p.bootstrap.size(), 3u);
  EXPECT_EQ(c.p2p.network_id, 0x1234u);
  EXPECT_EQ(c.dht.cache_max_bytes, 128u << 20);
  EXPECT_EQ(c.election.election_timeout, Millis(500));
  EXPECT_EQ(c.election.stability_window, Millis(0));
  EXPECT_EQ(c.agents.autoscaling.max_agents, 12);
  EXPECT_DOUBLE_EQ(c.agents.autoscaling.target_cpu, 65.5);
  EXPECT_EQ(c.agents.autoscaling.scale_down_cooldown, Millis(300000));
  EXPECT_EQ(c.hmmm.escalation_keywords, (std::vector<std::string>{"stuck", "need human"}));
  ASSERT_EQ(c.security.api_tokens.size(), 2u);
  EXPECT_EQ(c.security.api_tokens[0].name, "ci");
  EXPECT_EQ(c.security.api_tokens[0].token_sha256, kHashA);
  EXPECT_EQ(c.security.api_tokens[0].roles, (std::vector<std::string>{"operator", "service_account"}));
  ASSERT_EQ(c.security.roles.size(), 1u);
  EXPECT_EQ(c.security.roles[0].permissions.size(), 3u);
  EXPECT_EQ(c.security.oidc.client_secret, "s3cret");
  EXPECT_DOUBLE_EQ(c.security.rate_limit.requests_per_second, 12.5);
  EXPECT_EQ(c.security.rate_limit.trusted_proxies, (std::vector<std::string>{"10.0.0.1", "2001:db8::7"}));
  EXPECT_EQ(c.storage.backend, "postgres");
  EXPECT_EQ(c.storage.postgres.sslmode, "verify-full");
  EXPECT_EQ(c.storage.postgres.password, "pg-pass");
  EXPECT_EQ(c.SqlitePath(), "/tmp/x.db");
  EXPECT_EQ(c.cache.layers, (std::vector<std::string>{"memory", "redis"}));
  EXPECT_EQ(c.cache.redis.db, 2);
  EXPECT_TRUE(c.monitoring.grafana_enabled);
  EXPECT_DOUBLE_EQ(c.operations.memory_unhealthy_ratio, 0.9);
}

// --- Defaults and basics --------------------------------------------------------

TEST_F(ConfigTest, DefaultsAreValid) {
  LoadResult r = Load(std::nullopt);
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(r.config.http.port, 8080);
  EXPECT_EQ(r.config.p2p.network_id, 0u);  // derived from the cluster key
  EXPECT_EQ(r.config.cache.layers, (std::vector<std::string>{"memory"}));
  EXPECT_EQ(r.config.SqlitePath(), "./data/bzzz.db");
}

TEST(ConfigStructTest, SqlitePathPrefersExplicitPath) {
  Config c;
  c.node.data_dir = "/srv/bzzz";
  EXPECT_EQ(c.SqlitePath(), "/srv/bzzz/bzzz.db");
  c.storage.sqlite.path = "/db/custom.db";
  EXPECT_EQ(c.SqlitePath(), "/db/custom.db");
}

TEST(ConfigIssueTest, ToString) {
  EXPECT_EQ((ConfigIssue{"http.port", "env:NO_SERVICE_PORT", "bad"}).ToString(),
            "http.port (env:NO_SERVICE_PORT): bad");
  EXPECT_EQ((ConfigIssue{"", "file:/x.yaml", "file not found"}).ToString(), "file:/x.yaml: file not found");
}

TEST_F(ConfigTest, FullYamlFile) {
  LoadResult r = LoadYaml(kFullYaml);
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  ExpectFullConfig(r.config);
}

TEST_F(ConfigTest, FullJsonFile) {
  LoadResult yaml = LoadYaml(kFullYaml);
  ASSERT_TRUE(yaml.ok()) << Dump(yaml.errors);
  // Hand-written JSON with tab indentation, which YAML parsers reject but JSON allows.
  std::string json =
      "{\n\t\"http\": {\"port\": 9090, \"access_log\": false, \"read_timeout\": \"10s\"},\n"
      "\t\"p2p\": {\"bootstrap\": [\"walnut:9101\"], \"network_id\": 42},\n"
      "\t\"agents\": {\"autoscaling\": {\"target_cpu\": 65.5}},\n"
      "\t\"security\": {\"api_tokens\": [{\"name\": \"ci\", \"token_sha256\": \"" +
      kHashA +
      "\", \"roles\": [\"operator\"]}]},\n"
      "\t\"storage\": {\"sqlite\": {\"path\": null}}\n}\n";
  LoadResult r = Load(Write("bzzz.json", json));
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  EXPECT_EQ(r.config.http.port, 9090);
  EXPECT_FALSE(r.config.http.access_log);
  EXPECT_EQ(r.config.http.read_timeout, Millis(10000));
  EXPECT_EQ(r.config.p2p.bootstrap, (std::vector<std::string>{"walnut:9101"}));
  EXPECT_EQ(r.config.p2p.network_id, 42u);
  EXPECT_DOUBLE_EQ(r.config.agents.autoscaling.target_cpu, 65.5);
  ASSERT_EQ(r.config.security.api_tokens.size(), 1u);

  // The full YAML configuration written as JSON loads to the same configuration.
  LoadResult from_json = Load(Write("full.json", RenderConfig(yaml.config, RenderFormat::kJson, false)));
  ASSERT_TRUE(from_json.ok()) << Dump(from_json.errors);
  ExpectFullConfig(from_json.config);
}

TEST_F(ConfigTest, JsonSyntaxErrorHasLine) {
  LoadResult r = Load(Write("bad.json", "{\n  \"http\": {\"port\": 80,}\n}\n"));
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].path, "");
  EXPECT_NE(r.errors[0].message.find("line 2"), std::string::npos) << r.errors[0].message;
}

TEST_F(ConfigTest, EmptyFileAndNullValuesKeepDefaults) {
  LoadResult empty = LoadYaml("");
  ASSERT_TRUE(empty.ok()) << Dump(empty.errors);
  EXPECT_EQ(empty.config.http.port, 8080);

  LoadResult comments = LoadYaml("# nothing here\n");
  ASSERT_TRUE(comments.ok()) << Dump(comments.errors);

  LoadResult nulls = LoadYaml("http:\n  port: ~\n  host:\np2p:\ncache:\n  layers: null\n");
  ASSERT_TRUE(nulls.ok()) << Dump(nulls.errors);
  EXPECT_EQ(nulls.config.http.port, 8080);
  EXPECT_EQ(nulls.config.http.host, "127.0.0.1");
  EXPECT_EQ(nulls.config.cache.layers, (std::vector<std::string>{"memory"}));

  LoadResult empty_json = Load(Write("empty.json", "  \n"));
  EXPECT_TRUE(empty_json.ok()) << Dump(empty_json.errors);
}

TEST_F(ConfigTest, MissingFileAndDirectoryAreErrors) {
  LoadResult missing = Load(dir_ + "/nope.yaml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].source, "file:" + dir_ + "/nope.yaml");
  EXPECT_NE(missing.errors[0].message.find("not found"), std::string::npos);

  LoadResult directory = Load(dir_);
  ASSERT_EQ(directory.errors.size(), 1u);
  EXPECT_NE(directory.errors[0].message.find("directory"), std::string::npos);

  if (geteuid() != 0) {  // root reads anything
    std::string path = Write("secret.yaml", "http: {port: 1}\n");
    chmod(path.c_str(), 0);
    LoadResult unreadable = Load(path);
    ASSERT_EQ(unreadable.errors.size(), 1u);
    EXPECT_NE(unreadable.errors[0].message.find("cannot read"), std::string::npos);
  }
}

TEST_F(ConfigTest, YamlSyntaxErrorHasLineAndColumn) {
  LoadResult r = LoadYaml("http:\n  port: 8080\n  host: [unclosed\n");
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].path, "");
  EXPECT_EQ(r.errors[0].source.rfind("file:", 0), 0u);
  EXPECT_NE(r.errors[0].message.find("syntax error at line"), std::string::npos) << r.errors[0].message;
  EXPECT_NE(r.errors[0].message.find("column"), std::string::npos);
}

TEST_F(ConfigTest, TopLevelMustBeAMapping) {
  LoadResult r = LoadYaml("- http\n- p2p\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("mapping"), std::string::npos);
}

// --- Unknown keys and wrong types -------------------------------------------------

TEST_F(ConfigTest, UnknownTopLevelSectionSuggestsNearest) {
  LoadResult r = LoadYaml("htp:\n  port: 1\n");
  const ConfigIssue* issue = Find(r.errors, "htp");
  ASSERT_NE(issue, nullptr) << Dump(r.errors);
  EXPECT_NE(issue->message.find("unknown key"), std::string::npos);
  EXPECT_NE(issue->message.find("did you mean \"http\"?"), std::string::npos) << issue->message;
}

TEST_F(ConfigTest, UnknownNestedKey) {
  LoadResult r = LoadYaml("agents:\n  autoscaling:\n    max_agent: 3\n    wibble: 1\n");
  const ConfigIssue* typo = Find(r.errors, "agents.autoscaling.max_agent");
  ASSERT_NE(typo, nullptr) << Dump(r.errors);
  EXPECT_NE(typo->message.find("did you mean \"max_agents\"?"), std::string::npos) << typo->message;
  const ConfigIssue* unrelated = Find(r.errors, "agents.autoscaling.wibble");
  ASSERT_NE(unrelated, nullptr);
  EXPECT_EQ(unrelated->message.find("did you mean"), std::string::npos);
  // camelCase spelling of a snake_case key.
  LoadResult camel = LoadYaml("http:\n  bodyLimitBytes: 4096\n");
  const ConfigIssue* issue = Find(camel.errors, "http.bodyLimitBytes");
  ASSERT_NE(issue, nullptr);
  EXPECT_NE(issue->message.find("\"body_limit_bytes\""), std::string::npos);
}

TEST_F(ConfigTest, UnknownKeyInsideApiToken) {
  LoadResult r = LoadYaml("security:\n  api_tokens:\n    - name: a\n      token_sha256: " + kHashA +
                          "\n      roles: [operator]\n    - name: b\n      token_sha256: " + kHashB +
                          "\n      roles: [operator]\n      role: [x]\n");
  const ConfigIssue* issue = Find(r.errors, "security.api_tokens[1].role");
  ASSERT_NE(issue, nullptr) << Dump(r.errors);
  EXPECT_NE(issue->message.find("did you mean \"roles\"?"), std::string::npos) << issue->message;
}

TEST_F(ConfigTest, WrongTypesNameThePath) {
  LoadResult r = LoadYaml("http:\n  port:\n    a: 1\n  threads: abc\n  host: [a, b]\np2p: 5\n");
  const ConfigIssue* port = Find(r.errors, "http.port");
  ASSERT_NE(port, nullptr) << Dump(r.errors);
  EXPECT_NE(port->message.find("got a mapping"), std::string::npos);
  EXPECT_NE(port->message.find("(line 3)"), std::string::npos) << port->message;
  const ConfigIssue* threads = Find(r.errors, "http.threads");
  ASSERT_NE(threads, nullptr);
  EXPECT_NE(threads->message.find("expected an integer in 0..256, got \"abc\""), std::string::npos)
      << threads->message;
  ASSERT_NE(Find(r.errors, "http.host"), nullptr);
  const ConfigIssue* section = Find(r.errors, "p2p");
  ASSERT_NE(section, nullptr);
  EXPECT_NE(section->message.find("expected a mapping"), std::string::npos);
  // A list where a list is expected must be a list, not a scalar.
  LoadResult list = LoadYaml("p2p:\n  bootstrap: \"a:1\"\n");
  ASSERT_NE(Find(list.errors, "p2p.bootstrap"), nullptr) << Dump(list.errors);
}

// --- Types ------------------------------------------------------------------------

TEST_F(ConfigTest, Durations) {
  struct Case {
    std::string text;
    long long ms;
  };
  for (const Case& c : std::vector<Case>{{"250ms", 250},
                                         {"5s", 5000},
                                         {"2m", 120000},
                                         {"1h", 3600000},
                                         {"1500", 1500},
                                         {" 7S ", 7000},
                                         {"10 ms", 10}}) {
    LoadResult r = LoadFlag("http.read_timeout", c.text);
    ASSERT_TRUE(r.ok()) << c.text << Dump(r.errors);
    EXPECT_EQ(r.config.http.read_timeout, Millis(c.ms)) << c.text;
  }
  for (const char* bad : {"5x", "-1s", "1.5s", "", "s", "abc", "0", "0ms", "99999999999999999999h"}) {
    LoadResult r = LoadFlag("http.read_timeout", bad);
    const ConfigIssue* issue = Find(r.errors, "http.read_timeout");
    ASSERT_NE(issue, nullptr) << bad;
    EXPECT_EQ(issue->source, "flag");
    EXPECT_NE(issue->message.find("expected a duration"), std::string::npos) << issue->message;
  }
  // Zero is fine where it means "none".
  LoadResult zero = LoadFlag("agents.autoscaling.scale_up_cooldown", "0");
  ASSERT_TRUE(zero.ok()) << Dump(zero.errors);
  EXPECT_EQ(zero.config.agents.autoscaling.scale_up_cooldown, Millis(0));
  // In a file, integers are milliseconds.
  LoadResult file = LoadYaml("tasks:\n  lease_duration: 2345\n");
  ASSERT_TRUE(file.ok()) << Dump(file.errors);
  EXPECT_EQ(file.config.tasks.lease_duration, Millis(2345));
}

TEST_F(ConfigTest, Sizes) {
  struct Case {
    std::string text;
    std::size_t bytes;
  };
  for (const Case& c : std::vector<Case>{{"512KiB", 512 * 1024},
                                         {"1MiB", 1 << 20},
                                         {"4MB", 4000000},
                                         {"2048", 2048},
                                         {"1 GiB", 1u << 30},
                                         {"64kb", 64000},
                                         {"1024B", 1024}}) {
    LoadResult r = LoadFlag("http.body_limit_bytes", c.text);
    ASSERT_TRUE(r.ok()) << c.text << Dump(r.errors);
    EXPECT_EQ(r.config.http.body_limit_bytes, c.bytes) << c.text;
  }
  for (const char* bad : {"1 GiBs", "-1", "1.5MiB", "lots", "512", "2GiB", "99999999999999999999"}) {
    LoadResult r = LoadFlag("http.body_limit_bytes", bad);
    const ConfigIssue* issue = Find(r.errors, "http.body_limit_bytes");
    ASSERT_NE(issue, nullptr) << bad;
    EXPECT_NE(issue->message.find("in 1KiB..1GiB"), std::string::npos) << issue->message;
  }
  LoadResult file = LoadYaml("dht:\n  cache_max_bytes: 0\nucxi:\n  max_payload_bytes: 1MB\n");
  ASSERT_TRUE(file.ok()) << Dump(file.errors);
  EXPECT_EQ(file.config.dht.cache_max_bytes, 0u);
  EXPECT_EQ(file.config.ucxi.max_payload_bytes, 1000000u);
}

TEST_F(ConfigTest, Booleans) {
  for (const char* yes : {"true", "yes", "on", "1", "TRUE", "On"}) {
    LoadResult r = LoadEnv({{"BZZZ_P2P_MULTICAST_DISCOVERY", yes}});
    ASSERT_TRUE(r.ok()) << yes << Dump(r.errors);
    EXPECT_TRUE(r.config.p2p.multicast_discovery) << yes;
  }
  for (const char* no : {"false", "no", "off", "0", "False"}) {
    LoadResult r = LoadFlag("http.access_log", no);
    ASSERT_TRUE(r.ok()) << no << Dump(r.errors);
    EXPECT_FALSE(r.config.http.access_log) << no;
  }
  LoadResult bad = LoadEnv({{"BZZZ_HTTP_ACCESS_LOG", "maybe"}});
  const ConfigIssue* issue = Find(bad.errors, "http.access_log");
  ASSERT_NE(issue, nullptr);
  EXPECT_NE(issue->message.find("expected a boolean"), std::string::npos);
  LoadResult file = LoadYaml("http:\n  access_log: false\np2p:\n  multicast_discovery: yes\n");
  ASSERT_TRUE(file.ok()) << Dump(file.errors);
  EXPECT_FALSE(file.config.http.access_log);
  EXPECT_TRUE(file.config.p2p.multicast_discovery);
  EXPECT_FALSE(LoadYaml("http:\n  access_log: 2\n").ok());
}

TEST_F(ConfigTest, Enums) {
  LoadResult upper = LoadEnv({{"BZZZ_NODE_LOG_LEVEL", "DEBUG"}});
  ASSERT_TRUE(upper.ok()) << Dump(upper.errors);
  EXPECT_EQ(upper.config.node.log_level, "debug");

  LoadResult bad = LoadYaml("node:\n  log_level: verbose\n");
  const ConfigIssue* issue = Find(bad.errors, "node.log_level");
  ASSERT_NE(issue, nullptr) << Dump(bad.errors);
  EXPECT_NE(issue->message.find("one of trace|debug|info|warn|error|critical|off"), std::string::npos);
  EXPECT_NE(issue->message.find("\"verbose\""), std::string::npos);

  EXPECT_FALSE(LoadFlag("node.log_format", "xml").ok());
  EXPECT_FALSE(LoadFlag("storage.backend", "mysql").ok());
  EXPECT_FALSE(LoadFlag("storage.sqlite.synchronous", "off").ok());
  EXPECT_FALSE(LoadFlag("storage.postgres.sslmode", "maybe").ok());
  for (const char* mode : {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}) {
    LoadResult r = LoadFlag("storage.postgres.sslmode", mode);
    ASSERT_TRUE(r.ok()) << mode;
    EXPECT_EQ(r.config.storage.postgres.sslmode, mode);
  }
}

TEST_F(ConfigTest, Lists) {
  LoadResult env = LoadEnv({{"BZZZ_NODE_CAPABILITIES", " code, review,,test "}});
  ASSERT_TRUE(env.ok()) << Dump(env.errors);
  EXPECT_EQ(env.config.node.capabilities, (std::vector<std::string>{"code", "review", "test"}));

  LoadResult empty = LoadFlag("cache.layers", "");
  ASSERT_TRUE(empty.ok()) << Dump(empty.errors);
  EXPECT_TRUE(empty.config.cache.layers.empty());

  LoadResult layers = LoadFlag("cache.layers", "memory,redis");
  ASSERT_TRUE(layers.ok()) << Dump(layers.errors);
  EXPECT_EQ(layers.config.cache.layers, (std::vector<std::string>{"memory", "redis"}));

  LoadResult bad_layer = LoadYaml("cache:\n  layers: [memory, disk]\n");
  const ConfigIssue* issue = Find(bad_layer.errors, "cache.layers[1]");
  ASSERT_NE(issue, nullptr) << Dump(bad_layer.errors);
  EXPECT_NE(issue->message.find("memory|redis"), std::string::npos);
  EXPECT_EQ(bad_layer.config.cache.layers, (std::vector<std::string>{"memory"}));  // untouched

  EXPECT_NE(Find(LoadYaml("cache:\n  layers: [memory, memory]\n").errors, "cache.layers[1]"), nullptr);
  EXPECT_NE(Find(LoadYaml("node:\n  capabilities: [a, {b: 1}]\n").errors, "node.capabilities[1]"), nullptr);
  EXPECT_NE(Find(LoadYaml("node:\n  capabilities: [a, \"\"]\n").errors, "node.capabilities[1]"), nullptr);
}

TEST_F(ConfigTest, NumericRanges) {
  EXPECT_TRUE(LoadFlag("http.port", "0").ok());
  EXPECT_TRUE(LoadFlag("http.port", "65535").ok());
  LoadResult too_big = LoadFlag("http.port", "70000");
  const ConfigIssue* port = Find(too_big.errors, "http.port");
  ASSERT_NE(port, nullptr);
  EXPECT_EQ(port->message, "expected an integer in 0..65535, got \"70000\"");
  EXPECT_FALSE(LoadFlag("http.port", "-1").ok());
  EXPECT_FALSE(LoadFlag("http.port", "80.5").ok());
  EXPECT_FALSE(LoadFlag("http.threads", "257").ok());
  EXPECT_FALSE(LoadFlag("dht.replication_factor", "0").ok());
  EXPECT_FALSE(LoadFlag("dht.replication_factor", "21").ok());
  EXPECT_FALSE(LoadFlag("agents.autoscaling.min_agents", "-1").ok());
  EXPECT_FALSE(LoadFlag("agents.autoscaling.target_cpu", "0").ok());
  EXPECT_TRUE(LoadFlag("agents.autoscaling.target_cpu", "100").ok());
  EXPECT_FALSE(LoadFlag("agents.autoscaling.target_memory", "100.5").ok());
  EXPECT_FALSE(LoadFlag("agents.autoscaling.target_cpu", "nan").ok());
  EXPECT_FALSE(LoadFlag("operations.memory_degraded_ratio", "0").ok());
  EXPECT_FALSE(LoadFlag("operations.memory_unhealthy_ratio", "1.01").ok());
  EXPECT_FALSE(LoadFlag("node.data_dir", "").ok());
  EXPECT_FALSE(LoadFlag("hmmm.escalation_webhook", "ftp://x").ok());
  EXPECT_TRUE(LoadFlag("hmmm.escalation_webhook", "").ok());
  LoadResult hex = LoadFlag("p2p.network_id", "0xdeadbeef");
  ASSERT_TRUE(hex.ok()) << Dump(hex.errors);
  EXPECT_EQ(hex.config.p2p.network_id, 0xdeadbeefu);
  EXPECT_FALSE(LoadFlag("p2p.network_id", "4294967296").ok());
}

// --- Precedence and environment -------------------------------------------------

TEST_F(ConfigTest, PrecedenceDefaultFileEnvFlag) {
  std::string file = Write("p.yaml", "http:\n  port: 1000\n");
  EXPECT_EQ(Load(std::nullopt).config.http.port, 8080);
  EXPECT_EQ(Load(file).config.http.port, 1000);
  EXPECT_EQ(Load(file, {{"BZZZ_HTTP_PORT", "2000"}}).config.http.port, 2000);
  LoadResult all = Load(file, {{"BZZZ_HTTP_PORT", "2000"}}, {{"http.port", "3000"}});
  ASSERT_TRUE(all.ok()) << Dump(all.errors);
  EXPECT_EQ(all.config.http.port, 3000);
  // Flags apply in order; the last wins.
  EXPECT_EQ(Load(file, {}, {{"http.port", "3000"}, {"http.port", "3001"}}).config.http.port, 3001);
}

TEST_F(ConfigTest, BzzzNameBeatsNoAlias) {
  EXPECT_EQ(LoadEnv({{"NO_SERVICE_PORT", "7000"}}).config.http.port, 7000);
  EXPECT_EQ(LoadEnv({{"NO_SERVICE_PORT", "7000"}, {"BZZZ_HTTP_PORT", "7001"}}).config.http.port, 7001);
  // The shadowed alias is not even parsed.
  LoadResult shadowed = LoadEnv({{"NO_SERVICE_PORT", "junk"}, {"BZZZ_HTTP_PORT", "7001"}});
  EXPECT_TRUE(shadowed.ok()) << Dump(shadowed.errors);

  EXPECT_EQ(LoadEnv({{"LOG_LEVEL", "warn"}}).config.node.log_level, "warn");
  EXPECT_EQ(LoadEnv({{"LOG_LEVEL", "warn"}, {"BZZZ_LOG_LEVEL", "error"}}).config.node.log_level, "error");
  EXPECT_EQ(LoadEnv({{"LOG_LEVEL", "warn"}, {"BZZZ_LOG_LEVEL", "error"}, {"BZZZ_NODE_LOG_LEVEL", "trace"}})
                .config.node.log_level,
            "trace");
}

TEST_F(ConfigTest, EveryEnvAliasMapsToItsKey) {
  struct Case {
    const char* name;
    const char* value;
    std::function<bool(const Config&)> applied;
  };
  const std::vector<Case> cases = {
      {"NO_SERVICE_PORT", "7100", [](const Config& c) { return c.http.port == 7100; }},
      {"NO_SERVICE_HOST", "0.0.0.0", [](const Config& c) { return c.http.host == "0.0.0.0"; }},
      {"NODE_ENV", "development", [](const Config& c) { return c.node.environment == "development"; }},
      {"NO_DB_HOST", "pg", [](const Config& c) { return c.storage.postgres.host == "pg"; }},
      {"NO_DB_PORT", "6543", [](const Config& c) { return c.storage.postgres.port == 6543; }},
      {"NO_DB_NAME", "nodb", [](const Config& c) { return c.storage.postgres.database == "nodb"; }},
      {"NO_DB_USER", "nouser", [](const Config& c) { return c.storage.postgres.user == "nouser"; }},
      {"NO_DB_PASSWORD", "pw", [](const Config& c) { return c.storage.postgres.password == "pw"; }},
      {"NO_REDIS_HOST", "rd", [](const Config& c) { return c.cache.redis.host == "rd"; }},
      {"NO_REDIS_PORT", "6390", [](const Config& c) { return c.cache.redis.port == 6390; }},
      {"NO_REDIS_PASSWORD", "rpw", [](const Config& c) { return c.cache.redis.password == "rpw"; }},
      {"NO_OAUTH_CLIENT_ID", "cid", [](const Config& c) { return c.security.oidc.client_id == "cid"; }},
      {"NO_OAUTH_CLIENT_SECRET", "cs", [](const Config& c) { return c.security.oidc.client_secret == "cs"; }},
      {"NO_OAUTH_REDIRECT_URI", "https://x/cb",
       [](const Config& c) { return c.security.oidc.redirect_uri == "https://x/cb"; }},
      {"NO_PROMETHEUS_ENABLED", "false", [](const Config& c) { return !c.monitoring.prometheus_enabled; }},
      {"NO_GRAFANA_ENABLED", "true", [](const Config& c) { return c.monitoring.grafana_enabled; }},
      {"NO_RBAC_ENABLED", "off", [](const Config& c) { return !c.security.rbac_enabled; }},
      {"NO_RATE_LIMIT_ENABLED", "0", [](const Config& c) { return !c.security.rate_limit.enabled; }},
      {"BZZZ_DATA_DIR", "/d", [](const Config& c) { return c.node.data_dir == "/d"; }},
      {"BZZZ_LOG_LEVEL", "error", [](const Config& c) { return c.node.log_level == "error"; }},
      {"LOG_LEVEL", "warn", [](const Config& c) { return c.node.log_level == "warn"; }},
      {"BZZZ_LOG_FORMAT", "json", [](const Config& c) { return c.node.log_format == "json"; }},
      {"BZZZ_NODE_NAME", "acacia", [](const Config& c) { return c.node.name == "acacia"; }},
      {"BZZZ_AGENTS_AUTOSCALING_MIN_AGENTS", "0",
       [](const Config& c) { return c.agents.autoscaling.min_agents == 0; }},
  };
  for (const Case& c : cases) {
    LoadResult r = LoadEnv({{c.name, c.value}});
    ASSERT_TRUE(r.ok()) << c.name << Dump(r.errors);
    EXPECT_TRUE(r.warnings.empty()) << c.name << Dump(r.warnings);
    EXPECT_TRUE(c.applied(r.config)) << c.name;
  }
}

TEST_F(ConfigTest, InvalidEnvValueNamesVariableAndKey) {
  LoadResult r = LoadEnv({{"NO_DB_PORT", "five"}});
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].path, "storage.postgres.port");
  EXPECT_EQ(r.errors[0].source, "env:NO_DB_PORT");
  EXPECT_EQ(r.errors[0].ToString(),
            "storage.postgres.port (env:NO_DB_PORT): expected an integer in 1..65535, got \"five\"");
  LoadResult bootstrap = LoadEnv({{"BZZZ_P2P_BOOTSTRAP", "a:1,b"}});
  const ConfigIssue* item = Find(bootstrap.errors, "p2p.bootstrap[1]");
  ASSERT_NE(item, nullptr) << Dump(bootstrap.errors);
  EXPECT_EQ(item->source, "env:BZZZ_P2P_BOOTSTRAP");
}

TEST_F(ConfigTest, UnknownBzzzVariableIsAWarning) {
  LoadResult r = LoadEnv({{"BZZZ_HTTP_PROT", "1"},
                          {"BZZZ_CONFIG", "/etc/bzzz.yaml"},
                          {"BZZZ_URL", "http://x"},
                          {"BZZZ_TOKEN", "t"},
                          {"BZZZ_ADMIN_TOKEN", "t"},
                          {"HOME", "/root"},
                          {"NO_SOMETHING_ELSE", "x"}});
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  ASSERT_EQ(r.warnings.size(), 1u) << Dump(r.warnings);
  EXPECT_EQ(r.warnings[0].source, "env:BZZZ_HTTP_PROT");
  EXPECT_NE(r.warnings[0].message.find("BZZZ_HTTP_PORT"), std::string::npos) << r.warnings[0].message;
  // Lists of objects have no environment variable.
  LoadResult tokens = LoadEnv({{"BZZZ_SECURITY_API_TOKENS", "[]"}});
  EXPECT_TRUE(tokens.ok());
  EXPECT_EQ(tokens.warnings.size(), 1u);
}

TEST_F(ConfigTest, UnknownFlagPathIsAnError) {
  LoadResult r = LoadFlag("http.prot", "1");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].path, "http.prot");
  EXPECT_EQ(r.errors[0].source, "flag");
  EXPECT_NE(r.errors[0].message.find("did you mean \"http.port\"?"), std::string::npos)
      << r.errors[0].message;
  LoadResult alias = LoadFlag("performance.autoscaling.minAgents", "1");
  ASSERT_EQ(alias.errors.size(), 1u);
  EXPECT_NE(alias.errors[0].message.find("agents.autoscaling.min_agents"), std::string::npos);
}

TEST_F(ConfigTest, EnvironmentSnapshotReadsProcessEnvironment) {
  setenv("BZZZ_CONFIG_TEST_SNAPSHOT", "a=b", 1);
  auto env = EnvironmentSnapshot();
  unsetenv("BZZZ_CONFIG_TEST_SNAPSHOT");
  ASSERT_EQ(env.count("BZZZ_CONFIG_TEST_SNAPSHOT"), 1u);
  EXPECT_EQ(env["BZZZ_CONFIG_TEST_SNAPSHOT"], "a=b");
}

// --- nO performance block ------------------------------------------------------

TEST_F(ConfigTest, PerformanceBlockAliases) {
  LoadResult r = LoadYaml(R"(
performance:
  autoscaling:
    enabled: false
    minAgents: 2
    maxAgents: 10
    targetCpu: 60
    targetMemory: 70
    scaleUpCooldown: 120000
    scaleDownCooldown: 300000
  caching:
    enabled: false
    defaultTtl: 60000
    maxSize: 500
    layers: ["memory", "redis"]
  connectionPool:
    enabled: false
    minConnections: 3
    maxConnections: 30
    acquireTimeout: 10000
    idleTimeout: 60000
)");
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  const Config& c = r.config;
  EXPECT_FALSE(c.agents.autoscaling.enabled);
  EXPECT_EQ(c.agents.autoscaling.min_agents, 2);
  EXPECT_EQ(c.agents.autoscaling.max_agents, 10);
  EXPECT_DOUBLE_EQ(c.agents.autoscaling.target_cpu, 60);
  EXPECT_DOUBLE_EQ(c.agents.autoscaling.target_memory, 70);
  EXPECT_EQ(c.agents.autoscaling.scale_up_cooldown, Millis(120000));
  EXPECT_EQ(c.agents.autoscaling.scale_down_cooldown, Millis(300000));
  EXPECT_FALSE(c.cache.enabled);
  EXPECT_EQ(c.cache.default_ttl, Millis(60000));
  EXPECT_EQ(c.cache.max_size, 500u);
  EXPECT_EQ(c.cache.layers, (std::vector<std::string>{"memory", "redis"}));
  EXPECT_FALSE(c.storage.pool.enabled);
  EXPECT_EQ(c.storage.pool.min_connections, 3);
  EXPECT_EQ(c.storage.pool.max_connections, 30);
  EXPECT_EQ(c.storage.pool.acquire_timeout, Millis(10000));
  EXPECT_EQ(c.storage.pool.idle_timeout, Millis(60000));

  // Rendering uses canonical names only.
  std::string yaml = RenderConfig(c, RenderFormat::kYaml);
  EXPECT_EQ(yaml.find("performance"), std::string::npos);
  EXPECT_EQ(yaml.find("minAgents"), std::string::npos);
}

TEST_F(ConfigTest, PerformanceBlockErrors) {
  LoadResult twice = LoadYaml(
      "agents:\n  autoscaling:\n    min_agents: 1\nperformance:\n  autoscaling:\n"
      "    minAgents: 2\n");
  const ConfigIssue* issue = Find(twice.errors, "performance.autoscaling.minAgents");
  ASSERT_NE(issue, nullptr) << Dump(twice.errors);
  EXPECT_NE(issue->message.find("set twice: also set as agents.autoscaling.min_agents"), std::string::npos)
      << issue->message;

  LoadResult same_map = LoadYaml("http:\n  port: 1\n  port: 2\n");
  ASSERT_NE(Find(same_map.errors, "http.port"), nullptr) << Dump(same_map.errors);

  LoadResult unknown = LoadYaml("performance:\n  caching:\n    strategy: lru\n");
  ASSERT_NE(Find(unknown.errors, "performance.caching.strategy"), nullptr) << Dump(unknown.errors);
  LoadResult bad = LoadYaml("performance:\n  autoscaling:\n    targetCpu: 150\n");
  ASSERT_NE(Find(bad.errors, "performance.autoscaling.targetCpu"), nullptr) << Dump(bad.errors);
}

// --- Validation across fields and of items ----------------------------------------

TEST_F(ConfigTest, CrossFieldValidation) {
  LoadResult agents = LoadYaml("agents:\n  autoscaling:\n    min_agents: 5\n    max_agents: 2\n");
  const ConfigIssue* max = Find(agents.errors, "agents.autoscaling.max_agents");
  ASSERT_NE(max, nullptr) << Dump(agents.errors);
  EXPECT_EQ(max->source.rfind("file:", 0), 0u);
  // The error names the source of the offending value, here the environment.
  LoadResult env = LoadEnv({{"BZZZ_AGENTS_AUTOSCALING_MAX_AGENTS", "0"}});
  max = Find(env.errors, "agents.autoscaling.max_agents");
  ASSERT_NE(max, nullptr) << Dump(env.errors);
  EXPECT_EQ(max->source, "env:BZZZ_AGENTS_AUTOSCALING_MAX_AGENTS");

  EXPECT_NE(
      Find(LoadFlag("operations.memory_degraded_ratio", "0.99").errors, "operations.memory_degraded_ratio"),
      nullptr);
  EXPECT_NE(Find(LoadFlag("storage.pool.min_connections", "20").errors, "storage.pool.max_connections"),
            nullptr);
  EXPECT_NE(Find(LoadFlag("election.election_timeout", "150ms").errors, "election.election_timeout"),
            nullptr);
  EXPECT_NE(Find(LoadFlag("operations.drain_timeout", "1m").errors, "operations.drain_timeout"), nullptr);
  EXPECT_NE(Find(LoadFlag("p2p.peer_expiry", "1s").errors, "p2p.peer_expiry"), nullptr);
  EXPECT_NE(Find(LoadFlag("security.oidc.enabled", "true").errors, "security.oidc.issuer"), nullptr);
  EXPECT_NE(Find(LoadFlag("security.rate_limit.trust_forwarded_headers", "true").errors,
                 "security.rate_limit.trusted_proxies"),
            nullptr);
  EXPECT_NE(Find(LoadFlag("security.rate_limit.trusted_proxies", "10.0.0.1,proxy.local").errors,
                 "security.rate_limit.trusted_proxies[1]"),
            nullptr);
  EXPECT_NE(Find(LoadFlag("security.oidc.role_mapping", "admins").errors, "security.oidc.role_mapping[0]"), nullptr);
  EXPECT_NE(Find(LoadFlag("node.log_levels", "p2p=debug,warp=info").errors, "node.log_levels[1]"), nullptr);
  EXPECT_NE(Find(LoadFlag("security.shhh.patterns", "broken=(").errors, "security.shhh.patterns[0]"), nullptr);
  EXPECT_NE(Find(LoadFlag("security.shhh.patterns", "empty=x*").errors, "security.shhh.patterns[0]"), nullptr);
  EXPECT_NE(Find(LoadFlag("security.shhh.patterns", "noname").errors, "security.shhh.patterns[0]"), nullptr);
  EXPECT_NE(Find(LoadFlag("security.shhh.patterns", "[unclosed").errors, "security.shhh.patterns"), nullptr);
  EXPECT_NE(
      Find(Load(std::nullopt, {}, {{"storage.backend", "postgres"}, {"storage.postgres.host", ""}}).errors,
           "storage.postgres.host"),
      nullptr);
}

// A list item may hold commas when the list is given as a flow sequence.
TEST_F(ConfigTest, ListsInTextTakeAFlowSequenceForItemsWithCommas) {
  LoadResult r = LoadFlag("security.shhh.patterns", R"(["corp=CORP-[0-9]{8,16}", "t=TCK_[a-z]+"])");
  ASSERT_TRUE(r.errors.empty()) << r.errors.front().ToString();
  EXPECT_EQ(r.config.security.shhh.patterns,
            (std::vector<std::string>{"corp=CORP-[0-9]{8,16}", "t=TCK_[a-z]+"}));
  LoadResult env = LoadEnv({{"BZZZ_SECURITY_SHHH_PATTERNS", "a=A-[0-9]+, b=B-[0-9]+"}});
  ASSERT_TRUE(env.errors.empty());
  EXPECT_EQ(env.config.security.shhh.patterns, (std::vector<std::string>{"a=A-[0-9]+", "b=B-[0-9]+"}));
}

TEST_F(ConfigTest, NetworkIdZeroMeansDerivedAndJoinTokenIsSecret) {
  for (const LoadResult& r : {LoadYaml("p2p:\n  network_id: 0\n"), LoadEnv({{"BZZZ_P2P_NETWORK_ID", "0"}})}) {
    ASSERT_TRUE(r.ok()) << Dump(r.errors);
    EXPECT_EQ(r.config.p2p.network_id, 0u);
  }
  const LoadResult t = LoadEnv({{"BZZZ_JOIN_TOKEN", "bzzz-join-1.abc"}});
  ASSERT_TRUE(t.ok()) << Dump(t.errors);
  EXPECT_EQ(t.config.p2p.join_token, "bzzz-join-1.abc");
  const std::string shown = RenderConfig(t.config, RenderFormat::kYaml, true);
  EXPECT_EQ(shown.find("bzzz-join-1.abc"), std::string::npos) << shown;
}

TEST_F(ConfigTest, HostPortValidation) {
  for (const char* good : {"127.0.0.1:9000", "[::1]:9000", "walnut:1", "node-1.example.com:65535", "127.0.0.1:0"}) {
    EXPECT_TRUE(LoadFlag("p2p.listen", good).ok()) << good;
  }
  // Port 0 (any free port) is for binding only, never for a peer to reach.
  EXPECT_NE(Find(LoadYaml("p2p:\n  bootstrap: [\"127.0.0.1:0\"]\n").errors, "p2p.bootstrap[0]"), nullptr);
  for (const char* bad :
       {"127.0.0.1", "host:65536", ":9000", "::1:9000", "[::1]9000", "h:p", "a b:1", ""}) {
    LoadResult r = LoadFlag("p2p.listen", bad);
    const ConfigIssue* issue = Find(r.errors, "p2p.listen");
    ASSERT_NE(issue, nullptr) << bad;
    EXPECT_NE(issue->message.find("HOST:PORT"), std::string::npos);
  }
  EXPECT_NE(Find(LoadYaml("p2p:\n  bootstrap: [\"a:1\", \"b\"]\n").errors, "p2p.bootstrap[1]"), nullptr);
  EXPECT_NE(Find(LoadFlag("http.health_listen", "8081").errors, "http.health_listen"), nullptr);
  EXPECT_TRUE(LoadFlag("http.health_listen", "").ok());
}

TEST_F(ConfigTest, ApiTokenValidation) {
  auto tokens = [this](const std::string& items) { return LoadYaml("security:\n  api_tokens:\n" + items); };
  LoadResult dup_hash = tokens("    - {name: a, token_sha256: " + kHashA + ", roles: [operator]}\n" +
                               "    - {name: b, token_sha256: " + kHashA + ", roles: [operator]}\n");
  const ConfigIssue* hash = Find(dup_hash.errors, "security.api_tokens[1].token_sha256");
  ASSERT_NE(hash, nullptr) << Dump(dup_hash.errors);
  EXPECT_NE(hash->message.find("duplicate"), std::string::npos);

  LoadResult dup_name = tokens("    - {name: a, token_sha256: " + kHashA + ", roles: [operator]}\n" +
                               "    - {name: a, token_sha256: " + kHashB + ", roles: [operator]}\n");
  ASSERT_NE(Find(dup_name.errors, "security.api_tokens[1].name"), nullptr) << Dump(dup_name.errors);

  LoadResult upper = tokens("    - {name: a, token_sha256: " + std::string(64, 'A') + ", roles: [x]}\n");
  ASSERT_NE(Find(upper.errors, "security.api_tokens[0].token_sha256"), nullptr);
  LoadResult short_hash = tokens("    - {name: a, token_sha256: abc, roles: [x]}\n");
  ASSERT_NE(Find(short_hash.errors, "security.api_tokens[0].token_sha256"), nullptr);

  LoadResult missing = tokens("    - {token_sha256: " + kHashA + "}\n");
  ASSERT_NE(Find(missing.errors, "security.api_tokens[0].name"), nullptr) << Dump(missing.errors);
  ASSERT_NE(Find(missing.errors, "security.api_tokens[0].roles"), nullptr);

  LoadResult empty_roles = tokens("    - {name: a, token_sha256: " + kHashA + ", roles: []}\n");
  ASSERT_NE(Find(empty_roles.errors, "security.api_tokens[0].roles"), nullptr);
  LoadResult bad_role = tokens("    - {name: a, token_sha256: " + kHashA + ", roles: [ok, \"no way\"]}\n");
  ASSERT_NE(Find(bad_role.errors, "security.api_tokens[0].roles[1]"), nullptr) << Dump(bad_role.errors);

  // Salted hashes (token_hash); one of the two forms, not both.
  const std::string salted = "hmac-sha256:00112233445566778899aabbccddeeff:" + kHashA;
  LoadResult ok_salted = tokens("    - {name: a, token_hash: \"" + salted + "\", roles: [operator]}\n");
  ASSERT_TRUE(ok_salted.ok()) << Dump(ok_salted.errors);
  EXPECT_EQ(ok_salted.config.security.api_tokens[0].token_hash, salted);
  LoadResult both = tokens("    - {name: a, token_hash: \"" + salted + "\", token_sha256: " + kHashA +
                           ", roles: [operator]}\n");
  ASSERT_NE(Find(both.errors, "security.api_tokens[0].token_sha256"), nullptr) << Dump(both.errors);
  LoadResult bad_salted = tokens("    - {name: a, token_hash: \"hmac-sha256:00:" + kHashA + "\", roles: [x]}\n");
  ASSERT_NE(Find(bad_salted.errors, "security.api_tokens[0].token_hash"), nullptr) << Dump(bad_salted.errors);
  LoadResult neither = tokens("    - {name: a, roles: [x]}\n");
  ASSERT_NE(Find(neither.errors, "security.api_tokens[0].token_hash"), nullptr) << Dump(neither.errors);
  LoadResult dup_salted = tokens("    - {name: a, token_hash: \"" + salted + "\", roles: [x]}\n" +
                                 "    - {name: b, token_hash: \"" + salted + "\", roles: [x]}\n");
  ASSERT_NE(Find(dup_salted.errors, "security.api_tokens[1].token_hash"), nullptr) << Dump(dup_salted.errors);

  LoadResult not_map = tokens("    - just-a-string\n");
  ASSERT_NE(Find(not_map.errors, "security.api_tokens[0]"), nullptr);
  EXPECT_FALSE(LoadYaml("security:\n  api_tokens: {name: a}\n").ok());
}

TEST_F(ConfigTest, RoleValidation) {
  LoadResult good = LoadYaml(
      "security:\n  roles:\n    - name: ops\n      permissions: [\"tasks:read\", "
      "\"*:read\", \"admin:*\", \"*\", \"dead_letters:replay\"]\n    - name: empty\n");
  ASSERT_TRUE(good.ok()) << Dump(good.errors);
  ASSERT_EQ(good.config.security.roles.size(), 2u);
  EXPECT_TRUE(good.config.security.roles[1].permissions.empty());

  LoadResult bad = LoadYaml(
      "security:\n  roles:\n    - name: ops\n      permissions: [\"tasks\", \"Tasks:read\", "
      "\"a:b:c\", \"a:\"]\n    - name: ops\n    - permissions: []\n      perms: 1\n");
  for (const char* path : {"security.roles[0].permissions[0]", "security.roles[0].permissions[1]",
                           "security.roles[0].permissions[2]", "security.roles[0].permissions[3]",
                           "security.roles[1].name", "security.roles[2].name", "security.roles[2].perms"}) {
    EXPECT_NE(Find(bad.errors, path), nullptr) << path << Dump(bad.errors);
  }
}

TEST_F(ConfigTest, ObjectListsFromFlags) {
  LoadResult r =
      LoadFlag("security.api_tokens", "[{name: ci, token_sha256: " + kHashA + ", roles: [operator]}]");
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  ASSERT_EQ(r.config.security.api_tokens.size(), 1u);
  EXPECT_EQ(r.config.security.api_tokens[0].roles, (std::vector<std::string>{"operator"}));
  LoadResult json = LoadFlag("security.roles", R"([{"name": "x", "permissions": ["a:b"]}])");
  ASSERT_TRUE(json.ok()) << Dump(json.errors);
  EXPECT_EQ(json.config.security.roles.size(), 1u);
  EXPECT_FALSE(LoadFlag("security.roles", "[{name: x").ok());
  EXPECT_NE(Find(LoadFlag("security.roles", "[{name: x, bad: 1}]").errors, "security.roles[0].bad"), nullptr);
}

// --- Rendering ------------------------------------------------------------------

TEST_F(ConfigTest, RenderMasksSecrets) {
  LoadResult r = LoadYaml(kFullYaml);
  ASSERT_TRUE(r.ok()) << Dump(r.errors);
  for (RenderFormat format : {RenderFormat::kYaml, RenderFormat::kJson}) {
    std::string masked = RenderConfig(r.config, format);
    for (const char* secret : {"s3cret", "pg-pass", "redis-pass"}) {
      EXPECT_EQ(masked.find(secret), std::string::npos) << secret << "\n" << masked;
    }
    EXPECT_NE(masked.find("***"), std::string::npos);
    // A bare token hash can be tested offline against guesses: masked too.
    EXPECT_EQ(masked.find(kHashA), std::string::npos);
    std::string clear = RenderConfig(r.config, format, /*mask_secrets=*/false);
    for (const char* secret : {"s3cret", "pg-pass", "redis-pass"}) {
      EXPECT_NE(clear.find(secret), std::string::npos) << secret;
    }
  }
  // Empty secrets stay empty: "***" would suggest that one is set.
  EXPECT_EQ(RenderConfig(Config{}, RenderFormat::kYaml).find("***"), std::string::npos);
}

TEST_F(ConfigTest, RenderRoundTrip) {
  LoadResult full = LoadYaml(kFullYaml);
  ASSERT_TRUE(full.ok()) << Dump(full.errors);
  Config odd;  // strings that YAML would otherwise read as null, bool or number
  odd.node.name = "~";
  odd.node.role = "true";
  odd.node.environment = "0x10";
  odd.storage.postgres.password = "p: \"quoted\" # not a comment";
  odd.node.capabilities = {"null", "a, b"};
  for (const Config& original : {Config{}, full.config, odd}) {
    for (RenderFormat format : {RenderFormat::kYaml, RenderFormat::kJson}) {
      std::string rendered = RenderConfig(original, format, /*mask_secrets=*/false);
      std::string name = format == RenderFormat::kYaml ? "round.yaml" : "round.json";
      LoadResult back = Load(Write(name, rendered));
      ASSERT_TRUE(back.ok()) << rendered << Dump(back.errors);
      EXPECT_EQ(RenderConfig(back.config, format, false), rendered);
      // And across formats.
      EXPECT_EQ(RenderConfig(back.config, RenderFormat::kYaml, false),
                RenderConfig(original, RenderFormat::kYaml, false));
    }
  }
  LoadResult back = Load(Write("full.yaml", RenderConfig(full.config, RenderFormat::kYaml, false)));
  ExpectFullConfig(back.config);
  LoadResult odd_back = Load(Write("odd.yaml", RenderConfig(odd, RenderFormat::kYaml, false)));
  EXPECT_EQ(odd_back.config.node.name, "~");
  EXPECT_EQ(odd_back.config.node.capabilities, odd.node.capabilities);
}

TEST_F(ConfigTest, RenderJsonIsNestedBySection) {
  auto doc = nlohmann::json::parse(RenderConfig(Config{}, RenderFormat::kJson));
  EXPECT_EQ(doc["http"]["port"], 8080);
  EXPECT_EQ(doc["http"]["read_timeout"], "30000ms");
  EXPECT_EQ(doc["http"]["body_limit_bytes"], 1 << 20);
  EXPECT_EQ(doc["agents"]["autoscaling"]["min_agents"], 1);
  EXPECT_TRUE(doc["security"]["api_tokens"].is_array());
  for (const char* section : {"node", "http", "p2p", "dht", "election", "agents", "tasks", "hmmm", "slurp",
                              "ucxi", "security", "storage", "cache", "monitoring", "operations"}) {
    EXPECT_TRUE(doc.contains(section)) << section;
  }
  EXPECT_FALSE(doc.contains("performance"));
}

// --- The key table --------------------------------------------------------------

TEST(DescribeKeysTest, CoversEveryRenderedPath) {
  std::set<std::string> rendered;
  CollectLeafPaths(nlohmann::json::parse(RenderConfig(Config{}, RenderFormat::kJson)), "", rendered);
  std::set<std::string> described;
  std::set<std::string> env_names;
  for (const KeyInfo& key : DescribeKeys()) {
    EXPECT_TRUE(described.insert(key.path).second) << "duplicate " << key.path;
    EXPECT_FALSE(key.type.empty()) << key.path;
    EXPECT_FALSE(key.description.empty()) << key.path;
    for (const std::string& name : key.env)
      EXPECT_TRUE(env_names.insert(name).second) << "duplicate " << name;
    if (key.type.rfind("list<api_token>", 0) != 0 && key.type.rfind("list<role>", 0) != 0) {
      ASSERT_FALSE(key.env.empty()) << key.path;
      std::string canonical = "BZZZ_";
      for (char c : key.path) canonical += c == '.' ? '_' : static_cast<char>(std::toupper(c));
      EXPECT_EQ(key.env.front(), canonical);
    }
  }
  EXPECT_EQ(described, rendered);
}

// docs/configuration.md is written by hand: its key reference has one row
// per key of the table (none missing, none left over, none twice), with the
// key's type, default and environment names, and its environment table
// names real keys only.
TEST(DescribeKeysTest, TheReferenceInTheDocsMatchesTheTable) {
  std::ifstream in(std::string(BZZZ_DOCS_DIR) + "/configuration.md");
  ASSERT_TRUE(in) << BZZZ_DOCS_DIR;
  std::map<std::string, KeyInfo> keys;
  for (KeyInfo& key : DescribeKeys()) keys[key.path] = key;
  enum class Section { kOther, kEnvironment, kReference } section = Section::kOther;
  std::map<std::string, int> rows;
  std::string line;
  auto cell = [](const std::string& row, int index) {
    std::size_t at = 0;
    for (int i = 0; i <= index; ++i) {
      at = row.find('|', at);
      if (at == std::string::npos) return std::string();
      ++at;
    }
    const std::size_t end = row.find('|', at);
    std::string text = row.substr(at, end == std::string::npos ? std::string::npos : end - at);
    while (!text.empty() && text.front() == ' ') text.erase(0, 1);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text;
  };
  auto unquote = [](std::string text) {
    if (text.size() >= 2 && text.front() == '`' && text.back() == '`') return text.substr(1, text.size() - 2);
    return text;
  };
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      section = line == "## Environment variables" ? Section::kEnvironment
                : line == "## Key reference"       ? Section::kReference
                                                   : Section::kOther;
      continue;
    }
    if (line.rfind("| `", 0) != 0) continue;
    const auto columns = std::count(line.begin(), line.end(), '|') - 1;
    if (section == Section::kEnvironment) {
      const std::string key = unquote(cell(line, 1));
      EXPECT_EQ(columns, 2) << "a row of another table in the environment table: " << line;
      EXPECT_TRUE(keys.count(key)) << "environment table names an unknown key: " << line;
    } else if (section == Section::kReference) {
      const std::string key = unquote(cell(line, 0));
      if (!keys.count(key)) {
        ADD_FAILURE() << "reference row of an unknown key: " << line;
        continue;
      }
      ++rows[key];
      const KeyInfo& info = keys[key];
      // The docs say "enum" of a string (or list of them) with fixed values.
      // The docs say "enum" of enum(a|b|c), and list the values apart.
      std::string type = info.type;
      if (type.rfind("enum(", 0) == 0) type = "enum";
      if (type.rfind("list<enum(", 0) == 0) type = "list<enum>";
      EXPECT_EQ(unquote(cell(line, 1)), type) << line;
      const bool list = info.type.rfind("list<", 0) == 0;
      EXPECT_EQ(unquote(cell(line, 2)), info.default_value.empty() ? (list ? "[]" : "\"\"") : info.default_value)
          << line;
      if (!info.env.empty()) {
        std::string env;
        for (const std::string& name : info.env) env += (env.empty() ? "`" : "<br>`") + name + "`";
        EXPECT_EQ(cell(line, 4), env) << line;
      }
    }
  }
  for (const auto& [path, info] : keys) EXPECT_EQ(rows[path], 1) << path << " in the key reference";
}

TEST(DescribeKeysTest, MetadataOfSomeKeys) {
  std::map<std::string, KeyInfo> keys;
  for (KeyInfo& key : DescribeKeys()) keys[key.path] = key;
  EXPECT_EQ(keys["http.port"].type, "int");
  EXPECT_EQ(keys["http.port"].default_value, "8080");
  EXPECT_EQ(keys["http.port"].env, (std::vector<std::string>{"BZZZ_HTTP_PORT", "NO_SERVICE_PORT"}));
  EXPECT_EQ(keys["http.read_timeout"].type, "duration");
  EXPECT_EQ(keys["http.read_timeout"].default_value, "30s");
  EXPECT_EQ(keys["http.body_limit_bytes"].default_value, "1MiB");
  EXPECT_EQ(keys["node.log_level"].env,
            (std::vector<std::string>{"BZZZ_NODE_LOG_LEVEL", "BZZZ_LOG_LEVEL", "LOG_LEVEL"}));
  EXPECT_TRUE(keys["storage.postgres.password"].secret);
  EXPECT_TRUE(keys["cache.redis.password"].secret);
  EXPECT_TRUE(keys["security.oidc.client_secret"].secret);
  EXPECT_FALSE(keys["security.oidc.client_id"].secret);
  EXPECT_TRUE(keys["security.api_tokens"].env.empty());
  EXPECT_EQ(keys["cache.layers"].default_value, "memory");
  EXPECT_NE(keys["agents.autoscaling.min_agents"].description.find("minAgents"), std::string::npos);
}

TEST(DescribeKeysTest, DefaultTextLoadsBackToTheDefault) {
  const std::string defaults = RenderConfig(Config{}, RenderFormat::kYaml, false);
  for (const KeyInfo& key : DescribeKeys()) {
    LoadOptions options;
    options.overrides = {{key.path, key.default_value}};
    LoadResult r = LoadConfig(options);
    ASSERT_TRUE(r.ok()) << key.path << " = " << key.default_value << Dump(r.errors);
    EXPECT_EQ(RenderConfig(r.config, RenderFormat::kYaml, false), defaults) << key.path;
  }
}

}  // namespace
}  // namespace bzzz::config
