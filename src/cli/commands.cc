#include "cli/commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "base/json.h"
#include "cli/client.h"
#include "cli/common.h"
#include "cli/cluster_commands.h"
#include "cli/task_commands.h"
#include "config/loader.h"
#include "node/logging.h"
#include "node/node.h"
#include "security/authenticator.h"
#include "storage/store.h"
#include "ucxl/address.h"

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
  if (auto s = node::SetupLogging({cfg.node.log_level, cfg.node.log_format, cfg.http.access_log}); !s.ok()) {
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

// --- P2P and DHT commands ------------------------------------------------------



int Peers(const ClientOptions& options, bool as_json) {
  int code = kExitOk;
  auto body = CallJson(options, "GET", "/api/v1/peers", "", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
    return kExitOk;
  }
  const auto& peers = (*body)["peers"];
  std::printf("%zu peer(s) of %s; DHT table: %d good, %d dubious\n", peers.size(),
              body->value("node_id", "").c_str(), (*body)["dht"].value("good_nodes", 0),
              (*body)["dht"].value("dubious_nodes", 0));
  if (peers.empty()) return kExitOk;
  std::printf("%-40s  %-16s  %-10s  %-8s  %-6s  %s\n", "NODE ID", "NAME", "ROLE", "STATUS", "TASKS", "HTTP");
  for (const auto& p : peers) {
    std::printf("%-40s  %-16s  %-10s  %-8s  %2d/%-3d  %s\n", p.value("node_id", "").c_str(),
                p.value("name", "").c_str(), p.value("role", "").c_str(), p.value("status", "").c_str(),
                p.value("current_tasks", 0), p.value("max_tasks", 0), p.value("http_endpoint", "").c_str());
  }
  return kExitOk;
}

// Runs `clear` on a data directory no node is using (its LOCK is free).
int ClearOffline(const std::string& data_dir, const std::function<std::string()>& clear) {
  const std::string lock_path = data_dir + "/LOCK";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    if (!free) {
      PrintError("a node is running on " + data_dir + ": drop --data-dir to ask it over HTTP (--url)");
      return kExitFailure;
    }
  }
  std::cout << clear() << "\n";
  return kExitOk;
}

int PeersClear(const ClientOptions& options, const std::string& data_dir) {
  if (!data_dir.empty()) {
    return ClearOffline(data_dir, [&] {
      std::error_code ec;
      const bool removed = std::filesystem::remove(data_dir + "/p2p/peers", ec);
      return std::string(removed ? "peer store cleared: " : "no peer store at ") + data_dir + "/p2p/peers";
    });
  }
  int code = kExitOk;
  auto body = CallJson(options, "DELETE", "/api/v1/p2p/peers", "", &code);
  if (!body) return code;
  std::printf("peer store cleared: %d contact(s) forgotten; peers reappear as they announce\n",
              body->value("forgotten", 0));
  return kExitOk;
}

int DhtCacheClear(const ClientOptions& options, const std::string& data_dir) {
  if (!data_dir.empty()) {
    return ClearOffline(data_dir, [&] {
      std::size_t files = 0;
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(data_dir + "/dht/cache", ec)) {
        files += std::filesystem::remove(e.path(), ec) ? 1 : 0;
      }
      return "DHT cache cleared: " + std::to_string(files) + " file(s) removed from " + data_dir +
             "/dht/cache";
    });
  }
  int code = kExitOk;
  auto body = CallJson(options, "DELETE", "/api/v1/dht/cache", "", &code);
  if (!body) return code;
  std::printf("DHT cache cleared: %d file(s), %d byte(s)\n", body->value("files", 0),
              body->value("bytes", 0));
  return kExitOk;
}

int TestP2pMessage(const ClientOptions& options, int probe_timeout_ms, bool allow_alone, bool as_json) {
  int code = kExitOk;
  ClientOptions o = options;
  o.timeout = std::max(o.timeout, std::chrono::milliseconds(probe_timeout_ms + 5000));
  std::fprintf(stderr, "probing every known peer over pubsub (timeout %d ms)...\n", probe_timeout_ms);
  auto body =
      CallJson(o, "POST", "/api/v1/p2p/test-message", json{{"timeout_ms", probe_timeout_ms}}.dump(), &code);
  if (!body) return code;
  if (as_json) std::cout << body->dump(2) << "\n";
  const auto& results = (*body)["results"];
  if (!as_json) {
    for (const auto& r : results) {
      if (r.value("answered", false)) {
        std::printf("  ok       %-40s %-16s %8.2f ms\n", r.value("node_id", "").c_str(),
                    r.value("name", "").c_str(), r.value("rtt_ms", 0.0));
      } else {
        std::printf("  NO REPLY %-40s %-16s\n", r.value("node_id", "").c_str(), r.value("name", "").c_str());
      }
    }
    std::printf("%d of %d peer(s) answered\n", body->value("answered", 0), body->value("peers", 0));
  }
  const int peers = body->value("peers", 0);
  if (peers == 0) {
    if (allow_alone) return kExitOk;
    PrintError("no peers known: nothing was probed (use --allow-alone on a single node)");
    return kExitFailure;
  }
  if (body->contains("error")) PrintError((*body)["error"].get<std::string>());
  return body->value("answered", 0) == peers ? kExitOk : kExitFailure;
}

std::string AdminLabel(const json& side) {
  const std::string admin = side.value("admin_id", "");
  return (admin.empty() ? std::string("none") : admin) + " (term " + std::to_string(side.value("term", 0)) +
         ")";
}

int TriggerElection(const ClientOptions& options, bool force, bool as_json) {
  int code = kExitOk;
  ClientOptions o = options;
  o.timeout = std::max(o.timeout, std::chrono::milliseconds(30000));
  auto response = Call(o, "POST", "/api/election/trigger", json{{"force", force}}.dump());
  if (!response.ok()) {
    PrintError(response.status().message());
    return kExitUnreachable;
  }
  json body = ParseJson(response->body);
  if (response->status == 504 && body.is_object()) {
    if (as_json) std::cout << body.dump(2) << "\n";
    PrintError("no new admin yet: was " + AdminLabel(body["previous"]) + ", now " +
               AdminLabel(body["current"]));
    return kExitFailure;
  }
  auto parsed = CallJsonResult(*response, &code);
  if (!parsed) return code;
  if (as_json) {
    std::cout << parsed->dump(2) << "\n";
  } else {
    std::printf("old admin: %s\nnew admin: %s\n", AdminLabel((*parsed)["previous"]).c_str(),
                AdminLabel((*parsed)["current"]).c_str());
  }
  return kExitOk;
}

int ElectionStatus(const ClientOptions& options, bool as_json) {
  int code = kExitOk;
  auto body = CallJson(options, "GET", "/api/election/status", "", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
    return kExitOk;
  }
  const json& b = *body;
  auto str = [&](const char* k) {
    return b.contains(k) && b[k].is_string() ? b[k].get<std::string>() : std::string("-");
  };
  std::printf("node      %s (%s)\nadmin     %s\nterm      %llu\nheartbeat %s\n", str("node_id").c_str(),
              str("state").c_str(), str("admin_id").c_str(),
              static_cast<unsigned long long>(b.value("term", 0ull)),
              b["heartbeat_age_ms"].is_number()
                  ? (std::to_string(b["heartbeat_age_ms"].get<long long>()) + " ms ago").c_str()
                  : "none");
  std::printf("cluster   %s, electorate of %zu%s\n", str("cluster").c_str(),
              b["electorate"]["members"].size(), b.value("member", false) ? " (member)" : " (not a member)");
  for (const auto& c : b["candidates"]) {
    std::printf("  %-42s score %.3f%s%s\n", c.value("node_id", "").c_str(), c.value("score", 0.0),
                c.value("admin_capable", false) ? "" : " observer",
                c.value("member", false) ? " member" : "");
  }
  if (b.contains("problem") && b["problem"].is_string())
    std::printf("problem   %s\n", str("problem").c_str());
  return kExitOk;
}

// Electorate changes go to the admin: a node that is not answers 409 with
// the admin's URL, and the request is sent there once.
int ElectorateChange(const ClientOptions& options, const std::string& op, const std::string& node_id) {
  const std::string body = json{{op, node_id}}.dump();
  auto response = Call(options, "POST", "/api/election/electorate", body);
  if (response.ok() && response->status == 409) {
    const json j = ParseJson(response->body);
    if (j.is_object() && j.contains("admin_url") && j["admin_url"].is_string()) {
      ClientOptions at_admin = options;
      at_admin.url = j["admin_url"].get<std::string>();
      std::fprintf(stderr, "sending the change to the admin at %s\n", at_admin.url.c_str());
      response = Call(at_admin, "POST", "/api/election/electorate", body);
    }
  }
  if (!response.ok()) {
    PrintError(response.status().message());
    return kExitUnreachable;
  }
  int code = kExitOk;
  auto parsed = CallJsonResult(*response, &code);
  if (!parsed) return code;
  std::printf("electorate version %s: %s\n", (*parsed)["version"].dump().c_str(),
              (*parsed)["members"].dump().c_str());
  return kExitOk;
}

// Every boundary validates UCXL addresses: the CLI before sending.
bool CheckAddress(const std::string& text, bool wildcards_ok = true) {
  ucxl::AddressError why;
  auto a = ucxl::Parse(text, &why);
  if (!a.ok()) {
    PrintError(a.status().message());
    return false;
  }
  if (!wildcards_ok && a->HasWildcard()) {
    PrintError("invalid UCXL address: address: any/* is only for discover patterns");
    return false;
  }
  return true;
}


// A UCXI answer: the data of a success envelope, or the error printed (with
// its UCXL code) and `code` set.
std::optional<json> UcxiCall(const ClientOptions& options, const char* method, const std::string& path,
                             const std::string& body, int* code,
                             const std::string& content_type = "application/json") {
  auto response = Call(options, method, path, body, content_type);
  if (!response.ok()) {
    PrintError(response.status().message());
    *code = kExitUnreachable;
    return std::nullopt;
  }
  const json j = ParseJson(response->body);
  if (response->status < 300 && j.is_object() && j.contains("response")) return j["response"];
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    PrintError(j["error"].value("code", "") + ": " + j["error"].value("message", ""));
  } else {
    PrintError("HTTP " + std::to_string(response->status) + ": " + response->body);
  }
  *code = response->status == 401 || response->status == 403 ? kExitAuth : kExitFailure;
  return std::nullopt;
}

void PrintVersions(const json& results) {
  for (const auto& r : results) {
    const json& v = r["version"];
    std::printf("%-60s v%-4llu %-24s %8llu B  %s\n", r.value("address", "").c_str(),
                static_cast<unsigned long long>(v.value("number", 0ull)), v.value("content_type", "").c_str(),
                static_cast<unsigned long long>(v.value("size", 0ull)), v.value("created_at", "").c_str());
  }
}

int Ucxl(const ClientOptions& options, const std::string& op, const std::string& arg, const std::string& file,
         const std::string& content, const std::string& content_type, long long steps, int limit,
         bool as_json) {
  const bool pattern_op = op == "discover";
  if (op != "search" && !CheckAddress(arg, pattern_op)) return kExitUsage;
  int code = kExitOk;
  std::optional<json> r;
  if (op == "get") {
    r = UcxiCall(options, "GET", "/ucxi/v1/get?address=" + PercentEncode(arg), "", &code);
  } else if (op == "put") {
    if (file.empty() && content.empty()) {
      PrintError("put needs --file or --content");
      return kExitUsage;
    }
    std::string body = content;
    if (!file.empty()) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        PrintError("cannot read " + file);
        return kExitUsage;
      }
      std::ostringstream buf;
      buf << in.rdbuf();
      body = buf.str();
    }
    r = UcxiCall(options, "PUT", "/ucxi/v1/put?address=" + PercentEncode(arg), body, &code, content_type);
  } else if (op == "delete") {
    r = UcxiCall(options, "DELETE", "/ucxi/v1/delete?address=" + PercentEncode(arg), "", &code);
  } else if (op == "navigate") {
    r = UcxiCall(options, "GET",
                 "/ucxi/v1/navigate?address=" + PercentEncode(arg) + "&steps=" + std::to_string(steps), "",
                 &code);
  } else if (op == "search") {
    r = UcxiCall(options, "GET",
                 "/ucxi/v1/search?q=" + PercentEncode(arg) + "&limit=" + std::to_string(limit), "", &code);
  } else if (op == "announce") {
    r = UcxiCall(options, "POST", "/ucxi/v1/announce", json{{"address", arg}}.dump(), &code);
  } else if (op == "discover") {
    r = UcxiCall(options, "GET",
                 "/ucxi/v1/discover?pattern=" + PercentEncode(arg) + "&limit=" + std::to_string(limit), "",
                 &code);
  }
  if (!r) return code;
  if (as_json) {
    std::cout << r->dump(2) << "\n";
    return kExitOk;
  }
  const json& data = (*r)["data"];
  if (op == "get" || op == "navigate") {
    std::fprintf(stderr, "%s (%s, from %s)\n", data.value("address", "").c_str(),
                 data["version"].value("content_type", "").c_str(), data.value("source", "").c_str());
    std::cout << data.value("content", "");
    if (data.value("encoding", "") == "base64")
      std::fprintf(stderr, "\n(base64: the content is not UTF-8)\n");
  } else if (op == "search" || op == "discover") {
    PrintVersions(data["results"]);
    if (data.contains("providers")) std::printf("providers: %s\n", data["providers"].dump().c_str());
  } else {
    std::printf("%s: %s\n", r->value("code", "").c_str(), r->value("message", "").c_str());
    if (data.contains("address")) std::printf("%s\n", data["address"].get<std::string>().c_str());
  }
  return kExitOk;
}

int TestDhtOperations(const ClientOptions& options, bool as_json) {
  int code = kExitOk;
  ClientOptions o = options;
  o.timeout =
      std::max(o.timeout, std::chrono::milliseconds(60000));  // four DHT operations, each bounded by the node
  auto body = CallJson(o, "POST", "/api/v1/dht/test", "{}", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
  } else {
    for (const auto& op : (*body)["operations"]) {
      std::printf("  %-9s %-4s %8.2f ms  %s\n", op.value("operation", "").c_str(),
                  op.value("ok", false) ? "ok" : "FAIL", op.value("latency_ms", 0.0),
                  op.value("error", "").c_str());
    }
  }
  const bool ok = body->value("ok", false);
  if (!ok) PrintError("a DHT operation failed");
  return ok ? kExitOk : kExitFailure;
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

  auto* version = app.add_subcommand("version", "print the version");

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

  ClientArgs peers_args;
  bool peers_json = false;
  auto* peers = app.add_subcommand("peers", "list the peers a running node sees");
  AddClientOptions(peers, peers_args);
  peers->add_flag("--json", peers_json, "print the JSON answer");

  auto* p2p_cmd = app.add_subcommand("p2p", "P2P maintenance");
  p2p_cmd->require_subcommand(1);
  auto* p2p_peers = p2p_cmd->add_subcommand("peers", "the peer store");
  p2p_peers->require_subcommand(1);
  ClientArgs peers_clear_args;
  std::string peers_clear_dir;
  auto* peers_clear =
      p2p_peers->add_subcommand("clear", "clear the peer store (running node, or --data-dir offline)");
  AddClientOptions(peers_clear, peers_clear_args);
  peers_clear->add_option("--data-dir", peers_clear_dir,
                          "clear the store of a stopped node's data directory");

  auto* dht_cmd = app.add_subcommand("dht", "DHT maintenance");
  dht_cmd->require_subcommand(1);
  auto* dht_cache = dht_cmd->add_subcommand("cache", "the local DHT cache");
  dht_cache->require_subcommand(1);
  ClientArgs cache_clear_args;
  std::string cache_clear_dir;
  auto* cache_clear =
      dht_cache->add_subcommand("clear", "empty <data_dir>/dht/cache (running node, or --data-dir)");
  AddClientOptions(cache_clear, cache_clear_args);
  cache_clear->add_option("--data-dir", cache_clear_dir,
                          "clear the cache of a stopped node's data directory");

  ClientArgs test_msg_args;
  int probe_timeout_ms = 3000;
  bool allow_alone = false, test_msg_json = false;
  auto* test_msg = app.add_subcommand("test-p2p-message",
                                      "probe every known peer over pubsub; exit 0 only if all "
                                      "answered");
  AddClientOptions(test_msg, test_msg_args);
  test_msg->add_option("--probe-timeout-ms", probe_timeout_ms, "how long to wait for answers")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  test_msg->add_flag("--allow-alone", allow_alone, "succeed on a node without peers");
  test_msg->add_flag("--json", test_msg_json, "print the JSON answer");

  ClientArgs test_dht_args;
  bool test_dht_json = false;
  auto* test_dht = app.add_subcommand("test-dht-operations",
                                      "put, get, announce and discover on the live DHT; "
                                      "non-zero exit on any failure");
  AddClientOptions(test_dht, test_dht_args);
  test_dht->add_flag("--json", test_dht_json, "print the JSON answer");

  ClientArgs trigger_args;
  bool trigger_force = false, trigger_json = false;
  auto* trigger = app.add_subcommand("trigger-election",
                                     "ask the running node to start an election; prints the old "
                                     "and the new admin and term");
  AddClientOptions(trigger, trigger_args);
  trigger->add_flag("--force", trigger_force, "even inside election.stability_window");
  trigger->add_flag("--json", trigger_json, "print the JSON answer");

  auto* election_cmd = app.add_subcommand("election", "the admin election");
  election_cmd->require_subcommand(1);
  ClientArgs election_status_args;
  bool election_status_json = false;
  auto* election_status = election_cmd->add_subcommand("status", "this node's view: admin, term, candidates");
  AddClientOptions(election_status, election_status_args);
  election_status->add_flag("--json", election_status_json, "print the JSON answer");
  auto* electorate_cmd =
      election_cmd->add_subcommand("electorate", "change the electorate by one member (on the admin)");
  electorate_cmd->require_subcommand(1);
  ClientArgs electorate_args;
  std::string electorate_node;
  auto* electorate_add = electorate_cmd->add_subcommand("add", "add an admin-capable node (by node id)");
  auto* electorate_remove = electorate_cmd->add_subcommand("remove", "remove a node (by node id)");
  for (auto* c : {electorate_add, electorate_remove}) {
    AddClientOptions(c, electorate_args);
    c->add_option("node_id", electorate_node, "node id (bzzz election status lists candidates)")->required();
  }

  auto* ucxl_cmd = app.add_subcommand("ucxl", "read and write context at UCXL addresses (UCXI)");
  ucxl_cmd->require_subcommand(1);
  ClientArgs ucxl_args;
  std::string ucxl_arg, ucxl_file, ucxl_content, ucxl_type = "text/plain; charset=utf-8";
  long long ucxl_steps = -1;
  int ucxl_limit = 100;
  bool ucxl_json = false;
  std::vector<std::pair<std::string, CLI::App*>> ucxl_ops;
  for (const auto& [op, help, positional] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"get", "print the content an address names", "address"},
           {"put", "store content (--file or --content) as the next version", "address"},
           {"delete", "delete (a tombstone version; the history stays)", "address"},
           {"navigate", "step back (--steps -N) or forward (--steps N) from an address", "address"},
           {"search", "search the latest versions (metadata and content)", "text"},
           {"announce", "provide an address's content in the DHT", "address"},
           {"discover", "list stored addresses matching a pattern (any/* wildcards)", "pattern"}}) {
    auto* c = ucxl_cmd->add_subcommand(op, help);
    AddClientOptions(c, ucxl_args);
    c->add_option(positional, ucxl_arg, positional)->required();
    c->add_flag("--json", ucxl_json, "print the JSON answer");
    if (op == "put") {
      auto* f = c->add_option("--file", ucxl_file, "file with the content");
      auto* t = c->add_option("--content", ucxl_content, "the content");
      f->excludes(t);
      c->add_option("--content-type", ucxl_type, "content type")->capture_default_str();
    }
    if (op == "navigate") c->add_option("--steps", ucxl_steps, "versions to move")->capture_default_str();
    if (op == "search" || op == "discover") {
      c->add_option("--limit", ucxl_limit, "at most this many")
          ->capture_default_str()
          ->check(CLI::Range(1, 1000));
    }
    ucxl_ops.emplace_back(op, c);
  }

  TaskCommands task_commands(app);
  ClusterCommands cluster_commands(app);

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

  auto client = [](ClientArgs& c) {
    c.options.timeout = std::chrono::milliseconds(c.timeout_ms);
    return c.options;
  };
  if (*serve) return Serve(serve_args);
  if (*health) return Report(Call(client(health_args), "GET", "/health"));
  if (*status) return Report(Call(client(status_args), "GET", "/admin/status"));
  if (*validate) return ConfigValidate(validate_args);
  if (*show) return ConfigShow(show_args, show_format);
  if (*migrate) return DbMigrate(migrate_args);
  if (*dbhealth) return DbHealthCheck(dbhealth_args);
  if (*dbconn) return DbTestConnection(dbconn_args);
  if (*token_hash) return TokenHash();
  if (*dht_bootstrap) return DhtBootstrap(bootstrap_args, bootstrap_port, bootstrap_host);
  if (*peers) return Peers(client(peers_args), peers_json);
  if (*peers_clear) return PeersClear(client(peers_clear_args), peers_clear_dir);
  if (*cache_clear) return DhtCacheClear(client(cache_clear_args), cache_clear_dir);
  if (*test_msg) return TestP2pMessage(client(test_msg_args), probe_timeout_ms, allow_alone, test_msg_json);
  if (*test_dht) return TestDhtOperations(client(test_dht_args), test_dht_json);
  for (const auto& [op, c] : ucxl_ops) {
    if (*c) {
      return Ucxl(client(ucxl_args), op, ucxl_arg, ucxl_file, ucxl_content, ucxl_type, ucxl_steps, ucxl_limit,
                  ucxl_json);
    }
  }
  if (auto code = task_commands.Run()) return *code;
  if (auto code = cluster_commands.Run()) return *code;
  if (*trigger) return TriggerElection(client(trigger_args), trigger_force, trigger_json);
  if (*election_status) return ElectionStatus(client(election_status_args), election_status_json);
  if (*electorate_add) return ElectorateChange(client(electorate_args), "add", electorate_node);
  if (*electorate_remove) return ElectorateChange(client(electorate_args), "remove", electorate_node);
  if (*version) {
    std::cout << "bzzz " << node::Version() << " (" << node::GitCommit() << ")\n";
    return kExitOk;
  }
  PrintError("no subcommand given");
  return kExitUsage;
}

}  // namespace bzzz::cli
