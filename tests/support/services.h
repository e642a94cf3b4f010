// Real services for tests, started on loopback in a temporary directory and
// stopped by pid (../shared/reference/dependencies.md "Services in tests"):
// a PostgreSQL server of its own (initdb; never the packaged cluster) and a
// Redis server of its own (never the packaged one).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bzzz::testing {

class PostgresServer {
 public:
  // initdb into a fresh directory under /tmp (as the postgres user when run
  // as root: PostgreSQL refuses root) and starts the server on
  // 127.0.0.1:`port` (when 0, a free one below the ephemeral range:
  // FreeServicePort). ok() says whether it worked and error() why not.
  explicit PostgresServer(std::uint16_t port = 0);
  ~PostgresServer();  // stops the server and removes its directory
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }

  // Starts the server again after Stop() or Crash(); true once it accepts
  // connections.
  bool Start();
  // Fast shutdown (SIGINT to the postmaster: clients are disconnected,
  // everything committed is kept); returns once the process is gone.
  bool Stop();
  // Immediate shutdown (SIGQUIT): no checkpoint, recovery at the next start,
  // as after a crash.
  bool Crash();

  // Runs `sql` with psql as the superuser in `database`; returns its output
  // (unaligned, tuples only) and sets *ok.
  std::string Sql(const std::string& sql, const std::string& database = "postgres", bool* ok = nullptr) const;
  // A fresh, empty database; "" on failure.
  std::string CreateDatabase(const std::string& name) const;
  // The flags that put a node's store in `database` on this server, with
  // a pool of min..max connections.
  std::vector<std::string> NodeArgs(const std::string& database, int min_connections = 1,
                                    int max_connections = 4) const;
  // The directory of the PostgreSQL programs (initdb, pg_ctl, psql).
  static std::string BinDir();

 private:
  bool Run(const std::string& command) const;  // as the postgres user when root
  bool WaitGone(pid_t pid) const;

  bool ok_ = false;
  std::string error_;
  std::uint16_t port_ = 0;
  std::string dir_;
  pid_t pid_ = -1;
};

class RedisServer {
 public:
  // Starts redis-server on 127.0.0.1:`port` (when 0, a free one below the
  // ephemeral range: FreeServicePort), daemonized, with its directory and
  // pid file in a fresh directory under /tmp and persistence off;
  // `password` non-empty sets requirepass.
  explicit RedisServer(std::uint16_t port = 0, std::string password = "");
  ~RedisServer();  // stops the server and removes its directory
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Starts it again after Stop() (same port, empty: nothing was saved);
  // true once it answers PING.
  bool Start();
  // SIGTERM by pid; returns once the process is gone.
  bool Stop();
  // Runs redis-cli with `args` (shell words) against this server; returns
  // its output and sets *ok.
  std::string Cli(const std::string& args, bool* ok = nullptr) const;

 private:
  bool ok_ = false;
  std::string error_;
  std::uint16_t port_ = 0;
  std::string password_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace bzzz::testing
