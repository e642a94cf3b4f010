// Store: the node's durable state behind one interface.
//
// Everything above this header talks to a Store and never knows which
// backend it is. The embedded default is SQLite (storage/sqlite_store.h);
// a PostgreSQL backend implements the same interface for clusters.
// Later subsystems (tasks, UCXL versions, HMMM threads, audit log, users and
// tokens) add their repositories here, each behind this interface.
//
// Thread safety: every method may be called from any thread concurrently.
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

namespace bzzz::storage {

// One versioned schema step. Versions start at 1 and increase by one.
struct Migration {
  int version;
  std::string name;  // "initial", "tasks", ...
  std::string sql;   // statements in the backend's dialect, run in one transaction
};

struct MigrationState {
  int current_version = 0;   // highest applied version (0: empty database)
  int latest_version = 0;    // highest version this binary knows
  std::vector<int> applied;  // versions applied by the call that returned this
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
};

// One version of the content at a UCXL address (src/ucxl). The versions of
// a key are numbered 1, 2, ... in the order they were appended and never
// change; a delete appends a tombstone (no content).
struct ContextVersion {
  std::string key;               // ucxl::ContentKey: "ucxl://agent:role@project:task/path"
  std::uint64_t number = 0;      // assigned by AppendContextVersion
  std::string author_agent;
  std::string author_role;
  std::int64_t created_ms = 0;   // Unix milliseconds
  std::string content_type;
  std::uint64_t size = 0;        // of the content as given (before any sealing)
  std::string content_hash;      // hex SHA-256 of the content as given
  bool tombstone = false;
  // The node that wrote the version and its number in that node's own log.
  // Not stored: every version in this store is this node's (writer_number
  // == number here); ucxl::ContextStore fills both when it merges the
  // histories of several writers and renumbers `number` in the shared order.
  std::string writer;
  std::uint64_t writer_number = 0;
  bool operator==(const ContextVersion&) const = default;
};

// One task as the store keeps it (src/tasks). The store knows only the
// columns it filters and orders by; `doc` is the whole task as the tasks
// subsystem serializes it (attempts and events included).
struct TaskRow {
  std::string id;
  std::string idempotency_key;  // "" when none; unique otherwise
  std::string state;            // "queued", "running", "succeeded", "dead", ...
  std::string executor;
  std::string project;
  int priority = 0;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t seq = 0;         // creation order on this node, 1, 2, ...
  std::string doc;
  bool operator==(const TaskRow&) const = default;
};

// Filters of ListTasks; empty strings match everything. Rows come by seq,
// newest first, those with seq < before_seq when before_seq > 0.
struct TaskQuery {
  std::string state;
  std::string executor;
  std::string project;
  std::int64_t before_seq = 0;
  std::size_t limit = 100;
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "postgres".
  virtual std::string Backend() const = 0;

  // Applies pending migrations in order, each in its own transaction; a failed
  // step is rolled back and stops the run with its error, earlier steps stay.
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

  // --- UCXL context versions (append-only) ---
  // Appends `version` as the key's next version (its `number` is ignored and
  // returned set) with `stored` as its bytes (the content, or the content
  // sealed by the caller).
  virtual Result<ContextVersion> AppendContextVersion(ContextVersion version, const std::string& stored) = 0;
  // Every version of `key`, oldest first; empty when there is none.
  virtual Result<std::vector<ContextVersion>> ContextHistory(const std::string& key) = 0;
  // The stored bytes of one version; NotFound when there is no such version.
  virtual Result<std::string> ContextContent(const std::string& key, std::uint64_t number) = 0;
  // The latest version of every key whose latest version is not a tombstone
  // and whose key, content type, author or stored bytes contain `text`
  // (every live key when `text` is empty), at most `limit`, by key.
  virtual Result<std::vector<ContextVersion>> SearchContext(const std::string& text, std::size_t limit) = 0;
  // How many versions and how many stored bytes the store holds.
  struct ContextTotals {
    std::uint64_t versions = 0;
    std::uint64_t bytes = 0;
  };
  virtual Result<ContextTotals> ContextStats() = 0;

  // --- Tasks (src/tasks) ---
  // Inserts or replaces every row of `upserts` and deletes the ids of
  // `deletes`, all in one transaction (the tasks subsystem batches writes:
  // group commit). A row whose idempotency key another task holds is
  // refused with Conflict and nothing is written.
  virtual Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) = 0;
  // NotFound when there is no such task.
  virtual Result<TaskRow> GetTask(const std::string& id) = 0;
  virtual Result<TaskRow> FindTaskByIdempotencyKey(const std::string& key) = 0;
  virtual Result<std::vector<TaskRow>> ListTasks(const TaskQuery& query) = 0;
  // Every task whose state is one of `states`, oldest first.
  virtual Result<std::vector<TaskRow>> TasksInStates(const std::vector<std::string>& states) = 0;
  // Task counts by state, and the highest seq (0 without tasks).
  struct TaskTotals {
    std::vector<std::pair<std::string, std::uint64_t>> by_state;
    std::int64_t max_seq = 0;
  };
  virtual Result<TaskTotals> TaskStats() = 0;

  // Makes everything written so far durable and compact (WAL checkpoint for
  // SQLite). Called at shutdown.
  virtual Status Flush() = 0;

  // Releases connections; later calls fail with Unavailable.
  virtual void Close() = 0;
};

// Opens the store the configuration asks for (storage.backend), creating the
// data directory and database file when needed. Does not migrate.
Result<std::unique_ptr<Store>> OpenStore(const config::Config& config);

}  // namespace bzzz::storage
