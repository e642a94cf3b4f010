// The effective configuration of a bzzz node: plain data, one struct per
// section of the configuration file (SPEC §3.1).
//
// Values come from, in increasing precedence: built-in defaults, the YAML or
// JSON file, environment variables (BZZZ_* and the nO NO_* names), and
// command-line flags. See config/loader.h and docs/configuration.md.
// A Config is a value: copy it freely; it is not synchronized.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bzzz::config {

using Millis = std::chrono::milliseconds;

struct NodeConfig {
  std::string name;                 // human name; defaults to the host name
  std::string data_dir = "./data";  // everything the node writes lives here
  std::string role = "agent";       // the agent role this node plays
  std::string environment = "production";
  std::vector<std::string> capabilities;
  std::string log_level = "info";   // trace, debug, info, warn, error, critical, off
  std::string log_format = "text";  // text | json
  std::vector<std::string> log_levels;  // "p2p=debug": a subsystem's own level (base/log.h)
  int json_max_depth = 64;          // deepest JSON the node parses from outside
  std::size_t json_max_elements = 100000;  // most values in one JSON text from outside
};

struct HttpConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 0;                          // 0: half the hardware threads, at least two
  std::size_t body_limit_bytes = 1 << 20;   // larger bodies get 413
  Millis read_timeout{30000};               // time to receive one request
  Millis keepalive_timeout{60000};          // idle time between requests
  Millis header_timeout{10000};             // first byte of a request to the end of its headers
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_client = 1024;
  bool access_log = true;
  std::string health_listen;                // optional "HOST:PORT" for probes only
};

// How long the DHT keeps pubsub frames of each topic class (OpenDHT value
// expiration); late joiners of a topic see what is still retained.
struct RetentionConfig {
  Millis coordination{600000};      // bzzz/coordination/v1
  Millis meta_discussion{3600000};  // hmmm/meta-discussion/v1
  Millis issue{3600000};            // bzzz/meta/issue/<id>
  Millis election{30000};           // bzzz/election/v1
  Millis slurp{600000};             // bzzz/slurp/v1
  Millis internal{30000};           // probes and other bzzz/internal/ topics
  Millis direct{300000};            // inbox (direct) messages
};

struct PubsubConfig {
  std::size_t queue_capacity = 16384;     // per direction: outgoing and delivery queues
  std::size_t batch_max_messages = 64;    // messages packed into one signed frame
  std::size_t batch_max_bytes = 48u << 10;
  std::size_t dedup_window = 8192;        // recent frames remembered per sender
  std::size_t max_inflight_frames = 32;   // frames awaiting storage acknowledgement (flow control)
  std::size_t batch_linger_us = 50;       // frames go at most this often under load (0: at once)
  std::size_t mesh_degree = 6;            // links a frame is pushed to per topic (the mesh, p2p/mesh.h)
  std::size_t link_buffer_bytes = 4u << 20;  // outgoing bytes held per member link
  bool dht_copy = false;                  // put every frame into the DHT too (retention), not only as the fallback
};

struct P2pConfig {
  std::string listen = "127.0.0.1:9000";
  std::vector<std::string> bootstrap;       // "HOST:PORT" peers
  std::uint32_t network_id = 0;             // 0: derived from the cluster key (never the public DHT)
  std::string join_token;                   // "bzzz-join-1.…": admission to an existing cluster
  Millis join_timeout{60000};               // how long a joining node waits to be admitted
  Millis credential_ttl{30LL * 24 * 3600 * 1000};  // validity of issued credentials; renewed at 2/3
  bool multicast_discovery = false;
  Millis presence_interval{5000};
  Millis peer_expiry{30000};
  int max_peer_requests_per_sec = 0;        // OpenDHT per-IP limit; 0 default, -1 unlimited
  int max_requests_per_sec = 0;             // OpenDHT global limit; 0 default, -1 unlimited
  std::size_t max_store_bytes = 256u << 20; // values this node stores for the DHT (all topics, records)
  PubsubConfig pubsub;
  RetentionConfig retention;
};

struct DhtConfig {
  int replication_factor = 3;
  Millis provider_refresh{60000};
  Millis provider_ttl{180000};              // a provider not refreshed for this long is gone
  Millis record_ttl{1800000};               // DHT expiration of records; holders re-put them
  Millis operation_timeout{5000};
  Millis cache_ttl{300000};
  std::size_t cache_max_bytes = 64u << 20;
};

struct ElectionConfig {
  bool admin_capable = true;
  int bootstrap_expect = 1;                 // admin-capable nodes that form the electorate together
  Millis heartbeat_interval{150};
  Millis election_timeout{600};             // randomized in [t, 2t)
  Millis stability_window{2000};
  struct Autopilot {                        // the admin manages the electorate (docs/election.md)
    Millis stabilization_time{10000};       // a new admin-capable member is added after this; 0: never
    Millis dead_member_removal{300000};     // a member silent this long is removed; 0: never
  } autopilot;
};

struct AutoscalingConfig {                  // nO performance.autoscaling
  bool enabled = true;
  int min_agents = 1;
  int max_agents = 8;
  double target_cpu = 70;                   // percent
  double target_memory = 80;                // percent
  Millis scale_up_cooldown{180000};
  Millis scale_down_cooldown{600000};
  int step = 1;
};

// The `command` executor's sandbox (bubblewrap) and its default limits.
struct SandboxConfig {
  std::string bwrap = "bwrap";              // the bubblewrap binary
  bool allow_network = false;               // whether a task may ask for network access
  int memory_limit_mb = 512;                // address-space limit of a task's process tree
  std::size_t max_output_bytes = 65536;     // stdout and stderr are each cut there
  std::string work_root;                    // where private work directories go ("" = <data_dir>/sandbox)
  int uid_range_start = 100000;             // a root node runs each task as its own uid from here; -1: as root
  int uid_range_size = 1024;                // uids in the range: tasks that may run at once
  int max_processes = 512;                  // RLIMIT_NPROC of a task's uid: fork bombs stop here
};

// The `http` executor (webhooks). What a task may reach: see
// executors/address_policy.h.
struct WebhookConfig {
  std::vector<std::string> allow;              // hosts and CIDRs allowed although internal
  std::size_t max_response_bytes = 1 << 20;    // longer answers fail the attempt
};

// The `llm` executor: an Ollama or OpenAI-compatible server.
struct LlmConfig {
  std::string endpoint;                     // "http://127.0.0.1:11434"; "" disables the llm executor
  std::string api = "ollama";               // "ollama" (/api/chat) or "openai" (/v1/chat/completions)
  std::vector<std::string> models;          // preferred models, first wins among those the server offers
  std::string api_key;                      // Bearer token for OpenAI-compatible servers
  int max_iterations = 8;                   // reasoning loop bound
  Millis request_timeout{60000};
  // When a task is stuck it asks the other agents for help (HMMM, docs/hmmm.md):
  int stuck_iterations = 4;                 // this many iterations in a row without progress
  int stuck_repeats = 3;                    // or the same command failing this many times
  int max_help_requests = 2;                // per attempt
  Millis help_wait{30000};                  // how long one request waits for answers
};

struct AgentsConfig {
  int initial_agents = 2;
  Millis heartbeat_interval{1000};
  AutoscalingConfig autoscaling;
  SandboxConfig sandbox;
  WebhookConfig http;
  LlmConfig llm;
  std::string secrets_file;                 // JSON {"NAME": "value"} behind secret://NAME (mode 0600)
};

struct TasksConfig {
  int default_max_attempts = 3;
  Millis default_timeout{60000};
  Millis lease_duration{10000};
  Millis owner_lease{3000};                 // shared store: a dead owner's tasks move after this
  std::size_t max_queue_depth = 100000;
  Millis retry_backoff_base{500};
  Millis retry_backoff_max{60000};
  std::string strategy = "least-loaded";   // round-robin, least-loaded, performance, capability-match
};

struct HmmmConfig {
  bool enabled = true;
  Millis objection_window{30000};
  double quorum = 0.5;                      // share of participants whose agreement accepts a plan
  int message_limit = 200;
  Millis room_timeout{1800000};             // undecided this long: escalate
  Millis room_ttl{86400000};                // idle this long after closing: archived
  int hop_limit = 8;
  int max_participants = 32;
  std::size_t max_message_bytes = 16u << 10;
  double room_messages_per_second = 20;     // token bucket per room, burst twice the rate
  double agent_messages_per_second = 5;     // token bucket per agent and room
  std::vector<std::string> escalation_keywords;
  std::string escalation_webhook;
  std::string escalation_webhook_secret;    // secret: HMAC-SHA256 key of the webhook signature
  int help_answers = 3;                     // a help request stops waiting at this many answers
  bool answer_help = true;                  // this node's model answers other nodes' help requests
};

struct SlurpConfig {
  bool enabled = true;
  std::size_t queue_capacity = 10000;       // queued events; beyond: 429
  int max_retries = 5;                      // failed attempts retried before the dead-letter queue
  std::string default_role = "decision";    // the role a record is sealed for unless its event names one
  // The executors whose tasks' final states (succeeded, dead, cancelled)
  // become events; builtin tasks (echo, sleep, fail) are diagnostics.
  std::vector<std::string> task_outcomes = {"llm", "command", "http"};
};

struct UcxiConfig {
  bool enabled = true;
  std::size_t max_payload_bytes = 4u << 20;
};

// A static API token: only a hash is configured, never the token. Exactly
// one of token_hash (salted, preferred) and token_sha256 (unsalted, older
// configurations) is set.
struct ApiToken {
  std::string name;          // the principal this token authenticates
  std::string token_sha256;  // 64 lower-case hex digits
  std::vector<std::string> roles;
  std::string token_hash;  // "hmac-sha256:<salt hex 32>:<digest hex 64>" (security::HashToken)
};

// The form of ApiToken::token_hash: "hmac-sha256:" + 32 lower-case hex
// digits of salt + ":" + 64 of digest. "" when `token_hash` has it, else
// what is wrong.
inline constexpr std::string_view kTokenHashScheme = "hmac-sha256:";
inline constexpr std::size_t kTokenSaltBytes = 16;
std::string TokenHashProblem(std::string_view token_hash);

// A role defined or extended in the configuration.
struct RoleDefinition {
  std::string name;
  std::vector<std::string> permissions;  // "resource:action", wildcards allowed
};

struct OidcConfig {
  bool enabled = false;
  std::string issuer;
  std::string audience;
  std::string jwks_uri;
  std::string client_id;
  std::string client_secret;  // secret
  std::string redirect_uri;
  Millis leeway{60000};
  std::string role_claim = "roles";       // claim (or dotted path) holding the token's roles
  std::vector<std::string> role_mapping;  // "<claim value>=<role>"
  Millis jwks_refresh{300000};            // the issuer's keys are fetched again this often
  Millis session_ttl{8 * 3600 * 1000};    // browser sessions (/auth/*)
};

struct RateLimitConfig {
  bool enabled = true;
  double requests_per_second = 1000;  // reads (GET, HEAD) per principal or client address
  double burst = 2000;
  double write_requests_per_second = 1000;  // every other method
  double write_burst = 2000;
  bool trust_forwarded_headers = false;
  std::vector<std::string> trusted_proxies;  // peers whose X-Forwarded-For is believed
};

struct ShhhConfig {
  std::vector<std::string> patterns;  // name=regex, beyond the built-in kinds
};

struct AuditConfig {
  bool enabled = true;
  double refusals_per_second = 20;  // 401/403 entries; the excess is counted, not listed
  double refusal_burst = 200;
};

struct KeysConfig {                        // role encryption of stored context (docs/keys.md)
  bool enabled = true;
  std::vector<std::string> roles;           // role keys beyond the authority levels and the RBAC roles
  std::vector<std::string> readers;         // "<ucxl pattern> = role[,role...]": who reads what, first match
  double rewrap_per_second = 200;           // versions the re-wrap job handles per second
  Millis poll_interval{1000};               // how often the ring and grants are read from the DHT
};

struct SecurityConfig {
  bool rbac_enabled = true;
  int auth_failure_limit = 20;              // failed authentications per client address and window
  Millis auth_failure_window{60000};        // then 429 until the window ends
  std::vector<ApiToken> api_tokens;
  std::vector<RoleDefinition> roles;
  OidcConfig oidc;
  RateLimitConfig rate_limit;
  ShhhConfig shhh;
  AuditConfig audit;
  KeysConfig keys;
};

struct PoolConfig {                         // nO performance.connectionPool
  bool enabled = true;
  int min_connections = 2;
  int max_connections = 16;
  Millis acquire_timeout{30000};
  Millis idle_timeout{300000};
};

struct SqliteConfig {
  std::string path;                         // empty: <data_dir>/bzzz.db
  std::string synchronous = "normal";       // normal | full
  Millis busy_timeout{5000};
};

struct PostgresConfig {
  std::string host = "localhost";
  int port = 5432;
  std::string database = "bzzz";
  std::string user = "bzzz";
  std::string password;                     // secret
  std::string sslmode = "prefer";
};

struct StorageConfig {
  std::string backend = "sqlite";           // sqlite | postgres
  SqliteConfig sqlite;
  PostgresConfig postgres;
  PoolConfig pool;
};

struct RedisPoolConfig {
  int min_connections = 1;
  int max_connections = 4;
  Millis acquire_timeout{100};              // short: a cache never makes a caller wait long
  Millis idle_timeout{300000};
};

struct RedisConfig {
  std::string host = "localhost";
  int port = 6379;
  std::string password;                     // secret
  int db = 0;
  std::string key_prefix = "bzzz:";         // every key the cache writes starts with it
  Millis timeout{250};                      // connect and each command
  Millis reconnect_interval{1000};          // longest wait between reconnection attempts
  RedisPoolConfig pool;
};

struct CacheConfig {                        // nO performance.caching
  bool enabled = true;
  Millis default_ttl{300000};
  std::size_t max_size = 10000;
  std::size_t max_bytes = 64u << 20;        // of the memory layer
  std::vector<std::string> layers{"memory"};  // memory, redis
  RedisConfig redis;
};

struct MonitoringConfig {
  bool prometheus_enabled = true;           // serve /metrics
  bool grafana_enabled = false;             // accepted for nO compatibility
};

struct ConsoleConfig {                      // the web console (docs/console.md)
  bool enabled = true;                      // serve /ui/ and the console's routes
  std::string assets_dir;                   // serve /ui/ from this directory instead of the built-in copy
  Millis history_interval{2000};            // how often the node samples its own history
  std::size_t history_samples = 900;        // samples kept (30 min at 2 s)
};

struct OperationsConfig {
  Millis shutdown_timeout{30000};           // whole shutdown sequence
  Millis drain_timeout{10000};              // in-flight requests
  std::size_t debug_requests_capacity = 256;
  Millis health_check_interval{10000};
  Millis health_check_timeout{5000};
  double memory_degraded_ratio = 0.85;
  double memory_unhealthy_ratio = 0.95;
};

struct Config {
  NodeConfig node;
  HttpConfig http;
  P2pConfig p2p;
  DhtConfig dht;
  ElectionConfig election;
  AgentsConfig agents;
  TasksConfig tasks;
  HmmmConfig hmmm;
  SlurpConfig slurp;
  UcxiConfig ucxi;
  SecurityConfig security;
  StorageConfig storage;
  CacheConfig cache;
  MonitoringConfig monitoring;
  OperationsConfig operations;
  ConsoleConfig console;

  // The SQLite database file: storage.sqlite.path, or <data_dir>/bzzz.db.
  std::string SqlitePath() const;
};

}  // namespace bzzz::config
