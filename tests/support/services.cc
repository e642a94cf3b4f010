#include "support/services.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/support.h"

namespace bzzz::testing {
namespace {

namespace fs = std::filesystem;

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

pid_t ReadPostmasterPid(const std::string& dir) {
  std::ifstream in(dir + "/data/postmaster.pid");
  long pid = -1;
  if (!(in >> pid)) return -1;
  return static_cast<pid_t>(pid);
}

}  // namespace

std::string PostgresServer::BinDir() {
  std::string best;
  int best_major = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string major = entry.path().filename().string();
    if (major.empty() || !std::all_of(major.begin(), major.end(), ::isdigit)) continue;
    if (!fs::exists(entry.path() / "bin" / "initdb", ec)) continue;
    if (std::stoi(major) > best_major) {
      best_major = std::stoi(major);
      best = (entry.path() / "bin").string();
    }
  }
  return best;
}

bool PostgresServer::Run(const std::string& command) const {
  const std::string as_user = geteuid() == 0 ? "runuser -u postgres -- sh -c " + Quote(command) : command;
  return std::system((as_user + " >>" + dir_ + "/setup.log 2>&1").c_str()) == 0;
}

PostgresServer::PostgresServer(std::uint16_t port) : port_(port != 0 ? port : FreeServicePort()) {
  const std::string bin = BinDir();
  if (bin.empty()) {
    error_ = "no PostgreSQL server installed (/usr/lib/postgresql/*/bin/initdb)";
    return;
  }
  char tmpl[] = "/tmp/bzzz-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  if (geteuid() == 0 && std::system(("chown postgres: " + dir_).c_str()) != 0) {
    error_ = "cannot hand " + dir_ + " to the postgres user";
    return;
  }
  if (!Run(bin + "/initdb -D " + dir_ + "/data -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8")) {
    error_ = "initdb failed: " + ReadFile(dir_ + "/setup.log");
    return;
  }
  ok_ = Start();
  if (!ok_) error_ = "the server did not start: " + ReadFile(dir_ + "/setup.log") + ReadFile(dir_ + "/server.log");
}

bool PostgresServer::Start() {
  const std::string options = "-p " + std::to_string(port_) + " -k " + dir_ +
                              " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200";
  if (!Run(BinDir() + "/pg_ctl -D " + dir_ + "/data -l " + dir_ + "/server.log -w -t 30 -o " + Quote(options) +
           " start")) {
    return false;
  }
  pid_ = ReadPostmasterPid(dir_);
  return pid_ > 0;
}

bool PostgresServer::WaitGone(pid_t pid) const {
  for (int i = 0; i < 600; ++i) {
    if (kill(pid, 0) != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool PostgresServer::Stop() {
  if (pid_ <= 0) return true;
  const pid_t pid = pid_;
  pid_ = -1;
  kill(pid, SIGINT);
  return WaitGone(pid);
}

bool PostgresServer::Crash() {
  if (pid_ <= 0) return true;
  const pid_t pid = pid_;
  pid_ = -1;
  kill(pid, SIGQUIT);
  return WaitGone(pid);
}

PostgresServer::~PostgresServer() {
  if (pid_ > 0) Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::vector<std::string> PostgresServer::NodeArgs(const std::string& database, int min_connections,
                                                  int max_connections) const {
  return {"--set", "storage.backend=postgres",
          "--set", "storage.postgres.host=127.0.0.1",
          "--set", "storage.postgres.port=" + std::to_string(port_),
          "--set", "storage.postgres.database=" + database,
          "--set", "storage.postgres.user=postgres",
          "--set", "storage.postgres.sslmode=disable",
          "--set", "storage.pool.min_connections=" + std::to_string(min_connections),
          "--set", "storage.pool.max_connections=" + std::to_string(max_connections)};
}

std::string PostgresServer::Sql(const std::string& sql, const std::string& database, bool* ok) const {
  const std::string command = BinDir() + "/psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " +
                              std::to_string(port_) + " -U postgres -d " + Quote(database) + " -c " + Quote(sql) +
                              " 2>&1";
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    if (ok != nullptr) *ok = false;
    return "popen failed";
  }
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  if (ok != nullptr) *ok = status == 0;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string PostgresServer::CreateDatabase(const std::string& name) const {
  bool ok = false;
  Sql("CREATE DATABASE " + name, "postgres", &ok);
  return ok ? name : "";
}

// ----- Redis -----

namespace {

std::string Capture(const std::string& command, bool* ok) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    if (ok != nullptr) *ok = false;
    return "popen failed";
  }
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int rc = pclose(pipe);
  if (ok != nullptr) *ok = rc == 0;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace

RedisServer::RedisServer(std::uint16_t port, std::string password)
    : port_(port != 0 ? port : FreeServicePort()), password_(std::move(password)) {
  if (std::system("command -v redis-server >/dev/null 2>&1") != 0) {
    error_ = "redis-server is not installed";
    return;
  }
  char tmpl[] = "/tmp/bzzz-redis-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  ok_ = Start();
  if (!ok_) error_ = "redis-server did not start: " + ReadFile(dir_ + "/server.log");
}

bool RedisServer::Start() {
  if (pid_ > 0) return true;
  std::string command = "redis-server --port " + std::to_string(port_) +
                        " --bind 127.0.0.1 --daemonize yes --dir " + dir_ + " --pidfile " + dir_ +
                        "/redis.pid --logfile " + dir_ + "/server.log --save '' --appendonly no";
  if (!password_.empty()) command += " --requirepass " + Quote(password_);
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) return false;
  for (int i = 0; i < 200; ++i) {
    bool ok = false;
    if (Cli("PING", &ok) == "PONG" && ok) {
      std::ifstream in(dir_ + "/redis.pid");
      long pid = -1;
      if (in >> pid) pid_ = static_cast<pid_t>(pid);
      return pid_ > 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

bool RedisServer::Stop() {
  if (pid_ <= 0) return true;
  const pid_t pid = pid_;
  pid_ = -1;
  kill(pid, SIGTERM);
  for (int i = 0; i < 600; ++i) {
    if (kill(pid, 0) != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  kill(pid, SIGKILL);
  return false;
}

std::string RedisServer::Cli(const std::string& args, bool* ok) const {
  std::string command = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_);
  if (!password_.empty()) command += " --no-auth-warning -a " + Quote(password_);
  return Capture(command + " " + args, ok);
}

RedisServer::~RedisServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

}  // namespace bzzz::testing
