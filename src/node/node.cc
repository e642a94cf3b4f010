#include "node/node.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "audit/audit.h"
#include "auth/signin.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "base/threads.h"
#include "cache/cache.h"
#include "cache/service.h"
#include "config/loader.h"
#include "console/console.h"
#include "dht/record_store.h"
#include "dht/services.h"
#include "election/api.h"
#include "executors/llm_client.h"
#include "executors/secrets.h"
#include "hmmm/service.h"
#include "slurp/service.h"
#include "http/client.h"
#include "http/router.h"
#include "http/server.h"
#include "node/build_info.h"
#include "node/logging.h"
#include "ops/component.h"
#include "ops/health.h"
#include "ops/history.h"
#include "ops/operational_api.h"
#include "ops/pprof.h"
#include "ops/process_metrics.h"
#include "ops/request_log.h"
#include "ops/shutdown.h"
#include "p2p/cluster_services.h"
#include "p2p/p2p.h"
#include "p2p/services.h"
#include "security/access_controller.h"
#include "security/oidc.h"
#include "security/redact.h"
#include "security/rate_limit.h"
#include "storage/store.h"
#include "tasks/api.h"
#include "keys/keyring.h"
#include "keys/service.h"
#include "security/rbac.h"
#include "ucxl/role_codec.h"
#include "ucxl/ucxi_api.h"

namespace bzzz::node {

namespace {
constexpr SubsystemLog kLog{"node"};
}  // namespace

namespace fs = std::filesystem;
using nlohmann::json;

std::string Version() { return kBuildVersion; }
std::string GitCommit() { return kBuildCommit; }

ops::CheckOutcome AssessStoreHealth(const storage::StoreHealth& h) {
  json details = {{"backend", h.backend},
                  {"location", h.location},
                  {"reachable", h.reachable},
                  {"integrity_ok", h.integrity_ok},
                  {"schema_version", h.schema_version},
                  {"latest_version", h.latest_version},
                  {"latency_ms", static_cast<double>(h.latency.count()) / 1000.0},
                  {"size_bytes", h.size_bytes}};
  if (h.pool.present) {
    details["pool"] = {{"open", h.pool.open},           {"idle", h.pool.idle},
                       {"in_use", h.pool.in_use},       {"waiting", h.pool.waiting},
                       {"min", h.pool.min},             {"max", h.pool.max},
                       {"opened", h.pool.opened},       {"discarded", h.pool.discarded},
                       {"timeouts", h.pool.timeouts},   {"connect_failures", h.pool.connect_failures}};
  }
  const std::string d = details.dump();
  if (!h.reachable) return ops::CheckOutcome::Unhealthy("store unreachable: " + h.message, d);
  if (!h.integrity_ok) return ops::CheckOutcome::Unhealthy("integrity check failed: " + h.message, d);
  if (h.schema_version < h.latest_version) {
    return ops::CheckOutcome::Degraded(std::to_string(h.latest_version - h.schema_version) + " pending migrations",
                                       d);
  }
  return ops::CheckOutcome::Healthy("ok", d);
}

void BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

namespace {

// What SLURP records of a task (slurp/processor.h).
slurp::TaskFacts TaskFactsOf(const tasks::Task& t) {
  slurp::TaskFacts f;
  f.id = t.id;
  f.state = std::string(tasks::TaskStateName(t.state));
  f.executor = t.executor;
  f.project = t.project;
  f.name = t.name;
  f.submitter = t.submitter;
  f.attempts = static_cast<int>(t.attempts.size());
  for (const auto& a : t.attempts) {
    if (!a.agent_id.empty() && std::find(f.agents.begin(), f.agents.end(), a.agent_id) == f.agents.end()) {
      f.agents.push_back(a.agent_id);
    }
  }
  std::string outcome = t.state == tasks::TaskState::kSucceeded ? t.result : t.error;
  if (outcome.size() > 2048) outcome = outcome.substr(0, 2048) + " [...]";
  f.outcome = std::move(outcome);
  return f;
}

ops::HealthCheckSpec StorageCheck(std::shared_ptr<storage::Store> store, const config::OperationsConfig& ops) {
  ops::HealthCheckSpec spec;
  spec.name = "storage-health";
  spec.interval = ops.health_check_interval;
  spec.timeout = ops.health_check_timeout;
  spec.critical = true;
  spec.description = "the store answers, passes its integrity check and is migrated";
  spec.fn = [store] { return AssessStoreHealth(store->HealthCheck()); };
  return spec;
}

// The OIDC issuer's keys: healthy when the last fetch succeeded, degraded
// when it failed but keys from before are in use, unhealthy before any
// key was loaded (then no OIDC token is accepted). Not critical: API
// tokens keep working.
ops::HealthCheckSpec OidcCheck(std::shared_ptr<security::OidcKeySource> oidc, const config::OperationsConfig& ops) {
  ops::HealthCheckSpec spec;
  spec.name = "oidc-keys";
  spec.interval = ops.health_check_interval;
  spec.timeout = ops.health_check_timeout;
  spec.critical = false;
  spec.description = "the OIDC issuer's signing keys are loaded and their last refresh succeeded";
  spec.fn = [oidc] {
    const auto s = oidc->GetSnapshot();
    const json details = {{"jwks_uri", s.jwks_uri}, {"keys", s.keys},      {"last_success", s.last_success},
                          {"fetches", s.fetches},   {"failures", s.failures}, {"last_error", s.last_error}};
    if (s.keys.empty()) {
      return ops::CheckOutcome::Unhealthy("no signing keys of the OIDC issuer yet: " + s.last_error, details.dump());
    }
    if (!s.last_error.empty()) {
      return ops::CheckOutcome::Degraded("the last refresh of the OIDC keys failed: " + s.last_error, details.dump());
    }
    return ops::CheckOutcome::Healthy(std::to_string(s.keys.size()) + " OIDC signing key(s)", details.dump());
  };
  return spec;
}

std::uint16_t ParsePort(const std::string& hostport, std::string* host) {
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return 0;
  std::string h = hostport.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = h;
  return static_cast<std::uint16_t>(std::stoi(hostport.substr(colon + 1)));
}


// <data_dir>/admin.token: read when it exists (it must be 0600, as this node
// wrote it), else made (32 random bytes, hex) and announced once.
Result<std::string> LocalAdminToken(const std::string& data_dir) {
  const fs::path path = fs::path(data_dir) / "admin.token";
  std::error_code ec;
  if (fs::exists(path, ec)) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 077) != 0) {
      return FailedPrecondition(path.string() + " may be read by group or others (chmod 600, or delete it to get a new one)");
    }
    std::ifstream in(path);
    std::string token;
    std::getline(in, token);
    if (!security::WeakTokenReason(token).empty()) {
      return FailedPrecondition(path.string() + " does not hold a usable token (delete it to get a new one)");
    }
    kLog.info("security: no API tokens configured; the local admin token is in {} (the CLI on this machine "
                 "uses it)", path.string());
    return token;
  }
  const std::string token = RandomHex(32);
  if (Status s = WriteFileAtomic(path.string(), token + "\n", 0600); !s.ok()) return s;
  kLog.warn("security: no API tokens configured: made an admin token for this first run, in {} (0600). Try:\n"
               "  bzzz status\n"
               "  bzzz task submit -e builtin -i '{{\"op\":\"echo\",\"value\":1}}' --wait\n"
               "  bzzz election status\n"
               "(the CLI on this machine reads the file; from elsewhere, give its content as the bearer token). "
               "Configure security.api_tokens and delete the file for anything but a trial.",
               path.string());
  return token;
}
}  // namespace

class Node::Impl {
 public:
  Impl(config::Config c, NodeOptions o) : config(std::move(c)), options(o) {}

  config::Config config;
  NodeOptions options;
  std::string node_id;
  std::unique_ptr<p2p::P2pNode> p2p;
  std::shared_ptr<cache::Cache> cache;  // the read cache: memory, then Redis when layered
  std::unique_ptr<dht::RecordStore> records;
  std::shared_ptr<cluster::Membership> membership;
  std::shared_ptr<p2p::ClusterServices> cluster;
  std::shared_ptr<p2p::P2pServices> p2p_services;
  std::shared_ptr<dht::DhtServices> dht_services;
  std::shared_ptr<election::ElectionNode> election;
  std::shared_ptr<ucxl::UcxiServices> ucxi;
  std::shared_ptr<keys::KeyServices> key_services;
  std::shared_ptr<tasks::TaskServices> tasks;
  std::shared_ptr<hmmm::HmmmService> hmmm;
  std::shared_ptr<slurp::SlurpService> slurp;
  std::shared_ptr<ops::Profiler> profiler;
  std::shared_ptr<audit::AuditLog> audit;
  std::shared_ptr<auth::SignIn> signin;
  int lock_fd = -1;
  std::shared_ptr<prometheus::Registry> metrics = std::make_shared<prometheus::Registry>();
  storage::Storage storage;  // the backend's store and every domain's repository
  std::shared_ptr<ops::HealthRegistry> health;
  std::shared_ptr<ops::History> history;  // the web console's, on serve nodes with console.enabled
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  std::mutex presence_mu;  // one change of the presence at a time (read, change, announce)
  std::shared_ptr<security::OidcKeySource> oidc;  // when security.oidc.enabled
  std::shared_ptr<ops::ShutdownCoordinator> shutdown = std::make_shared<ops::ShutdownCoordinator>();
  std::shared_ptr<ops::RequestLog> requests;
  std::shared_ptr<http::Router> router = std::make_shared<http::Router>();
  std::unique_ptr<http::Server> server;
  std::string probe_host;  // of http.health_listen, for the start line
  std::thread signal_thread;
  std::atomic<bool> signals_done{false};

  ~Impl() {
    signals_done = true;
    if (signal_thread.joinable()) signal_thread.join();
    if (server) server->Stop();
    if (history) history->Stop();
    if (health) health->Stop();
    if (slurp) slurp->Stop();
    if (hmmm) hmmm->Stop();
    hmmm.reset();
    slurp.reset();
    tasks.reset();
    election.reset();
    cluster.reset();
    ucxi.reset();
    p2p_services.reset();
    dht_services.reset();
    if (records) records->Stop();
    if (p2p) p2p->Stop();
    if (storage.store) storage.store->Close();
    if (lock_fd >= 0) close(lock_fd);
  }

  Status LockDataDir() {
    const fs::path path = fs::path(config.node.data_dir) / "LOCK";
    lock_fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) return Unavailable("cannot open " + path.string() + ": " + std::strerror(errno));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      return FailedPrecondition("data directory " + config.node.data_dir +
                                " is in use by another bzzz process (" + path.string() + " is locked)");
    }
    const std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(lock_fd, 0) == 0) {
      [[maybe_unused]] auto n = write(lock_fd, pid.data(), pid.size());
    }
    return Status::Ok();
  }

  // ---- the steps of Node::Start, in order ----

  // The backend storage.backend names, migrated; every domain's repository.
  Status OpenStorage() {
    const auto& cfg = config;
    auto opened = storage::OpenStorage(cfg, node_id);
    if (!opened.ok()) return opened.status();
    storage = std::move(opened).value();
    auto migrated = storage.store->Migrate();
    if (!migrated.ok()) return migrated.status();
    if (!migrated->applied.empty()) {
      kLog.info("storage: migrated {} to schema version {}", storage.store->Backend(),
                   migrated->current_version);
    }
    (void)storage.store->PutMeta("last_start",
                                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                    std::chrono::system_clock::now().time_since_epoch())
                                                    .count()));
    return Status::Ok();
  }

  // The health registry with the node's own checks (storage, memory).
  Status StartHealth(prometheus::Registry* metrics) {
    const auto& cfg = config;
    health = std::make_shared<ops::HealthRegistry>(metrics);
    if (auto s = health->Register(StorageCheck(storage.store, cfg.operations)); !s.ok()) return s;
    if (auto s = health->Register(
            ops::MemoryCheck(cfg.operations.memory_degraded_ratio, cfg.operations.memory_unhealthy_ratio,
                             cfg.operations.health_check_interval, cfg.operations.health_check_timeout));
        !s.ok()) {
      return s;
    }
    return Status::Ok();
  }

  // Who may call the API: configured tokens, BZZZ_ADMIN_TOKEN, or the
  // first run's local admin token; RBAC; the failure throttle.
  Result<std::shared_ptr<security::AccessController>> MakeAccessController(prometheus::Registry* metrics) {
    const auto& cfg = config;
    // Identities: configured API tokens and the bootstrap admin token.
    const char* bootstrap = std::getenv("BZZZ_ADMIN_TOKEN");
    if (bootstrap != nullptr && *bootstrap != '\0') {
      if (auto why = security::WeakTokenReason(bootstrap); !why.empty()) {
        return InvalidArgument("BZZZ_ADMIN_TOKEN is too weak: " + why +
                               " (make one with: openssl rand -hex 24)");
      }
    }
    // A node with no way in at all (no token configured, none in the
    // environment, no OIDC) makes its own admin credential, so that a first
    // run can be used at once: <data_dir>/admin.token, 0600, read by the CLI
    // on the same machine. Never when any other credential is configured.
    std::string local_admin;
    if ((bootstrap == nullptr || *bootstrap == '\0') && cfg.security.api_tokens.empty() &&
        !cfg.security.oidc.enabled && !options.bootstrap_only && options.serve_http) {
      auto token = LocalAdminToken(cfg.node.data_dir);
      if (!token.ok()) return token.status();
      local_admin = std::move(token).value();
      bootstrap = local_admin.c_str();
    }
    std::vector<std::unique_ptr<security::Authenticator>> authenticators;
    authenticators.push_back(std::make_unique<security::StaticTokenAuthenticator>(
        cfg.security.api_tokens, bootstrap ? std::string_view(bootstrap) : std::string_view{}));
    for (const auto& token : cfg.security.api_tokens) {
      if (token.token_hash.empty()) {
        kLog.warn(
            "security: API token {} is configured by its unsalted SHA-256 (token_sha256); replace it with "
            "token_hash (printf %s \"$TOKEN\" | bzzz token hash)",
            token.name);
      }
    }
    if ((bootstrap == nullptr || *bootstrap == '\0') && cfg.security.api_tokens.empty()) {
      kLog.warn(
          "security: no API tokens configured and BZZZ_ADMIN_TOKEN is unset: only public routes "
          "(health, metrics) can be used");
    }
    security::Rbac rbac(cfg.security.roles);
    if (cfg.security.oidc.enabled) {
      // OIDC bearer JWTs: the issuer's keys fetched and kept fresh on a thread of their own.
      security::OidcOptions oidc_options;
      oidc_options.config = cfg.security.oidc;
      oidc_options.fetch = [](const std::string& url) {
        return http::GetBody(url, std::chrono::seconds(5), 1u << 20, "bzzz-oidc");
      };
      oidc = security::OidcKeySource::Start(std::move(oidc_options));
      authenticators.push_back(std::make_unique<security::OidcAuthenticator>(oidc, rbac));
      kLog.info("security: accepting OIDC tokens (JWTs) of {} for audience {} (roles from claim {})",
                cfg.security.oidc.issuer, cfg.security.oidc.audience, cfg.security.oidc.role_claim);
      if (auto s = health->Register(OidcCheck(oidc, cfg.operations)); !s.ok()) return s;
    }
    for (const auto& token : cfg.security.api_tokens) {
      for (const auto& role : token.roles) {
        if (!rbac.HasRole(role)) {
          kLog.warn(
              "security: token '{}' has role '{}', which is neither built in nor in security.roles: it "
              "grants nothing",
              token.name, role);
        }
      }
    }
    security::FailureThrottleOptions throttle;
    throttle.failure_limit = cfg.security.auth_failure_limit;
    throttle.failure_window = cfg.security.auth_failure_window;
    auto access = std::make_shared<security::AccessController>(std::move(authenticators), std::move(rbac),
                                                               cfg.security.rbac_enabled, metrics, throttle);
    return access;
  }

  // The operational API and the node's own status sections.
  ops::OperationalApi MakeOperationalApi(prometheus::Registry* metrics) {
    const auto& cfg = config;
    requests = std::make_shared<ops::RequestLog>(cfg.operations.debug_requests_capacity);
    const auto now = started_at;
    ops::OperationalApi api;
    api.info = {node_id,       cfg.node.name,     Version(), GitCommit(),
                cfg.node.role, cfg.node.data_dir, now,       std::chrono::steady_clock::now()};
    api.health = health;
    api.shutdown = shutdown;
    api.requests = requests;
    if (metrics) {
      api.metrics = this->metrics;
      api.collectables.push_back(std::make_shared<ops::ProcessCollector>());
    }
    api.status_sections.push_back({"http", [this] {
                                     json j = {{"port", server ? server->Port() : 0},
                                               {"in_flight", server ? server->InFlight() : 0},
                                               {"open_connections", server ? server->OpenConnections() : 0},
                                               {"requests_served", server ? server->RequestsServed() : 0}};
                                     return j.dump();
                                   }});
    api.status_sections.push_back({"storage", [this] {
                                     auto state = storage.store->SchemaState();
                                     json j = {{"backend", storage.store->Backend()},
                                               {"schema_version", state.ok() ? state->current_version : -1},
                                               {"latest_version", state.ok() ? state->latest_version : -1}};
                                     return j.dump();
                                   }});
    api.status_sections.push_back(
        {"config", [this] { return config::RenderConfig(config, config::RenderFormat::kJson, true); }});
    return api;
  }

  // Membership (found, join or refuse), then the P2P node.
  Status StartP2p(p2p::NodeIdentity identity, prometheus::Registry* metrics) {
    const auto& cfg = config;
    // The P2P node: presence, pubsub, direct messages; and the record store.
    // Membership first: found, join or refuse (docs/security.md).
    auto prepared = p2p::PrepareMembership(cfg, identity.public_key(), options.bootstrap_only);
    if (!prepared.ok()) return prepared.status();
    membership = std::move(prepared).value();
    p2p::Options p2p_options;
    p2p_options.membership = membership;
    p2p_options.config = cfg.p2p;
    p2p_options.dht = cfg.dht;
    p2p_options.data_dir = cfg.node.data_dir;
    p2p_options.node_name = cfg.node.name;
    p2p_options.presence.agent_id = cfg.node.name;
    p2p_options.presence.role = options.bootstrap_only ? "bootstrap" : cfg.node.role;
    p2p_options.presence.capabilities = cfg.node.capabilities;
    p2p_options.presence.available_for_work = !options.bootstrap_only;
    p2p_options.presence.max_tasks = options.bootstrap_only ? 0 : cfg.agents.initial_agents;
    p2p_options.presence.status = options.bootstrap_only ? "bootstrap" : "ready";
    p2p_options.presence.version = std::string(Version());
    auto p2p_node = p2p::P2pNode::Start(std::move(p2p_options), std::move(identity), metrics);
    if (!p2p_node.ok()) return p2p_node.status();
    p2p = std::move(p2p_node).value();
    if (auto s = p2p::AwaitAdmission(*p2p, *membership, cfg); !s.ok()) return s;
    if (membership->Founder() && !options.bootstrap_only) {
      kLog.info(
          "cluster: this node founded cluster {}; to add a node: bzzz cluster token create [--role "
          "admin-capable], then bzzz serve --bootstrap {}:{} --join TOKEN",
          membership->cluster_id(), cfg.p2p.listen.substr(0, cfg.p2p.listen.rfind(':')), p2p->port());
    }
    return Status::Ok();
  }

  // Every subsystem's component, attached the same way.
  Status StartComponents(std::vector<ops::StatusSection>& status_sections,
                         std::shared_ptr<const executors::SecretSealer> sealer,
                         prometheus::Registry* metrics) {
    const auto& cfg = config;
    // Each subsystem joins as an ops::Component: routes, health checks,
    // status sections and shutdown steps, wired the same way (ops/component.h).
    const ops::ComponentSinks sinks{*router, *health, status_sections, *shutdown};
    // Profiling a running node (/debug/pprof, admin only).
    profiler = std::make_shared<ops::Profiler>((fs::path(cfg.node.data_dir) / "tmp").string());
    if (auto s = ops::Attach(profiler, cfg, sinks); !s.ok()) return s;
    // The read cache before its users (the record store, tasks); losing
    // Redis degrades cache-health and never stops the node.
    cache = cache::Cache::Open(cfg.cache, metrics);
    if (auto s = ops::Attach(std::make_shared<cache::CacheComponent>(cache), cfg, sinks); !s.ok()) return s;
    auto cluster_services = p2p::ClusterServices::Start(*p2p, membership, cfg, metrics);
    if (!cluster_services.ok()) return cluster_services.status();
    cluster = std::move(cluster_services).value();
    if (auto s = ops::Attach(cluster, cfg, sinks); !s.ok()) return s;
    if (!options.bootstrap_only) {
      dht::Options dht_options;
      dht_options.config = cfg.dht;
      dht_options.data_dir = cfg.node.data_dir;
      dht_options.cache = cache;
      auto started_records = dht::RecordStore::Start(std::move(dht_options), *p2p, metrics);
      if (!started_records.ok()) return started_records.status();
      records = std::move(started_records).value();
    }
    auto services = p2p::P2pServices::Start(*p2p, cfg);
    if (!services.ok()) return services.status();
    p2p_services = std::move(services).value();
    if (auto s = ops::Attach(p2p_services, cfg, sinks); !s.ok()) return s;
    dht_services = dht::DhtServices::Create(*p2p, records.get(), cfg);
    if (auto s = ops::Attach(dht_services, cfg, sinks); !s.ok()) return s;
    // UCXI: the versioned context behind UCXL addresses, resolved through
    // the DHT, sealed per role with the cluster's role keys.
    if (!options.bootstrap_only && cfg.ucxi.enabled) {
      ucxl::UcxiEncryption encryption;
      if (cfg.security.keys.enabled) {
        if (auto s = StartKeys(encryption, sinks, metrics); !s.ok()) return s;
      }
      ucxi = ucxl::UcxiServices::Create(storage.contexts, records.get(), cfg, metrics, std::move(encryption));
      if (auto s = ops::Attach(ucxi, cfg, sinks); !s.ok()) return s;
      if (key_services) {
        key_services->SetRewrapProgress([weak = std::weak_ptr<ucxl::UcxiServices>(ucxi)] {
          auto u = weak.lock();
          return u ? u->RewrapProgress() : std::string("null");
        });
      }
    }
    // The admin election (bootstrap-only nodes take no part).
    if (!options.bootstrap_only) {
      // What the credential allows bounds what the configuration asks: only an
      // admin-capable member stands. A node that joined an existing cluster
      // learns its electorate from the admin (whose autopilot adds it) instead
      // of forming one alone; bootstrap_expect > 1 still forms one together.
      config::Config election_cfg = cfg;
      const auto own = membership->own();
      election_cfg.election.admin_capable =
          cfg.election.admin_capable && own && own->role == cluster::NodeRole::kAdminCapable;
      if (!membership->Founder() && cfg.election.bootstrap_expect == 1)
        election_cfg.election.bootstrap_expect = 0;
      auto started_election = election::ElectionNode::Start(*p2p, election_cfg, metrics);
      if (!started_election.ok()) return started_election.status();
      election = std::move(started_election).value();
      if (auto s = ops::Attach(election, cfg, sinks); !s.ok()) return s;
      if (key_services) {
        key_services->SetAdminSource([el = election.get()](std::uint64_t* term) { return el->Admin(term); });
      }
      // Join requests are answered by the admin; before the first election,
      // by the founder alone (so a one-time token is used once).
      cluster->SetAdmissionGate([election = election.get(), founder = membership->Founder(), id = node_id] {
        std::uint64_t term = 0;
        const std::string admin = election->Admin(&term);
        if (admin == id) return std::string();
        if (admin.empty() && term == 0 && founder) return std::string();
        return admin.empty() ? std::string("no admin elected") : "the admin " + admin + " admits";
      });
    }

    // Tasks and the agent pool (bootstrap-only nodes run no agents); the nO
    // master loop runs while this node is admin.
    if (!options.bootstrap_only) {
      std::function<bool(const std::string&, std::uint64_t)> admin_of;
      if (election::ElectionNode* el = election.get()) {
        admin_of = [el](const std::string& id, std::uint64_t term) { return el->AdminOf(id, term); };
      }
      auto started = tasks::TaskServices::Start(storage.tasks, cfg, node_id, metrics, p2p.get(),
                                                election ? &election->admin_services() : nullptr,
                                                std::move(admin_of), sealer, cache);
      if (!started.ok()) return started.status();
      tasks = std::move(started).value();
      if (auto s = ops::Attach(tasks, cfg, sinks); !s.ok()) return s;
      if (election) {
        election->SetExperienceSource([weak = std::weak_ptr<tasks::TaskServices>(tasks)]() -> std::uint64_t {
          auto services = weak.lock();
          return services ? services->SucceededAttempts() : 0;
        });
      }
      // SLURP: events taken on every node, curated into decision records on
      // the admin (an admin-only service, fenced by the term).
      if (cfg.slurp.enabled && storage.slurp) {
        slurp::SlurpService::Options so;
        so.config = cfg;
        so.node_id = node_id;
        so.store = storage.slurp;
        so.context = ucxi ? ucxi->context() : nullptr;
        so.metrics = metrics;
        so.sources.rooms = storage.hmmm;
        std::weak_ptr<tasks::TaskServices> weak_tasks = tasks;
        so.sources.task = [weak_tasks](const std::string& id) -> Result<slurp::TaskFacts> {
          auto t = weak_tasks.lock();
          if (!t) return Unavailable("the task services are stopped");
          auto task = t->Get(id);
          if (!task.ok()) return task.status();
          return TaskFactsOf(*task);
        };
        if (election) {
          so.admin = [el = election.get()](std::uint64_t* term) { return el->Admin(term); };
        } else {
          so.admin = [](std::uint64_t* term) {
            *term = 0;
            return std::string();
          };
        }
        auto started_slurp = slurp::SlurpService::Start(std::move(so));
        if (!started_slurp.ok()) return started_slurp.status();
        slurp = std::move(started_slurp).value();
        if (auto s = ops::Attach(slurp, cfg, sinks); !s.ok()) return s;
        if (!cfg.slurp.task_outcomes.empty()) {
          tasks->SetFinishedListener([weak = std::weak_ptr<slurp::SlurpService>(slurp),
                                      executors = cfg.slurp.task_outcomes](const tasks::Task& t) {
            if (std::find(executors.begin(), executors.end(), t.executor) == executors.end()) return;
            if (auto s = weak.lock()) s->TaskFinished(TaskFactsOf(t));
          });
        }
        if (election) {
          std::weak_ptr<slurp::SlurpService> weak = slurp;
          election->admin_services().Register(
              {"slurp",
               [weak](std::uint64_t term) {
                 auto s = weak.lock();
                 return s ? s->StartTerm(term) : Unavailable("slurp is stopped");
               },
               [weak](std::uint64_t term) {
                 if (auto s = weak.lock()) s->StopTerm(term);
               }});
        }
      }
      // HMMM: the rooms this node owns, their API and their topics.
      if (cfg.hmmm.enabled) {
        hmmm::HmmmService::Options ho;
        ho.config = cfg;
        ho.node_id = node_id;
        ho.store = storage.hmmm;
        ho.metrics = metrics;
        ho.p2p = p2p.get();
        std::weak_ptr<tasks::TaskServices> weak_tasks = tasks;
        const auto no_tasks = [] { return Unavailable("the task services are stopped"); };
        ho.check_task = [weak_tasks, no_tasks](const std::string& id) {
          auto t = weak_tasks.lock();
          return t ? t->CheckOwned(id) : no_tasks();
        };
        ho.escalate_task = [weak_tasks, no_tasks](const std::string& id, const std::string& reason) {
          auto t = weak_tasks.lock();
          return t ? t->Escalate(id, reason) : no_tasks();
        };
        ho.resume_task = [weak_tasks, no_tasks](const std::string& id, const std::string& note,
                                                const std::string& input, bool dry_run) {
          auto t = weak_tasks.lock();
          if (!t) return no_tasks();
          return dry_run ? t->CheckResume(id, input) : t->Resume(id, note, input);
        };
        if (slurp) {
          ho.on_decided = [weak = std::weak_ptr<slurp::SlurpService>(slurp)](const hmmm::RoomRow& room,
                                                                             const hmmm::MessageRow& decision) {
            if (auto s = weak.lock()) s->RoomDecided(room.id, decision.id, room.project, room.task_id);
          };
        }
        // Help: this node's model answers other nodes' stuck tasks, and this
        // node's stuck tasks ask through their rooms.
        ho.capabilities = cfg.node.capabilities;
        if (!cfg.agents.llm.endpoint.empty()) {
          auto client = std::make_shared<executors::LlmClient>(cfg.agents.llm);
          ho.answer_help = [client](const std::string& question, std::chrono::steady_clock::time_point deadline) {
            return executors::AnswerHelpRequest(*client, question, deadline);
          };
        }
        auto started_hmmm = hmmm::HmmmService::Start(std::move(ho));
        if (!started_hmmm.ok()) return started_hmmm.status();
        hmmm = std::move(started_hmmm).value();
        if (auto s = ops::Attach(hmmm, cfg, sinks); !s.ok()) return s;
        tasks->SetHelpDesk([weak = std::weak_ptr<hmmm::HmmmService>(hmmm)](
                               const tasks::Task& task, const std::string& agent,
                               const executors::HelpRequest& request) -> Result<std::vector<executors::HelpAnswer>> {
          auto rooms = weak.lock();
          if (!rooms) return Unavailable("HMMM is stopped");
          hmmm::HelpQuery q;
          q.task_id = task.id;
          q.project = task.project;
          q.title = task.name;
          q.capabilities = task.capabilities;
          q.agent = agent;
          q.reason = request.reason;
          q.question = request.question;
          q.until = request.until;
          q.cancel = request.cancel;
          auto answers = rooms->AskForHelp(std::move(q));
          if (!answers.ok()) return answers.status();
          std::vector<executors::HelpAnswer> out;
          for (const auto& m : *answers) out.push_back({m.agent, m.node, m.body});
          return out;
        });
      }
    }
    return Status::Ok();
  }

  // The role keys (keys/): the ring and this node's secrets in
  // <data_dir>/keys, distributed through the DHT; the codec that seals UCXL
  // content with them and the re-wrap job's settings.
  Status StartKeys(ucxl::UcxiEncryption& encryption, const ops::ComponentSinks& sinks,
                   prometheus::Registry* metrics) {
    const auto& cfg = config;
    const fs::path dir = fs::path(cfg.node.data_dir) / "keys";
    auto keyring = keys::Keyring::Open(dir.string(), p2p->identity(), membership->cluster_key());
    if (!keyring.ok()) return keyring.status();
    auto rules = ucxl::ParseReadRules(cfg.security.keys.readers);
    if (!rules.ok()) return InvalidArgument("security.keys.readers: " + rules.status().message());
    keys::KeyServicesOptions ko;
    // Every role a principal can hold has a key: the authority levels and
    // the RBAC roles (built-in and configured), plus security.keys.roles.
    const security::Rbac rbac(cfg.security.roles);
    for (const auto& [role, permissions] : rbac.Roles()) ko.roles.push_back(role);
    for (const auto& role : cfg.security.keys.roles) ko.roles.push_back(role);
    ko.poll_interval = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.security.keys.poll_interval);
    ko.solo = false;  // the election's admin makes key changes (SetAdminSource)
    auto started = keys::KeyServices::Start(*keyring, *p2p, membership, records.get(), std::move(ko), metrics);
    if (!started.ok()) return started.status();
    key_services = std::move(started).value();
    if (auto s = ops::Attach(key_services, cfg, sinks); !s.ok()) return s;
    encryption.codec = std::make_shared<ucxl::RoleCodec>(
        *keyring, std::move(rules).value(), metrics,
        [weak = std::weak_ptr<keys::KeyServices>(key_services)] {
          auto ks = weak.lock();
          return ks && ks->Refresh(std::chrono::seconds(3));
        });
    encryption.key_generation = [k = *keyring] { return k->Generation(); };
    encryption.rewrap.state_file = (dir / "rewrap.json").string();
    encryption.rewrap.per_second = cfg.security.keys.rewrap_per_second;
    return Status::Ok();
  }

  // Browser sign-in (/auth/*): routed always, so that a browser is told why
  // it is unavailable; its sessions authenticate requests once configured.
  // Changes the presence this node announces (read, change, announce).
  void ChangePresence(const std::function<void(p2p::Presence&)>& change) {
    std::lock_guard lock(presence_mu);
    p2p::Presence presence = p2p->CurrentPresence();
    change(presence);
    p2p->UpdatePresence(std::move(presence));
  }

  // The web console (docs/console.md): the node's own history and the
  // page's routes, added after every other route (GET /api/v1/me lists
  // their permissions). The rollup of health goes into the presence, so
  // that every node's console shows every node's health.
  Status StartConsole(prometheus::Registry* metrics) {
    const auto& cfg = config;
    if (options.bootstrap_only || !cfg.console.enabled) return Status::Ok();
    ops::HistorySources sources;
    sources.health = health;
    sources.metrics = metrics;
    sources.node_id = node_id;
    sources.started_at = started_at;
    if (election) {
      sources.admin = [weak = std::weak_ptr<election::ElectionNode>(election)](std::uint64_t* term) {
        const auto e = weak.lock();
        return e ? e->Admin(term) : std::string();
      };
    }
    // Announced only when they change (UpdatePresence ignores an equal value).
    sources.on_sample = [this](const ops::HistorySample& s) {
      ChangePresence([&s](p2p::Presence& p) {
        p.health = s.health;
        if (s.peers) p.peers = static_cast<int>(*s.peers);
      });
    };
    history = ops::History::Start(std::move(sources), {.interval = cfg.console.history_interval,
                                                       .samples = cfg.console.history_samples});
    return console::RegisterConsoleRoutes(*router, {.assets_dir = cfg.console.assets_dir,
                                                    .history = history,
                                                    .node_id = node_id,
                                                    .node_name = cfg.node.name,
                                                    .version = Version(),
                                                    .started_at = started_at});
  }

  Status StartSignIn(const security::AccessController& access, prometheus::Registry* metrics) {
    auth::SignInOptions o;
    o.oidc = config.security.oidc;
    o.session_ttl = std::chrono::duration_cast<std::chrono::seconds>(config.security.oidc.session_ttl);
    o.post_form = [](const std::string& url, const std::string& form,
                     const std::vector<std::string>& headers) -> Result<std::pair<int, std::string>> {
      http::ClientOptions c;
      c.url = url;
      c.timeout = std::chrono::seconds(10);
      c.headers = headers;
      c.user_agent = "bzzz-oidc";
      c.max_response_bytes = 1u << 20;
      auto r = http::Call(c, "POST", "", form, "application/x-www-form-urlencoded");
      if (!r.ok()) return r.status();
      return std::pair{r->status, std::move(r->body)};
    };
    signin = std::make_shared<auth::SignIn>(std::move(o), oidc, access.rbac(), metrics);
    if (signin->Configured()) {
      kLog.info("auth: browser sign-in through {} (client {}, callback {})", config.security.oidc.issuer,
                config.security.oidc.client_id, config.security.oidc.redirect_uri);
    }
    std::vector<ops::StatusSection> no_sections;
    return ops::Attach(signin, config, {*router, *health, no_sections, *shutdown});
  }

  // The audit log, attached after every other route exists (it audits the
  // administrative ones), with what components tell it.
  Status StartAudit(p2p::NodeIdentity identity, prometheus::Registry* metrics) {
    const auto& cfg = config;
    if (!cfg.security.audit.enabled) return Status::Ok();
    audit::AuditOptions options;
    options.refusals_per_second = cfg.security.audit.refusals_per_second;
    options.refusal_burst = cfg.security.audit.refusal_burst;
    auto started = audit::AuditLog::Start(storage.audit, std::move(identity), options, metrics);
    if (!started.ok()) return started.status();
    audit = std::move(started).value();
    std::vector<ops::StatusSection> no_sections;
    if (auto s = ops::Attach(audit, cfg, {*router, *health, no_sections, *shutdown}); !s.ok()) return s;
    if (cluster) {
      cluster->OnJoinOutcome([weak = std::weak_ptr<audit::AuditLog>(audit)](const p2p::ClusterServices::JoinOutcome& j) {
        auto log = weak.lock();
        if (!log) return;
        audit::AuditEvent e;
        e.principal = j.node_id;
        e.action = "cluster.join";
        e.target = j.node_id;
        if (j.admitted) {
          e.kind = "admin_action";
          e.outcome = "admitted";
          e.details = DumpJson(nlohmann::json{{"name", j.name}, {"role", j.role}, {"token", j.token_id}});
        } else {
          e.kind = "auth_failure";
          e.outcome = "refused";
          e.details = DumpJson(nlohmann::json{{"name", j.name}, {"reason", j.reason}});
        }
        log->Record(std::move(e));
      });
    }
    if (signin) {
      signin->OnEvent([weak = std::weak_ptr<audit::AuditLog>(audit)](const auth::SignIn::Event& s) {
        auto log = weak.lock();
        if (!log) return;
        audit::AuditEvent e;
        e.kind = s.signed_in ? "login" : "auth_failure";
        e.principal = s.principal.empty() ? "anonymous" : s.principal;
        e.action = "auth.sign_in";
        e.target = "/auth/callback";
        e.outcome = s.signed_in ? "ok" : "refused";
        e.client = s.client;
        if (!s.reason.empty()) e.details = DumpJson(nlohmann::json{{"reason", s.reason}});
        log->Record(std::move(e));
      });
    }
    audit->Record(audit::SystemEvent("node.start", DumpJson(nlohmann::json{{"version", Version()}})));
    return Status::Ok();
  }

  // The HTTP server (not started yet).
  void MakeServer(std::shared_ptr<security::AccessController> access, prometheus::Registry* metrics) {
    const auto& cfg = config;
    http::ServerOptions server_options;
    server_options.host = cfg.http.host;
    server_options.port = static_cast<std::uint16_t>(cfg.http.port);
    server_options.threads = cfg.http.threads;
    server_options.body_limit_bytes = cfg.http.body_limit_bytes;
    server_options.read_timeout = cfg.http.read_timeout;
    server_options.keepalive_timeout = cfg.http.keepalive_timeout;
    server_options.header_timeout = cfg.http.header_timeout;
    server_options.max_connections = cfg.http.max_connections;
    server_options.max_connections_per_client = cfg.http.max_connections_per_client;
    server_options.access_log = cfg.http.access_log;
    if (cfg.security.rate_limit.trust_forwarded_headers) {
      server_options.trusted_proxies = cfg.security.rate_limit.trusted_proxies;
    }
    if (cfg.security.rate_limit.enabled) {
      security::RateLimitOptions limits;
      limits.read_rate = cfg.security.rate_limit.requests_per_second;
      limits.read_burst = cfg.security.rate_limit.burst;
      limits.write_rate = cfg.security.rate_limit.write_requests_per_second;
      limits.write_burst = cfg.security.rate_limit.write_burst;
      server_options.rate_limiter = std::make_shared<security::RateLimiter>(std::move(limits));
    }
    if (!cfg.http.health_listen.empty()) {
      server_options.probe_port = ParsePort(cfg.http.health_listen, &server_options.probe_host);
      probe_host = server_options.probe_host;
    }
    if (signin && signin->Configured()) server_options.sessions = signin;
    if (options.serve_http) {
      server = std::make_unique<http::Server>(server_options, router, access, metrics);
      server->Observe([requests = requests](const http::RequestRecord& r) { requests->Record(r); });
      if (audit) server->Observe([log = audit](const http::RequestRecord& r) { log->ObserveRequest(r); });
    }
  }

  void AddShutdownSteps() {
    const auto& cfg = config;
    // Shutdown steps, in SPEC §3.2 order.
    if (http::Server* srv = server.get()) {
      (void)shutdown->AddHandler("http.stop-accepting", ops::kPriorityStopAccepting, std::chrono::seconds(2),
                                 [srv] {
                                   srv->StopAccepting();
                                   return Status::Ok();
                                 });
      (void)shutdown->AddHandler(
          "http.drain", ops::kPriorityDrainRequests, cfg.operations.drain_timeout + std::chrono::seconds(1),
          [srv, timeout = cfg.operations.drain_timeout] {
            return srv->WaitDrained(timeout)
                       ? Status::Ok()
                       : Timeout(std::to_string(srv->InFlight()) + " requests still in flight");
          });
    }
    // The components added theirs when attached: agents.drain (tasks),
    // election.leave (an admin hands over while the P2P layer still runs),
    // tasks.flush.
    (void)shutdown->AddHandler("health.stop", ops::kPriorityStopServices, std::chrono::seconds(3),
                               [health = health, history = history] {
                                 if (history) history->Stop();  // it reads the election, stopped next
                                 health->Stop();
                                 return Status::Ok();
                               });
    // Leaving the DHT saves the peer store; values this node stored for others
    // stay with the other storage nodes (OpenDHT keeps several copies).
    (void)shutdown->AddHandler("p2p.leave", ops::kPriorityStopServices + 1, std::chrono::seconds(5), [this] {
      cluster.reset();
      election.reset();
      ucxi.reset();
      p2p_services.reset();
      dht_services.reset();
      if (records) records->Stop();
      p2p->Stop();
      return Status::Ok();
    });
    (void)shutdown->AddHandler("storage.flush", ops::kPriorityFlushStores, std::chrono::seconds(10),
                               [store = storage.store] {
                                 Status s = store->Flush();
                                 store->Close();
                                 return s;
                               });
    (void)shutdown->AddHandler("logs.flush", ops::kPriorityFlushLogs, std::chrono::seconds(2), [] {
      ShutdownLogging();
      return Status::Ok();
    });
  }

  // SIGINT and SIGTERM are blocked in every thread and taken here with
  // sigtimedwait, so no handler runs in a random thread. The first signal
  // starts the graceful shutdown; the third forces an exit.
  void WatchSignals() {
    signal_thread = NamedThread("signals", [this] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      int received = 0;
      const timespec tick{0, 100 * 1000 * 1000};
      while (!signals_done.load()) {
        const int sig = sigtimedwait(&set, nullptr, &tick);
        if (sig <= 0) continue;
        ++received;
        const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
        if (received == 1) {
          (void)shutdown->Request(std::string("signal ") + name);
        } else if (received == 2) {
          kLog.warn("shutdown already in progress; send the signal once more to exit at once");
        } else {
          kLog.error("forced exit on repeated {}", name);
          ShutdownLogging();
          _exit(1);
        }
      }
    });
  }
};

Node::Node(config::Config config, NodeOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), options)) {}
Node::~Node() = default;

Result<std::unique_ptr<Node>> Node::Create(config::Config config, NodeOptions options) {
  // Everything the node writes is its own: files 0600, directories 0700.
  umask(0077);
  std::error_code ec;
  fs::create_directories(config.node.data_dir, ec);
  if (ec) return Unavailable("cannot create data directory " + config.node.data_dir + ": " + ec.message());
  // Keys, tokens' uses, tasks with their inputs and the database live here:
  // nobody else may enter (sandboxed tasks work in agents.sandbox.work_root,
  // outside it).
  struct stat st {};
  if (stat(config.node.data_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    if (chmod(config.node.data_dir.c_str(), 0700) != 0) {
      return Unavailable("cannot make data directory " + config.node.data_dir + " private (chmod 700): " +
                         std::strerror(errno));
    }
    kLog.info("node: data directory {} made private (mode 0700)", config.node.data_dir);
  }
  if (config.node.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    config.node.name = host[0] ? host : "bzzz";
  }
  return std::unique_ptr<Node>(new Node(std::move(config), options));
}

Status Node::Start() {
  Impl& n = *impl_;
  const auto& cfg = n.config;

  BlockShutdownSignals();
  SetJsonLimits({cfg.node.json_max_depth, cfg.node.json_max_elements});

  if (auto s = n.LockDataDir(); !s.ok()) return s;
  auto identity = p2p::NodeIdentity::LoadOrCreate((fs::path(cfg.node.data_dir) / "p2p").string());
  if (!identity.ok()) return identity.status();
  n.node_id = identity->node_id();
  // Secrets of task inputs are sealed in the store with a key only this
  // node's identity gives (executors/secrets.h).
  auto sealer = std::make_shared<const executors::SecretSealer>(identity->DeriveKey("bzzzsecr"));

  if (auto s = n.OpenStorage(); !s.ok()) return s;
  prometheus::Registry* metrics = cfg.monitoring.prometheus_enabled ? n.metrics.get() : nullptr;
  // SHHH: the built-in kinds of secret plus the configured patterns, from
  // here on in every log line, task output, stored context and audit entry.
  auto patterns = security::ParseRedactionPatterns(cfg.security.shhh.patterns);
  if (!patterns.ok()) return InvalidArgument("security.shhh.patterns: " + patterns.status().message());
  auto redactor = security::Redactor::Create(*patterns, metrics);
  if (!redactor.ok()) return redactor.status();
  security::InstallRedactor(*redactor);
  if (auto s = n.StartHealth(metrics); !s.ok()) return s;
  auto access = n.MakeAccessController(metrics);
  if (!access.ok()) return access.status();
  ops::OperationalApi api = n.MakeOperationalApi(metrics);
  const p2p::NodeIdentity audit_identity = *identity;
  if (auto s = n.StartP2p(std::move(identity).value(), metrics); !s.ok()) return s;
  if (auto s = n.StartComponents(api.status_sections, sealer, metrics); !s.ok()) return s;
  if (auto s = ops::RegisterOperationalRoutes(*n.router, std::move(api)); !s.ok()) return s;
  if (auto s = n.StartSignIn(**access, metrics); !s.ok()) return s;
  if (auto s = n.StartAudit(audit_identity, metrics); !s.ok()) return s;
  if (auto s = n.StartConsole(metrics); !s.ok()) return s;
  n.MakeServer(*access, metrics);
  n.AddShutdownSteps();

  n.health->Start();
  if (n.server) {
    if (auto s = n.server->Start(); !s.ok()) return s;
    const std::string host = cfg.http.host == "0.0.0.0" || cfg.http.host.empty() ? "127.0.0.1" : cfg.http.host;
    const std::string endpoint = "http://" + host + ":" + std::to_string(n.server->Port());
    n.ChangePresence([&](p2p::Presence& p) { p.http_endpoint = endpoint; });
  }
  n.WatchSignals();
  if (n.server) {
    kLog.info("bzzz {} node {} ({}) serving on http://{}:{}, p2p on udp {}:{}, data_dir={}", Version(), n.node_id,
                 cfg.node.name, cfg.http.host, n.server->Port(), cfg.p2p.listen.substr(0, cfg.p2p.listen.rfind(':')),
                 n.p2p->port(), cfg.node.data_dir);
    if (n.server->ProbePort() != 0) {
      kLog.info("health probes also on {}:{}", n.probe_host, n.server->ProbePort());
    }
  } else {
    kLog.info("bzzz {} DHT bootstrap node {} ({}) on udp {}:{}, data_dir={}", Version(), n.node_id, cfg.node.name,
                 cfg.p2p.listen.substr(0, cfg.p2p.listen.rfind(':')), n.p2p->port(), cfg.node.data_dir);
  }
  return Status::Ok();
}

int Node::Run() {
  Impl& n = *impl_;
  // Wait for a shutdown request, then bound the sequence itself.
  while (!n.shutdown->GetStatus().requested) n.shutdown->WaitFor(std::chrono::milliseconds(200));
  const bool finished = n.shutdown->WaitFor(n.config.operations.shutdown_timeout);
  if (n.server) n.server->Stop();
  int not_done = 0;
  for (const auto& h : n.shutdown->Handlers()) not_done += h.state != ops::HandlerState::kDone;
  // A step that overran may still be using what the node would now destroy:
  // exit here, deliberately, instead of tearing it down under that step.
  if (!finished || n.shutdown->StepsStillRunning() > 0) {
    std::string running;
    for (const auto& h : n.shutdown->Handlers()) {
      if (h.state == ops::HandlerState::kRunning || h.state == ops::HandlerState::kTimedOut) {
        running += (running.empty() ? "" : ", ") + h.name;
      }
    }
    kLog.error("shutdown {} ({} ms); step(s) still running: {}; exiting without tearing them down",
                  finished ? "finished with steps past their timeout" : "overran operations.shutdown_timeout",
                  n.config.operations.shutdown_timeout.count(), running.empty() ? "none" : running);
    ShutdownLogging();
    std::_Exit(1);
  }
  if (not_done) {
    kLog.warn("shutdown finished with {} step(s) not done (see the log above)", not_done);
  } else {
    kLog.info("bzzz node {} stopped", n.node_id);
  }
  ShutdownLogging();
  return 0;
}

Status Node::RequestShutdown(std::string reason) { return impl_->shutdown->Request(std::move(reason)); }
std::uint16_t Node::HttpPort() const { return impl_->server ? impl_->server->Port() : 0; }
const std::string& Node::NodeId() const { return impl_->node_id; }

}  // namespace bzzz::node
