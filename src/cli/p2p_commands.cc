#include "cli/p2p_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/json.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace bzzz::cli {

using nlohmann::json;

namespace {

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
  std::printf("DHT cache cleared: %d file(s), %d byte(s), %d record(s) from the memory cache\n",
              body->value("files", 0), body->value("bytes", 0), body->value("memory_entries", 0));
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

}  // namespace

struct P2pCommands::Args {
  ClientArgs peers, peers_clear, cache_clear, test_msg, test_dht;
  bool peers_json = false, test_msg_json = false, test_dht_json = false, allow_alone = false;
  std::string peers_clear_dir, cache_clear_dir;
  int probe_timeout_ms = 3000;
  CLI::App *peers_cmd = nullptr, *peers_clear_cmd = nullptr, *cache_clear_cmd = nullptr,
           *test_msg_cmd = nullptr, *test_dht_cmd = nullptr;
};

P2pCommands::P2pCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  a.peers_cmd = app.add_subcommand("peers", "list the peers a running node sees");
  AddClientOptions(a.peers_cmd, a.peers);
  a.peers_cmd->add_flag("--json", a.peers_json, "print the JSON answer");

  auto* p2p_cmd = app.add_subcommand("p2p", "P2P maintenance");
  p2p_cmd->require_subcommand(1);
  auto* p2p_peers = p2p_cmd->add_subcommand("peers", "the peer store");
  p2p_peers->require_subcommand(1);
  a.peers_clear_cmd =
      p2p_peers->add_subcommand("clear", "clear the peer store (running node, or --data-dir offline)");
  AddClientOptions(a.peers_clear_cmd, a.peers_clear);
  a.peers_clear_cmd->add_option("--data-dir", a.peers_clear_dir,
                                "clear the store of a stopped node's data directory");

  auto* dht_cmd = app.add_subcommand("dht", "DHT maintenance");
  dht_cmd->require_subcommand(1);
  auto* dht_cache = dht_cmd->add_subcommand("cache", "the local DHT cache");
  dht_cache->require_subcommand(1);
  a.cache_clear_cmd =
      dht_cache->add_subcommand("clear", "empty <data_dir>/dht/cache (running node, or --data-dir)");
  AddClientOptions(a.cache_clear_cmd, a.cache_clear);
  a.cache_clear_cmd->add_option("--data-dir", a.cache_clear_dir,
                                "clear the cache of a stopped node's data directory");

  a.test_msg_cmd = app.add_subcommand("test-p2p-message",
                                      "probe every known peer over pubsub; exit 0 only if all "
                                      "answered");
  AddClientOptions(a.test_msg_cmd, a.test_msg);
  a.test_msg_cmd->add_option("--probe-timeout-ms", a.probe_timeout_ms, "how long to wait for answers")
      ->capture_default_str()
      ->check(CLI::Range(1, 60000));
  a.test_msg_cmd->add_flag("--allow-alone", a.allow_alone, "succeed on a node without peers");
  a.test_msg_cmd->add_flag("--json", a.test_msg_json, "print the JSON answer");

  a.test_dht_cmd = app.add_subcommand("test-dht-operations",
                                      "put, get, announce and discover on the live DHT; "
                                      "non-zero exit on any failure");
  AddClientOptions(a.test_dht_cmd, a.test_dht);
  a.test_dht_cmd->add_flag("--json", a.test_dht_json, "print the JSON answer");
}

P2pCommands::~P2pCommands() = default;

std::optional<int> P2pCommands::Run() {
  Args& a = *args_;
  if (*a.peers_cmd) return Peers(ClientFrom(a.peers), a.peers_json);
  if (*a.peers_clear_cmd) return PeersClear(ClientFrom(a.peers_clear), a.peers_clear_dir);
  if (*a.cache_clear_cmd) return DhtCacheClear(ClientFrom(a.cache_clear), a.cache_clear_dir);
  if (*a.test_msg_cmd) {
    return TestP2pMessage(ClientFrom(a.test_msg), a.probe_timeout_ms, a.allow_alone, a.test_msg_json);
  }
  if (*a.test_dht_cmd) return TestDhtOperations(ClientFrom(a.test_dht), a.test_dht_json);
  return std::nullopt;
}

}  // namespace bzzz::cli
