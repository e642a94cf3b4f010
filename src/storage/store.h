// Storage: the node's durable state, one backend, one repository per domain.
//
// Each domain declares the repository it needs in its own directory
// (tasks/repository.h, ucxl/repository.h, audit/repository.h,
// hmmm/repository.h, slurp/repository.h; next users and tokens) and every
// backend implements all of them under
// src/storage/<backend>/, each domain with its own migrations. A Store is
// what is common to a backend: its schema, health, node facts, flush and
// close. Nothing above OpenStorage knows which backend it got.
//
// Thread safety: every method may be called from any thread concurrently,
// but not from an HTTP I/O thread (base/threads.h CheckMayBlock).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "audit/repository.h"
#include "hmmm/repository.h"
#include "slurp/repository.h"
#include "tasks/repository.h"
#include "ucxl/repository.h"

namespace bzzz::storage {

// One versioned schema step of a domain. Versions start at 1 and increase
// by one within the domain.
struct Migration {
  int version;
  std::string name;  // "initial", "tasks", ...
  std::string sql;   // statements in the backend's dialect, run in one transaction
};

// The schema of one domain ("node", "ucxl", "tasks", ...) in one backend.
// Domains are versioned independently, so two subsystems can add steps
// without agreeing on a shared sequence.
struct DomainMigrations {
  std::string domain;
  std::vector<Migration> steps;
};

struct MigrationState {
  // Steps applied and steps known, summed over the domains this binary knows
  // (the "schema version" that status and health report: pending steps are
  // latest_version - current_version).
  int current_version = 0;
  int latest_version = 0;
  struct Domain {
    std::string domain;
    int current = 0;  // highest applied version of the domain (0: none)
    int latest = 0;   // highest version this binary knows
  };
  std::vector<Domain> domains;
  // Steps applied by the call that returned this, as "domain/version name".
  std::vector<std::string> applied;
};

struct StoreHealth {
  bool reachable = false;      // a trivial query succeeded
  bool integrity_ok = false;   // the backend's own consistency check passed
  int schema_version = 0;
  int latest_version = 0;      // pending migrations when greater than schema_version
  std::chrono::microseconds latency{0};  // of the probe query
  std::string backend;         // "sqlite", "postgres"
  std::string location;        // file path or host:port/db, never a password
  std::uint64_t size_bytes = 0;
  std::string message;         // human summary or the error
  // The connection pool of a server backend (PostgreSQL); absent for SQLite.
  struct Pool {
    bool present = false;
    int open = 0;      // idle plus lent out
    int idle = 0;
    int in_use = 0;
    int waiting = 0;   // callers waiting for a connection
    int min = 0;
    int max = 0;
    std::uint64_t opened = 0;            // connections opened since start
    std::uint64_t discarded = 0;         // found broken and closed
    std::uint64_t timeouts = 0;          // acquisitions that gave up waiting
    std::uint64_t connect_failures = 0;
  } pool;
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "postgres".
  virtual std::string Backend() const = 0;

  // Applies every domain's pending steps in order (domains in the backend's
  // order), each step in its own transaction; a failed step is rolled back
  // and stops the run with its error, earlier steps stay. A domain whose
  // recorded version is newer than this binary's is FailedPrecondition.
  virtual Result<MigrationState> Migrate() = 0;

  // Current and latest schema versions without changing anything.
  virtual Result<MigrationState> SchemaState() = 0;

  // Round trip to the backend: connect (if needed) and run a trivial query.
  virtual Status TestConnection() = 0;

  // Reachability, integrity, schema version and size. Never throws; a
  // failure is reported in the returned fields.
  virtual StoreHealth HealthCheck() = 0;

  // Small durable key/value facts about the node (first start, ids).
  // Get returns NotFound for a missing key.
  virtual Result<std::string> GetMeta(const std::string& key) = 0;
  virtual Status PutMeta(const std::string& key, const std::string& value) = 0;

  // Makes everything written so far durable and compact (WAL checkpoint for
  // SQLite). Called at shutdown.
  virtual Status Flush() = 0;

  // Routine maintenance (`bzzz db vacuum`): rewrites the database to give
  // back the space of deleted rows and refreshes the query planner's
  // statistics (SQLite VACUUM and ANALYZE; VACUUM ANALYZE on PostgreSQL).
  // Takes the write lock for its duration; sizes are of the database files.
  struct VacuumResult {
    std::uint64_t bytes_before = 0;
    std::uint64_t bytes_after = 0;
  };
  virtual Result<VacuumResult> Vacuum() = 0;

  // Releases connections; later calls fail with Unavailable.
  virtual void Close() = 0;
};

// A backend opened over one database: its Store and a repository for each
// domain. Closing the store ends every repository (later calls fail with
// Unavailable).
struct Storage {
  std::shared_ptr<Store> store;
  std::shared_ptr<tasks::TaskRepository> tasks;
  std::shared_ptr<ucxl::ContextRepository> contexts;
  std::shared_ptr<audit::AuditRepository> audit;
  std::shared_ptr<hmmm::HmmmRepository> hmmm;
  std::shared_ptr<slurp::SlurpRepository> slurp;
};

// Opens the backend the configuration asks for (storage.backend), creating
// the data directory and database file when needed. Does not migrate.
// `node_id` names the node whose rows the repositories hold in a database
// shared by several nodes (PostgreSQL); without it only the Store works
// there (migrate, health). SQLite, one file per node, ignores it.
Result<Storage> OpenStorage(const config::Config& config, const std::string& node_id = "");

}  // namespace bzzz::storage
