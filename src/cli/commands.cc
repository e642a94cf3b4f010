#include "cli/commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "base/json.h"
#include "cli/bench_command.h"
#include "cli/client.h"
#include "cli/common.h"
#include "cli/cluster_commands.h"
#include "cli/keys_commands.h"
#include "cli/audit_commands.h"
#include "cli/backup_commands.h"
#include "cli/election_commands.h"
#include "cli/hmmm_commands.h"
#include "cli/slurp_commands.h"
#include "cli/p2p_commands.h"
#include "cli/task_commands.h"
#include "cli/ucxl_commands.h"
#include "config/loader.h"
#include "node/logging.h"
#include "node/node.h"
#include "security/authenticator.h"
#include "storage/store.h"

namespace bzzz::cli {

namespace {

using nlohmann::json;


// Options that shape the configuration, shared by serve, config and db.
struct ConfigArgs {
  std::string file;
  std::string data_dir;
  std::vector<std::string> sets;  // KEY=VALUE
  // serve only
  std::string http_listen;
  std::string p2p_listen;
  std::vector<std::string> bootstrap;
  std::string node_name;
  std::string log_level;
  std::string log_format;
  bool admin_capable = true;
  CLI::Option* admin_capable_opt = nullptr;
  std::string bootstrap_expect;
  std::string join_token;
};

void AddConfigOptions(CLI::App* cmd, ConfigArgs& a) {
  cmd->add_option("-c,--config", a.file, "configuration file (YAML or JSON)")->envname("BZZZ_CONFIG");
  cmd->add_option("--data-dir", a.data_dir, "data directory (node.data_dir)");
  cmd->add_option("--set", a.sets, "override a key: --set http.threads=4 (repeatable)");
}

void AddServeOptions(CLI::App* cmd, ConfigArgs& a) {
  cmd->add_option("--http-listen", a.http_listen, "HTTP API address HOST:PORT (http.host, http.port)");
  cmd->add_option("--p2p-listen", a.p2p_listen, "P2P address HOST:PORT (p2p.listen)");
  cmd->add_option("--bootstrap", a.bootstrap, "bootstrap peer HOST:PORT (repeatable; p2p.bootstrap)");
  cmd->add_option("--node-name", a.node_name, "node name (node.name)");
  a.admin_capable_opt = cmd->add_flag("--admin-capable,!--no-admin-capable", a.admin_capable,
                                      "stand (or not) as admin candidate (election.admin_capable)");
  cmd->add_option("--join", a.join_token,
                  "join token of an existing cluster (p2p.join_token; bzzz cluster token create)");
  cmd->add_option("--bootstrap-expect", a.bootstrap_expect,
                  "admin-capable nodes that form the electorate together (election.bootstrap_expect)");
  cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn, error, critical, off");
  cmd->add_option("--log-format", a.log_format, "text or json");
}

// Turns flags into (key, value) overrides; usage errors are returned as text.
std::optional<std::string> Overrides(const ConfigArgs& a,
                                     std::vector<std::pair<std::string, std::string>>& out) {
  if (!a.data_dir.empty()) out.emplace_back("node.data_dir", a.data_dir);
  if (!a.http_listen.empty()) {
    const auto colon = a.http_listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == a.http_listen.size()) {
      return "--http-listen expects HOST:PORT, got '" + a.http_listen + "'";
    }
    std::string host = a.http_listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    out.emplace_back("http.host", host);
    out.emplace_back("http.port", a.http_listen.substr(colon + 1));
  }
  if (!a.p2p_listen.empty()) out.emplace_back("p2p.listen", a.p2p_listen);
  if (!a.bootstrap.empty()) {
    std::string joined;
    for (const auto& b : a.bootstrap) joined += (joined.empty() ? "" : ",") + b;
    out.emplace_back("p2p.bootstrap", joined);
  }
  if (!a.node_name.empty()) out.emplace_back("node.name", a.node_name);
  if (a.admin_capable_opt && a.admin_capable_opt->count() > 0) {
    out.emplace_back("election.admin_capable", a.admin_capable ? "true" : "false");
  }
  if (!a.bootstrap_expect.empty()) out.emplace_back("election.bootstrap_expect", a.bootstrap_expect);
  if (!a.join_token.empty()) out.emplace_back("p2p.join_token", a.join_token);
  if (!a.log_level.empty()) out.emplace_back("node.log_level", a.log_level);
  if (!a.log_format.empty()) out.emplace_back("node.log_format", a.log_format);
  for (const auto& kv : a.sets) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return "--set expects KEY=VALUE, got '" + kv + "'";
    out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return std::nullopt;
}

// Loads the configuration; prints every issue. nullopt: exit with `*code`.
std::optional<config::Config> Load(const ConfigArgs& a, int* code, bool quiet_ok = true) {
  config::LoadOptions options;
  if (!a.file.empty()) options.file = a.file;
  options.env = config::EnvironmentSnapshot();
  if (auto usage = Overrides(a, options.overrides)) {
    PrintError(*usage);
    *code = kExitUsage;
    return std::nullopt;
  }
  config::LoadResult result = config::LoadConfig(options);
  for (const auto& w : result.warnings) std::fprintf(stderr, "bzzz: warning: %s\n", w.ToString().c_str());
  if (!result.ok()) {
    for (const auto& e : result.errors)
      std::fprintf(stderr, "bzzz: config error: %s\n", e.ToString().c_str());
    *code = kExitFailure;
    return std::nullopt;
  }
  (void)quiet_ok;
  return std::move(result.config);
}




// Sets up logging, starts a node and blocks until its graceful shutdown.
int RunNode(config::Config cfg, node::NodeOptions options) {
  if (auto s = node::SetupLogging({cfg.node.log_level, cfg.node.log_format, cfg.http.access_log, cfg.node.log_levels}); !s.ok()) {
    PrintError(s.message());
    return kExitFailure;
  }
  auto created = node::Node::Create(std::move(cfg), options);
  if (!created.ok()) {
    PrintError(created.status().message());
    return kExitFailure;
  }
  auto& node = *created;
  if (auto s = node->Start(); !s.ok()) {
    PrintError("cannot start: " + s.message());
    node::ShutdownLogging();
    return kExitFailure;
  }
  return node->Run();
}

int Serve(const ConfigArgs& args) {
  node::BlockShutdownSignals();  // before the logging threads exist
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  return RunNode(std::move(*cfg), {});
}

int ConfigValidate(const ConfigArgs& args) {
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  std::cout << "configuration is valid"
            << (args.file.empty() ? " (defaults and environment)" : " (" + args.file + ")") << "\n";
  return kExitOk;
}

int ConfigShow(const ConfigArgs& args, const std::string& format) {
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  std::cout << config::RenderConfig(
      *cfg, format == "json" ? config::RenderFormat::kJson : config::RenderFormat::kYaml, true);
  return kExitOk;
}

std::shared_ptr<storage::Store> OpenStoreOrReport(const config::Config& cfg, int* code) {
  auto storage = storage::OpenStorage(cfg);
  if (!storage.ok()) {
    PrintError(storage.status().message());
    *code = storage.status().code() == StatusCode::kUnavailable ? kExitUnreachable : kExitFailure;
    return nullptr;
  }
  return storage->store;
}

int DbMigrate(const ConfigArgs& args) {
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  auto store = OpenStoreOrReport(*cfg, &code);
  if (!store) return code;
  auto state = store->Migrate();
  if (!state.ok()) {
    PrintError("migration failed: " + state.status().message());
    return kExitFailure;
  }
  if (state->applied.empty()) {
    std::cout << "schema is up to date (version " << state->current_version << ")\n";
  } else {
    for (const std::string& step : state->applied) std::cout << "applied migration " << step << "\n";
    std::cout << "schema version " << state->current_version << "\n";
  }
  store->Close();
  return kExitOk;
}

int DbHealthCheck(const ConfigArgs& args) {
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  auto store = OpenStoreOrReport(*cfg, &code);
  if (!store) return code;
  const ops::CheckOutcome verdict = node::AssessStoreHealth(store->HealthCheck());
  store->Close();
  json out = json::parse(verdict.details_json);
  out["status"] = ops::HealthStatusName(verdict.status);
  out["message"] = verdict.message;
  std::cout << out.dump(2) << "\n";
  // Degraded (pending migrations) is not fit to serve yet: exit 1 too.
  return verdict.status == ops::HealthStatus::kHealthy ? kExitOk : kExitFailure;
}

int DbTestConnection(const ConfigArgs& args) {
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  auto store = OpenStoreOrReport(*cfg, &code);
  if (!store) return code;
  const auto started = std::chrono::steady_clock::now();
  const Status s = store->TestConnection();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  const auto h = store->HealthCheck();
  store->Close();
  if (!s.ok()) {
    PrintError("connection failed: " + s.message());
    return kExitUnreachable;
  }
  std::printf("connection ok: %s %s (%.2f ms)\n", h.backend.c_str(), h.location.c_str(), ms);
  return kExitOk;
}

int DbVacuum(const ConfigArgs& args) {
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  auto store = OpenStoreOrReport(*cfg, &code);
  if (!store) return code;
  const auto started = std::chrono::steady_clock::now();
  auto r = store->Vacuum();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  store->Close();
  if (!r.ok()) {
    PrintError("vacuum failed: " + r.status().message());
    return r.status().code() == StatusCode::kUnavailable ? kExitUnreachable : kExitFailure;
  }
  std::printf("vacuumed and analyzed in %.2f s: %llu bytes before, %llu after\n", seconds,
              static_cast<unsigned long long>(r->bytes_before), static_cast<unsigned long long>(r->bytes_after));
  return kExitOk;
}

// GET /debug/pprof/profile?seconds=N into a file (0600: a profile shows the
// code paths of the node).
int ProfileCpu(const ClientArgs& args, int seconds, const std::string& output) {
  ClientOptions o = ClientFrom(args);
  o.timeout = std::max(o.timeout, std::chrono::milliseconds((seconds + 30) * 1000));
  std::fprintf(stderr, "profiling %s for %d s...\n", o.url.c_str(), seconds);
  auto r = Call(o, "GET", "/debug/pprof/profile?seconds=" + std::to_string(seconds));
  if (!r.ok() || r->status != 200) return Report(r);
  const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    PrintError("cannot write " + output + ": " + std::strerror(errno));
    return kExitFailure;
  }
  std::size_t done = 0;
  while (done < r->body.size()) {
    const ssize_t n = ::write(fd, r->body.data() + done, r->body.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (done != r->body.size()) {
    PrintError("cannot write " + output);
    return kExitFailure;
  }
  std::printf("wrote a %d s CPU profile (%zu bytes) to %s; read it with: google-pprof --text <path of bzzz> %s\n",
              seconds, done, output.c_str(), output.c_str());
  return kExitOk;
}

int DhtBootstrap(ConfigArgs args, int port, const std::string& listen_host) {
  if (port < 1 || port > 65535) {
    PrintError("--port must be 1..65535");
    return kExitUsage;
  }
  args.p2p_listen = listen_host + ":" + std::to_string(port);
  const bool serve_http = !args.http_listen.empty();
  node::BlockShutdownSignals();
  int code = kExitOk;
  auto cfg = Load(args, &code);
  if (!cfg) return code;
  // Its own data directory unless told: a bootstrap node may share a host with a node.
  if (args.data_dir.empty()) cfg->node.data_dir += "/dht-bootstrap-" + std::to_string(port);
  if (cfg->node.name.empty()) cfg->node.name = "dht-bootstrap-" + std::to_string(port);
  node::NodeOptions options;
  options.bootstrap_only = true;
  options.serve_http = serve_http;
  return RunNode(std::move(*cfg), options);
}

}  // namespace

// `bzzz token hash`: the token comes on stdin (not argv, which other users
// can read in /proc); one trailing newline is dropped.
int TokenHash() {
  std::string token((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (!token.empty() && token.back() == '\n') token.pop_back();
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.find('\n') != std::string::npos) {
    PrintError("token hash: give one token on stdin, got several lines");
    return kExitUsage;
  }
  if (auto why = security::WeakTokenReason(token); !why.empty()) {
    PrintError("token hash: the token is too weak: " + why + " (make one with: openssl rand -hex 32)");
    return kExitUsage;
  }
  std::printf("%s\n", security::HashToken(token).c_str());
  return kExitOk;
}

int RunCli(int argc, char** argv) {
  CLI::App app{"bzzz: a peer-to-peer coordination runtime for fleets of AI agents"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  app.add_flag_callback(
      "--version",
      [] { throw CLI::CallForVersion("bzzz " + node::Version() + " (" + node::GitCommit() + ")", 0); },
      "print the version and exit");

  ConfigArgs serve_args;
  auto* serve = app.add_subcommand("serve", "run a node (the embedded default needs no configuration)");
  AddConfigOptions(serve, serve_args);
  AddServeOptions(serve, serve_args);

  ClientArgs health_args;
  auto* health = app.add_subcommand("health", "GET /health of a running node (exit 1 when unhealthy)");
  AddClientOptions(health, health_args);
  ClientArgs status_args;
  auto* status = app.add_subcommand("status", "GET /admin/status of a running node (admin token)");
  AddClientOptions(status, status_args);

  auto* config_cmd = app.add_subcommand("config", "check and print the configuration");
  config_cmd->require_subcommand(1);
  ConfigArgs validate_args;
  auto* validate =
      config_cmd->add_subcommand("validate", "validate the configuration; every error names its key");
  AddConfigOptions(validate, validate_args);
  AddServeOptions(validate, validate_args);
  ConfigArgs show_args;
  std::string show_format = "yaml";
  auto* show = config_cmd->add_subcommand("show", "print the effective configuration (secrets masked)");
  AddConfigOptions(show, show_args);
  AddServeOptions(show, show_args);
  show->add_option("--format", show_format, "yaml or json")
      ->check(CLI::IsMember({"yaml", "json"}))
      ->capture_default_str();

  auto* db = app.add_subcommand("db", "database maintenance");
  db->require_subcommand(1);
  ConfigArgs migrate_args, dbhealth_args, dbconn_args;
  auto* migrate = db->add_subcommand("migrate", "apply pending schema migrations");
  AddConfigOptions(migrate, migrate_args);
  auto* dbhealth = db->add_subcommand("health-check", "check reachability, integrity and schema version");
  AddConfigOptions(dbhealth, dbhealth_args);
  auto* dbconn = db->add_subcommand("test-connection", "open the database and run a trivial query");
  AddConfigOptions(dbconn, dbconn_args);
  ConfigArgs vacuum_args;
  auto* vacuum = db->add_subcommand("vacuum", "give back the space of deleted rows and refresh statistics "
                                              "(VACUUM, ANALYZE)");
  AddConfigOptions(vacuum, vacuum_args);

  auto* audit_cmd = app.add_subcommand("audit", "the node's audit log");
  audit_cmd->require_subcommand(1);
  ConfigArgs audit_verify_args;
  std::string audit_file, audit_key, audit_output = "-";
  bool audit_json = false;
  auto* audit_verify = audit_cmd->add_subcommand(
      "verify", "check the audit hash chain and signatures (the local store, or an export with --file)");
  AddConfigOptions(audit_verify, audit_verify_args);
  audit_verify->add_option("--file", audit_file, "an export written by `bzzz audit export`");
  audit_verify->add_option("--public-key", audit_key, "the node's public key (hex) to check an export against");
  audit_verify->add_flag("--json", audit_json, "print the report as JSON");
  auto* backup_cmd = app.add_subcommand("backup", "backups of the node's store");
  backup_cmd->require_subcommand(1);
  ConfigArgs backup_args;
  std::string backup_output, backup_file;
  bool backup_json = false, backup_force = false;
  auto* backup_create = backup_cmd->add_subcommand(
      "create", "copy the store into one file (consistent while the node runs)");
  AddConfigOptions(backup_create, backup_args);
  backup_create->add_option("--output,-o", backup_output, "file to write (default bzzz-backup-<UTC time>.db; .dump on PostgreSQL)");
  auto* backup_verify = backup_cmd->add_subcommand("verify", "check a backup file and show what it holds");
  backup_verify->add_option("file", backup_file, "the backup")->required();
  auto* backup_restore = backup_cmd->add_subcommand(
      "restore", "replace the store with a backup (the node stopped; the old database is kept beside)");
  AddConfigOptions(backup_restore, backup_args);
  backup_restore->add_option("file", backup_file, "the backup")->required();
  backup_restore->add_flag("--force", backup_force, "replace an existing database");
  for (auto* c : {backup_create, backup_verify, backup_restore}) c->add_flag("--json", backup_json, "print JSON");
  ClientArgs audit_export_args;
  auto* audit_export = audit_cmd->add_subcommand("export", "write a running node's whole audit log as JSON");
  AddClientOptions(audit_export, audit_export_args);
  audit_export->add_option("--output,-o", audit_output, "file to write (- for stdout)")->capture_default_str();

  auto* version = app.add_subcommand("version", "print the version");

  ClientArgs profile_args;
  int profile_seconds = 30;
  std::string profile_output = "cpu.pprof";
  auto* profile_cpu = app.add_subcommand("profile-cpu", "take a CPU profile of a running node (pprof format; "
                                                        "admin token)");
  AddClientOptions(profile_cpu, profile_args);
  profile_cpu->add_option("seconds", profile_seconds, "how long to profile")
      ->capture_default_str()
      ->check(CLI::Range(1, 300));
  profile_cpu->add_option("--output,-o", profile_output, "file to write")->capture_default_str();

  auto* token_cmd = app.add_subcommand("token", "API tokens");
  token_cmd->require_subcommand(1);
  auto* token_hash = token_cmd->add_subcommand(
      "hash", "read a token on stdin, print its salted hash for security.api_tokens[].token_hash");

  // P2P and DHT.
  ConfigArgs bootstrap_args;
  int bootstrap_port = 0;
  std::string bootstrap_host = "127.0.0.1";
  auto* dht_bootstrap = app.add_subcommand("dht-bootstrap",
                                           "run a DHT bootstrap-only node (no agents; no HTTP API "
                                           "unless --http-listen is given)");
  AddConfigOptions(dht_bootstrap, bootstrap_args);
  dht_bootstrap->add_option("--port", bootstrap_port, "UDP port to serve the DHT on")->required();
  dht_bootstrap->add_option("--listen-host", bootstrap_host, "address to bind")->capture_default_str();
  dht_bootstrap->add_option("--http-listen", bootstrap_args.http_listen,
                            "also serve health and metrics on HOST:PORT");
  dht_bootstrap->add_option("--bootstrap", bootstrap_args.bootstrap,
                            "other bootstrap peers HOST:PORT (repeatable)");
  dht_bootstrap->add_option("--node-name", bootstrap_args.node_name, "node name");
  dht_bootstrap->add_option("--join", bootstrap_args.join_token,
                            "join token (role bootstrap) of the cluster this node serves");
  dht_bootstrap->add_option("--log-level", bootstrap_args.log_level,
                            "trace, debug, info, warn, error, critical, off");

  BenchCommand bench_command(app);
  P2pCommands p2p_commands(app);
  ElectionCommands election_commands(app);
  HmmmCommands hmmm_commands(app);
  SlurpCommands slurp_commands(app);
  UcxlCommands ucxl_commands(app);
  TaskCommands task_commands(app);
  ClusterCommands cluster_commands(app);
  KeysCommands keys_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    PrintError(e.what());
    std::fprintf(stderr, "run 'bzzz --help' for usage\n");
    return kExitUsage;
  }

  if (*serve) return Serve(serve_args);
  if (*health) return Report(Call(ClientFrom(health_args), "GET", "/health"));
  if (*status) return Report(Call(ClientFrom(status_args), "GET", "/admin/status"));
  if (*profile_cpu) return ProfileCpu(profile_args, profile_seconds, profile_output);
  if (*validate) return ConfigValidate(validate_args);
  if (*show) return ConfigShow(show_args, show_format);
  if (*migrate) return DbMigrate(migrate_args);
  if (*dbhealth) return DbHealthCheck(dbhealth_args);
  if (*dbconn) return DbTestConnection(dbconn_args);
  if (*vacuum) return DbVacuum(vacuum_args);
  if (*token_hash) return TokenHash();
  if (*audit_verify) {
    if (!audit_file.empty()) return AuditVerifyFile(audit_file, audit_key, audit_json);
    int code = kExitOk;
    auto cfg = Load(audit_verify_args, &code);
    if (!cfg) return code;
    return AuditVerifyStore(*cfg, audit_json);
  }
  if (*audit_export) return AuditExport(audit_export_args, audit_output);
  if (*backup_verify) return BackupVerify(backup_file, backup_json);
  if (*backup_create || *backup_restore) {
    int code = kExitOk;
    auto cfg = Load(backup_args, &code);
    if (!cfg) return code;
    return *backup_create ? BackupCreate(*cfg, backup_output, backup_json)
                          : BackupRestore(*cfg, backup_file, backup_force, backup_json);
  }
  if (*dht_bootstrap) return DhtBootstrap(bootstrap_args, bootstrap_port, bootstrap_host);
  if (auto code = bench_command.Run()) return *code;
  if (auto code = p2p_commands.Run()) return *code;
  if (auto code = election_commands.Run()) return *code;
  if (auto code = hmmm_commands.Run()) return *code;
  if (auto code = slurp_commands.Run()) return *code;
  if (auto code = ucxl_commands.Run()) return *code;
  if (auto code = task_commands.Run()) return *code;
  if (auto code = cluster_commands.Run()) return *code;
  if (auto code = keys_commands.Run()) return *code;
  if (*version) {
    std::cout << "bzzz " << node::Version() << " (" << node::GitCommit() << ")\n";
    return kExitOk;
  }
  PrintError("no subcommand given");
  return kExitUsage;
}

}  // namespace bzzz::cli
