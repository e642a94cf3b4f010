// The SQLite backend of Store.
//
// Concurrency: SQLite in WAL mode lets one writer and any number of readers
// work at once, but only on separate connections, and a connection opened
// with SQLITE_OPEN_NOMUTEX must be used by one thread at a time. So writes go
// through one connection under writer_mu_, and reads borrow a connection from
// a small pool; a read therefore never queues behind a write transaction.
//
// Lifetime: every call holds lifecycle_mu_ shared for its duration and Close()
// takes it exclusively, so Close() waits for calls in flight and tears the
// connections down only when nobody uses them. closed_ is also checked
// before taking the lock so that a steady stream of calls cannot starve
// Close().
#include "storage/sqlite_store.h"
#include "base/threads.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <system_error>
#include <utility>

#include "storage/sqlite_handle.h"

namespace bzzz::storage {
namespace {

using internal::DbHandle;
using internal::SqliteConnection;
using internal::StmtUse;

// Enough for the HTTP workers' concurrent reads on our 2-core target; each
// reader costs a file descriptor and its page cache.
constexpr int kMaxReaders = 4;

constexpr std::string_view kClosedMessage = "store is closed";
constexpr std::string_view kNotMigratedMessage = "database not migrated; run `bzzz db migrate`";

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  version    INTEGER PRIMARY KEY,"
    "  name       TEXT NOT NULL,"
    "  applied_at TEXT NOT NULL)";

// A failed SQLite call: its (extended) result code and message, captured at
// once because the next call on the connection replaces them.
struct SqlError {
  int code = SQLITE_OK;
  std::string message;

  bool ok() const { return code == SQLITE_OK; }
};

SqlError LastError(sqlite3* db, int rc) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return {};
  std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return {rc, std::move(message)};
}

// Failures a retry may cure (locks held by another process, I/O, a full
// disk) are Unavailable; the rest (bad SQL, constraint, corruption) are
// bugs or damage, so Internal.
bool IsTransient(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

Status RuntimeError(const SqlError& e, std::string_view what) {
  std::string message = std::string(what) + ": " + e.message;
  return IsTransient(e.code) ? Unavailable(std::move(message)) : Internal(std::move(message));
}

// A statement on a table that does not exist means the schema is behind the
// code, which the operator fixes with a migration, not a bug.
Status PrepareError(sqlite3* db, std::string_view what) {
  SqlError e = LastError(db, sqlite3_extended_errcode(db));
  if (e.message.starts_with("no such table")) {
    return FailedPrecondition(std::string(kNotMigratedMessage));
  }
  if (e.ok()) e = {SQLITE_ERROR, "cannot prepare statement"};
  return RuntimeError(e, what);
}

// Failures while opening: the path cannot be used (Unavailable) versus the
// file is there but holds something else (InvalidArgument).
Status OpenError(const SqlError& e, const std::string& path) {
  switch (e.code & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return InvalidArgument(path + " is not a usable SQLite database: " + e.message);
    default:
      if (IsTransient(e.code)) return Unavailable("cannot open database " + path + ": " + e.message);
      return Internal("cannot open database " + path + ": " + e.message);
  }
}

SqlError Exec(sqlite3* db, const char* sql) {
  char* raw_message = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &raw_message);
  if (rc == SQLITE_OK) return {};
  std::string message = raw_message != nullptr ? raw_message : sqlite3_errstr(rc);
  sqlite3_free(raw_message);
  return {rc, std::move(message)};
}

// Runs a (cached) single statement and returns the first column of its first
// row in *out; *out is left alone when there is no row.
SqlError QueryFirst(SqliteConnection& conn, std::string_view sql, std::string* out) {
  sqlite3_stmt* stmt = conn.Prepare(sql);
  if (stmt == nullptr) {
    SqlError e = LastError(conn.db(), sqlite3_extended_errcode(conn.db()));
    return e.ok() ? SqlError{SQLITE_ERROR, "cannot prepare statement"} : e;
  }
  StmtUse use(stmt);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW && out != nullptr) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    *out = text != nullptr ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)))
                           : std::string();
  }
  return LastError(conn.db(), rc);
}

SqlError QueryInt(SqliteConnection& conn, std::string_view sql, std::int64_t* out) {
  std::string text = "0";
  SqlError e = QueryFirst(conn, sql, &text);
  if (e.ok()) *out = std::strtoll(text.c_str(), nullptr, 10);
  return e;
}

Status BindText(sqlite3_stmt* stmt, int index, const std::string& value) {
  if (value.size() > static_cast<std::size_t>(INT_MAX)) return InvalidArgument("value too large");
  // SQLITE_STATIC: the caller's string outlives the statement's use, and
  // StmtUse clears the binding afterwards.
  int rc = sqlite3_bind_text(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (rc == SQLITE_TOOBIG) return InvalidArgument("value too large for SQLite");
  if (rc != SQLITE_OK) return Internal(std::string("binding a parameter: ") + sqlite3_errstr(rc));
  return {};
}

enum class Role { kWriter, kReader };

Result<std::unique_ptr<SqliteConnection>> OpenConnection(const SqliteOptions& options, Role role) {
  // NOMUTEX: the store already guarantees one thread per connection, so
  // SQLite's own per-connection mutex would be pure overhead.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (role == Role::kWriter) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags, nullptr);
  DbHandle db(raw);  // a handle comes back even on failure and must be closed
  if (rc != SQLITE_OK) return OpenError(LastError(db.get(), rc), options.path);
  sqlite3_extended_result_codes(db.get(), 1);
  auto timeout_ms = std::clamp<std::int64_t>(options.busy_timeout.count(), 0, INT_MAX);
  sqlite3_busy_timeout(db.get(), static_cast<int>(timeout_ms));
  // Without write access SQLite silently opens read-only; every write would
  // then fail later, far from the cause.
  if (sqlite3_db_readonly(db.get(), "main") == 1) {
    return Unavailable("cannot open database " + options.path + " for writing (read-only file or directory)");
  }

  auto conn = std::make_unique<SqliteConnection>(std::move(db));
  if (role == Role::kWriter) {
    // The first statement reads the file header: this is where a file that
    // is not a database shows up.
    std::string mode;
    if (SqlError e = QueryFirst(*conn, "PRAGMA journal_mode=WAL", &mode); !e.ok()) {
      return OpenError(e, options.path);
    }
    if (mode != "wal") {
      return Unavailable("cannot enable WAL on " + options.path + " (journal_mode is \"" + mode +
                         "\"); WAL needs a file on a local file system");
    }
    const char* pragmas = options.synchronous_full ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                                                   : "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;";
    if (SqlError e = Exec(conn->db(), pragmas); !e.ok()) return OpenError(e, options.path);
  } else {
    // A reader that tried to write would take the write lock behind the
    // writer's back; query_only makes that a loud error instead.
    if (SqlError e = Exec(conn->db(), "PRAGMA query_only=ON; PRAGMA foreign_keys=ON;"); !e.ok()) {
      return OpenError(e, options.path);
    }
  }
  return conn;
}

Status ValidateMigrations(const std::vector<Migration>& migrations) {
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    int expected = static_cast<int>(i) + 1;
    if (migrations[i].version != expected) {
      return Internal("invalid migration list: version " + std::to_string(migrations[i].version) +
                      " (\"" + migrations[i].name + "\") at position " + std::to_string(expected) +
                      "; versions must be 1, 2, 3, ... in order");
    }
  }
  return {};
}

int LatestVersion(const std::vector<Migration>& migrations) {
  return migrations.empty() ? 0 : migrations.back().version;
}

Status NewerThanBinary(std::int64_t current, int latest) {
  return FailedPrecondition("database schema version " + std::to_string(current) +
                            " is newer than this binary (" + std::to_string(latest) + "); upgrade bzzz");
}

// Highest applied version; 0 before the first Migrate().
Result<std::int64_t> ReadSchemaVersion(SqliteConnection& conn) {
  std::int64_t tables = 0;
  if (SqlError e = QueryInt(conn,
                            "SELECT COUNT(*) FROM sqlite_schema "
                            "WHERE type = 'table' AND name = 'schema_migrations'",
                            &tables);
      !e.ok()) {
    return RuntimeError(e, "reading the schema version");
  }
  if (tables == 0) return std::int64_t{0};
  std::int64_t version = 0;
  if (SqlError e = QueryInt(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &version);
      !e.ok()) {
    return RuntimeError(e, "reading the schema version");
  }
  return version;
}

std::uint64_t FileSizeOrZero(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::uint64_t>(size);
}

// Runs `body` and turns any exception (bad_alloc, system_error from a mutex)
// into Internal: nothing may escape the Store interface.
template <typename F>
auto NoThrow(std::string_view what, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return Internal(std::string(what) + ": " + e.what());
  } catch (...) {
    return Internal(std::string(what) + ": unknown exception");
  }
}

class SqliteStore final : public Store {
 public:
  SqliteStore(SqliteOptions options, std::unique_ptr<SqliteConnection> writer)
      : options_(std::move(options)), writer_(std::move(writer)) {}
  ~SqliteStore() override { Close(); }

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::string Backend() const override { return "sqlite"; }
  Result<MigrationState> Migrate() override;
  Result<MigrationState> SchemaState() override;
  Status TestConnection() override;
  StoreHealth HealthCheck() override;
  Result<std::string> GetMeta(const std::string& key) override;
  Status PutMeta(const std::string& key, const std::string& value) override;
  Result<ContextVersion> AppendContextVersion(ContextVersion version, const std::string& stored) override;
  Result<std::vector<ContextVersion>> ContextHistory(const std::string& key) override;
  Result<std::string> ContextContent(const std::string& key, std::uint64_t number) override;
  Result<std::vector<ContextVersion>> SearchContext(const std::string& text, std::size_t limit) override;
  Result<ContextTotals> ContextStats() override;
  Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) override;
  Result<TaskRow> GetTask(const std::string& id) override;
  Result<TaskRow> FindTaskByIdempotencyKey(const std::string& key) override;
  Result<std::vector<TaskRow>> ListTasks(const TaskQuery& query) override;
  Result<std::vector<TaskRow>> TasksInStates(const std::vector<std::string>& states) override;
  Result<TaskTotals> TaskStats() override;
  Status Flush() override;
  void Close() override;

 private:
  // A reader connection borrowed from the pool, returned when destroyed.
  class ReaderLease {
   public:
    ReaderLease(SqliteStore* store, std::unique_ptr<SqliteConnection> conn)
        : store_(store), conn_(std::move(conn)) {}
    ReaderLease(ReaderLease&& other) noexcept = default;
    ReaderLease& operator=(ReaderLease&&) = delete;
    ~ReaderLease() {
      if (conn_ != nullptr) store_->ReleaseReader(std::move(conn_));
    }
    SqliteConnection& operator*() const { return *conn_; }
    SqliteConnection* operator->() const { return conn_.get(); }

   private:
    SqliteStore* store_;
    std::unique_ptr<SqliteConnection> conn_;
  };

  // Holds off Close() while a call runs; false (and no lock) once closed.
  bool Enter(std::shared_lock<std::shared_mutex>& lock) {
    if (closed_.load(std::memory_order_acquire)) return false;
    lock = std::shared_lock<std::shared_mutex>(lifecycle_mu_);
    return !closed_.load(std::memory_order_acquire);
  }

  Result<ReaderLease> AcquireReader();
  // Runs `body` with a pooled reader connection, holding off Close(), with
  // NoThrow's error handling: the prologue of every read.
  template <typename F>
  auto WithReader(std::string_view what, F&& body) -> decltype(body(std::declval<SqliteConnection&>())) {
    using R = decltype(body(std::declval<SqliteConnection&>()));
    return NoThrow(what, [&]() -> R {
      std::shared_lock<std::shared_mutex> life;
      if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
      auto reader = AcquireReader();
      if (!reader.ok()) return reader.status();
      return body(**reader);
    });
  }
  void ReleaseReader(std::unique_ptr<SqliteConnection> conn);
  Status ApplyMigration(const Migration& migration);  // requires writer_mu_

  const SqliteOptions options_;

  std::atomic<bool> closed_{false};
  std::shared_mutex lifecycle_mu_;  // shared: a call in flight; exclusive: Close()

  std::mutex writer_mu_;
  std::unique_ptr<SqliteConnection> writer_;  // guarded by writer_mu_

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_readers_;  // guarded by pool_mu_
  int open_readers_ = 0;  // idle plus lent out; guarded by pool_mu_
};

Result<SqliteStore::ReaderLease> SqliteStore::AcquireReader() {
  CheckMayBlock("storage read");
  std::unique_lock lock(pool_mu_);
  pool_cv_.wait(lock, [&] { return !idle_readers_.empty() || open_readers_ < kMaxReaders; });
  if (!idle_readers_.empty()) {
    std::unique_ptr<SqliteConnection> conn = std::move(idle_readers_.back());
    idle_readers_.pop_back();
    return ReaderLease(this, std::move(conn));
  }
  // Reserve the slot, then open outside the lock: opening touches the disk
  // and must not hold up callers that only want an idle reader back.
  ++open_readers_;
  lock.unlock();
  auto conn = OpenConnection(options_, Role::kReader);
  if (!conn.ok()) {
    lock.lock();
    --open_readers_;
    lock.unlock();
    pool_cv_.notify_one();
    return conn.status();
  }
  return ReaderLease(this, std::move(conn).value());
}

void SqliteStore::ReleaseReader(std::unique_ptr<SqliteConnection> conn) {
  {
    std::lock_guard lock(pool_mu_);
    idle_readers_.push_back(std::move(conn));
  }
  pool_cv_.notify_one();
}

Status SqliteStore::ApplyMigration(const Migration& m) {
  sqlite3* db = writer_->db();
  const std::string step = "migration " + std::to_string(m.version) + " (\"" + m.name + "\")";
  auto fail = [&](const SqlError& e) {
    // Some errors already rolled the transaction back; a second ROLLBACK
    // would only replace the message we want to report.
    if (sqlite3_get_autocommit(db) == 0) (void)Exec(db, "ROLLBACK");
    std::string message = step + " failed: " + e.message;
    return IsTransient(e.code) ? Unavailable(std::move(message)) : Internal(std::move(message));
  };

  // IMMEDIATE takes the write lock up front, so a concurrent writer in
  // another process makes us wait (busy timeout) instead of failing mid-way.
  if (SqlError e = Exec(db, "BEGIN IMMEDIATE"); !e.ok()) return fail(e);
  if (SqlError e = Exec(db, m.sql.c_str()); !e.ok()) return fail(e);

  sqlite3_stmt* record = writer_->Prepare(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, "
      // ISO 8601 UTC with milliseconds, the format of FormatIso8601.
      "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
  if (record == nullptr) return fail(LastError(db, sqlite3_extended_errcode(db)));
  {
    StmtUse use(record);
    sqlite3_bind_int(record, 1, m.version);
    if (Status s = BindText(record, 2, m.name); !s.ok()) return fail({SQLITE_ERROR, s.message()});
    int rc = sqlite3_step(record);
    if (rc != SQLITE_DONE) return fail(LastError(db, rc));
  }
  if (SqlError e = Exec(db, "COMMIT"); !e.ok()) return fail(e);
  return {};
}

Result<MigrationState> SqliteStore::Migrate() {
  return NoThrow("migrate", [&]() -> Result<MigrationState> {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    // Validate before touching the database: a broken list is a bug in this
    // binary and must not leave a half-migrated schema behind.
    if (Status s = ValidateMigrations(options_.migrations); !s.ok()) return s;

    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    if (SqlError e = Exec(writer_->db(), kCreateMigrationsTable); !e.ok()) {
      return RuntimeError(e, "creating schema_migrations");
    }
    std::int64_t current = 0;
    if (SqlError e = QueryInt(*writer_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &current);
        !e.ok()) {
      return RuntimeError(e, "reading the schema version");
    }
    MigrationState state;
    state.latest_version = LatestVersion(options_.migrations);
    if (current > state.latest_version) return NewerThanBinary(current, state.latest_version);
    state.current_version = static_cast<int>(current);

    for (const Migration& m : options_.migrations) {
      if (m.version <= current) continue;
      if (Status s = ApplyMigration(m); !s.ok()) return s;
      state.applied.push_back(m.version);
      state.current_version = m.version;
    }
    return state;
  });
}

Result<MigrationState> SqliteStore::SchemaState() {
  return NoThrow("schema state", [&]() -> Result<MigrationState> {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    if (Status s = ValidateMigrations(options_.migrations); !s.ok()) return s;
    auto reader = AcquireReader();
    if (!reader.ok()) return reader.status();
    auto current = ReadSchemaVersion(**reader);
    if (!current.ok()) return current.status();
    MigrationState state;
    state.current_version = static_cast<int>(*current);
    state.latest_version = LatestVersion(options_.migrations);
    return state;
  });
}

Status SqliteStore::TestConnection() {
  return NoThrow("test connection", [&]() -> Status {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    auto reader = AcquireReader();
    if (!reader.ok()) return reader.status();
    if (SqlError e = QueryFirst(**reader, "SELECT 1", nullptr); !e.ok()) return RuntimeError(e, "SELECT 1");
    return {};
  });
}

StoreHealth SqliteStore::HealthCheck() {
  StoreHealth health;
  try {
    health.backend = "sqlite";
    health.location = options_.path;
    health.latest_version = LatestVersion(options_.migrations);
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) {
      health.message = kClosedMessage;
      return health;
    }
    health.size_bytes = FileSizeOrZero(options_.path) + FileSizeOrZero(options_.path + "-wal");

    auto reader = AcquireReader();
    if (!reader.ok()) {
      health.message = reader.status().message();
      return health;
    }
    SqliteConnection& conn = **reader;
    auto start = std::chrono::steady_clock::now();
    SqlError probe = QueryFirst(conn, "SELECT 1", nullptr);
    health.latency =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    if (!probe.ok()) {
      health.message = RuntimeError(probe, "SELECT 1").message();
      return health;
    }
    health.reachable = true;

    // quick_check skips the index cross-checks of integrity_check, so it stays
    // O(database size) without the sorting; it returns "ok" or the problems.
    std::string check;
    SqlError integrity = QueryFirst(conn, "PRAGMA quick_check", &check);
    health.integrity_ok = integrity.ok() && check == "ok";

    auto version = ReadSchemaVersion(conn);
    if (version.ok()) health.schema_version = static_cast<int>(*version);

    if (!integrity.ok()) {
      health.message = RuntimeError(integrity, "integrity check").message();
    } else if (!health.integrity_ok) {
      health.message = "integrity check failed: " + check;
    } else if (!version.ok()) {
      health.message = version.status().message();
    } else if (Status s = ValidateMigrations(options_.migrations); !s.ok()) {
      health.message = s.message();
    } else if (health.schema_version > health.latest_version) {
      health.message = NewerThanBinary(health.schema_version, health.latest_version).message();
    } else if (int pending = health.latest_version - health.schema_version; pending > 0) {
      health.message =
          std::to_string(pending) + (pending == 1 ? " pending migration" : " pending migrations");
    } else {
      health.message = "ok";
    }
  } catch (const std::exception& e) {
    health.message = std::string("health check failed: ") + e.what();
  } catch (...) {
    health.message = "health check failed: unknown exception";
  }
  return health;
}

Result<std::string> SqliteStore::GetMeta(const std::string& key) {
  return WithReader("get meta", [&](SqliteConnection& conn) -> Result<std::string> {
    sqlite3_stmt* stmt = conn.Prepare("SELECT value FROM node_meta WHERE key = ?1");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading node_meta");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return NotFound("no node meta \"" + key + "\"");
    if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading node_meta");
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    if (text == nullptr) return std::string();
    return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)));
  });
}

Status SqliteStore::PutMeta(const std::string& key, const std::string& value) {
  return NoThrow("put meta", [&]() -> Status {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    sqlite3_stmt* stmt = writer_->Prepare(
        "INSERT INTO node_meta (key, value, updated_at) "
        "VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    if (stmt == nullptr) return PrepareError(writer_->db(), "writing node_meta");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    if (Status s = BindText(stmt, 2, value); !s.ok()) return s;
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return RuntimeError(LastError(writer_->db(), rc), "writing node_meta");
    return {};
  });
}

namespace {

constexpr std::string_view kVersionColumns =
    "key, number, author_agent, author_role, created_ms, content_type, size, content_hash, tombstone";

std::string ColumnText(sqlite3_stmt* stmt, int i) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return text ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))) : std::string();
}

ContextVersion ReadVersion(sqlite3_stmt* stmt) {
  ContextVersion v;
  v.key = ColumnText(stmt, 0);
  v.number = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1));
  v.author_agent = ColumnText(stmt, 2);
  v.author_role = ColumnText(stmt, 3);
  v.created_ms = sqlite3_column_int64(stmt, 4);
  v.content_type = ColumnText(stmt, 5);
  v.size = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 6));
  v.content_hash = ColumnText(stmt, 7);
  v.tombstone = sqlite3_column_int64(stmt, 8) != 0;
  return v;
}

Status BindBlob(sqlite3_stmt* stmt, int index, const std::string& value) {
  if (value.size() > static_cast<std::size_t>(INT_MAX)) return InvalidArgument("value too large");
  int rc = sqlite3_bind_blob(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (rc == SQLITE_TOOBIG) return InvalidArgument("value too large for SQLite");
  if (rc != SQLITE_OK) return Internal(std::string("binding a parameter: ") + sqlite3_errstr(rc));
  return {};
}

}  // namespace

Result<ContextVersion> SqliteStore::AppendContextVersion(ContextVersion v, const std::string& stored) {
  return NoThrow("append context version", [&]() -> Result<ContextVersion> {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    // One statement under the writer lock: the number is the key's next.
    sqlite3_stmt* stmt = writer_->Prepare(
        "INSERT INTO context_versions (key, number, author_agent, author_role, created_ms, content_type, size, "
        "content_hash, tombstone, content) VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM context_versions "
        "WHERE key = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING number");
    if (stmt == nullptr) return PrepareError(writer_->db(), "writing context_versions");
    StmtUse use(stmt);
    for (auto [i, text] : {std::pair{1, &v.key}, {2, &v.author_agent}, {3, &v.author_role}, {5, &v.content_type},
                           {7, &v.content_hash}}) {
      if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
    }
    sqlite3_bind_int64(stmt, 4, v.created_ms);
    sqlite3_bind_int64(stmt, 6, static_cast<sqlite3_int64>(v.size));
    sqlite3_bind_int64(stmt, 8, v.tombstone ? 1 : 0);
    if (Status s = BindBlob(stmt, 9, stored); !s.ok()) return s;
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) return RuntimeError(LastError(writer_->db(), rc), "writing context_versions");
    v.number = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return RuntimeError(LastError(writer_->db(), rc), "writing context_versions");
    return v;
  });
}

Result<std::vector<ContextVersion>> SqliteStore::ContextHistory(const std::string& key) {
  return WithReader("context history", [&](SqliteConnection& conn) -> Result<std::vector<ContextVersion>> {
    sqlite3_stmt* stmt = conn.Prepare(std::string("SELECT ") + std::string(kVersionColumns) +
                                      " FROM context_versions WHERE key = ?1 ORDER BY number");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading context_versions");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    std::vector<ContextVersion> out;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadVersion(stmt));
    if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading context_versions");
    return out;
  });
}

Result<std::string> SqliteStore::ContextContent(const std::string& key, std::uint64_t number) {
  return WithReader("context content", [&](SqliteConnection& conn) -> Result<std::string> {
    sqlite3_stmt* stmt = conn.Prepare("SELECT content FROM context_versions WHERE key = ?1 AND number = ?2");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading context_versions");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(number));
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return NotFound("no version " + std::to_string(number) + " of " + key);
    if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading context_versions");
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, 0));
    return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0))) : std::string();
  });
}

Result<std::vector<ContextVersion>> SqliteStore::SearchContext(const std::string& text, std::size_t limit) {
  return WithReader("search context", [&](SqliteConnection& conn) -> Result<std::vector<ContextVersion>> {
    sqlite3_stmt* stmt = conn.Prepare(
        std::string("SELECT ") + std::string(kVersionColumns) +
        " FROM context_versions v WHERE number = (SELECT MAX(number) FROM context_versions w WHERE w.key = v.key) "
        "AND tombstone = 0 AND (?1 = '' OR instr(key, ?1) > 0 OR instr(content_type, ?1) > 0 OR "
        "instr(author_agent, ?1) > 0 OR instr(author_role, ?1) > 0 OR instr(content, CAST(?1 AS BLOB)) > 0) "
        "ORDER BY key LIMIT ?2");
    if (stmt == nullptr) return PrepareError(conn.db(), "searching context_versions");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, text); !s.ok()) return s;
    sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(std::min<std::size_t>(limit, 1u << 30)));
    std::vector<ContextVersion> out;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadVersion(stmt));
    if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "searching context_versions");
    return out;
  });
}

Result<Store::ContextTotals> SqliteStore::ContextStats() {
  return WithReader("context stats", [&](SqliteConnection& conn) -> Result<ContextTotals> {
    sqlite3_stmt* stmt = conn.Prepare("SELECT COUNT(*), COALESCE(SUM(length(content)), 0) FROM context_versions");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading context_versions");
    StmtUse use(stmt);
    if (int rc = sqlite3_step(stmt); rc != SQLITE_ROW) {
      return RuntimeError(LastError(conn.db(), rc), "reading context_versions");
    }
    return ContextTotals{static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0)),
                         static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1))};
  });
}

// --- tasks ---

namespace {

constexpr std::string_view kTaskColumns =
    "id, COALESCE(idempotency_key, ''), state, executor, project, priority, created_ms, updated_ms, seq, doc";

TaskRow ReadTask(sqlite3_stmt* stmt) {
  TaskRow row;
  row.id = ColumnText(stmt, 0);
  row.idempotency_key = ColumnText(stmt, 1);
  row.state = ColumnText(stmt, 2);
  row.executor = ColumnText(stmt, 3);
  row.project = ColumnText(stmt, 4);
  row.priority = sqlite3_column_int(stmt, 5);
  row.created_ms = sqlite3_column_int64(stmt, 6);
  row.updated_ms = sqlite3_column_int64(stmt, 7);
  row.seq = sqlite3_column_int64(stmt, 8);
  row.doc = ColumnText(stmt, 9);
  return row;
}

// Runs a prepared query and collects its rows.
Result<std::vector<TaskRow>> CollectTasks(SqliteConnection& conn, sqlite3_stmt* stmt) {
  std::vector<TaskRow> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadTask(stmt));
  if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading tasks");
  return out;
}

}  // namespace

Status SqliteStore::WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) {
  return NoThrow("write tasks", [&]() -> Status {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    sqlite3* db = writer_->db();
    auto fail = [&](const SqlError& e) -> Status {
      if (sqlite3_get_autocommit(db) == 0) (void)Exec(db, "ROLLBACK");
      if ((e.code & 0xff) == SQLITE_CONSTRAINT) return Conflict("writing tasks: " + e.message);
      return RuntimeError(e, "writing tasks");
    };
    if (SqlError e = Exec(db, "BEGIN IMMEDIATE"); !e.ok()) return fail(e);
    sqlite3_stmt* put = writer_->Prepare(
        "INSERT INTO tasks (id, idempotency_key, state, executor, project, priority, created_ms, updated_ms, seq, doc) "
        "VALUES (?1, NULLIF(?2, ''), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO UPDATE SET "
        "state = excluded.state, priority = excluded.priority, updated_ms = excluded.updated_ms, doc = excluded.doc");
    if (put == nullptr) return fail(LastError(db, sqlite3_extended_errcode(db)));
    for (const TaskRow& row : upserts) {
      StmtUse use(put);
      for (auto [i, text] : {std::pair{1, &row.id}, {2, &row.idempotency_key}, {3, &row.state}, {4, &row.executor},
                             {5, &row.project}, {10, &row.doc}}) {
        if (Status s = BindText(put, i, *text); !s.ok()) return fail({SQLITE_ERROR, s.message()});
      }
      sqlite3_bind_int(put, 6, row.priority);
      sqlite3_bind_int64(put, 7, row.created_ms);
      sqlite3_bind_int64(put, 8, row.updated_ms);
      sqlite3_bind_int64(put, 9, row.seq);
      if (int rc = sqlite3_step(put); rc != SQLITE_DONE) return fail(LastError(db, rc));
    }
    if (!deletes.empty()) {
      sqlite3_stmt* del = writer_->Prepare("DELETE FROM tasks WHERE id = ?1");
      if (del == nullptr) return fail(LastError(db, sqlite3_extended_errcode(db)));
      for (const std::string& id : deletes) {
        StmtUse use(del);
        if (Status s = BindText(del, 1, id); !s.ok()) return fail({SQLITE_ERROR, s.message()});
        if (int rc = sqlite3_step(del); rc != SQLITE_DONE) return fail(LastError(db, rc));
      }
    }
    if (SqlError e = Exec(db, "COMMIT"); !e.ok()) return fail(e);
    return {};
  });
}

Result<TaskRow> SqliteStore::GetTask(const std::string& id) {
  return WithReader("get task", [&](SqliteConnection& conn) -> Result<TaskRow> {
    sqlite3_stmt* stmt = conn.Prepare(std::string("SELECT ") + std::string(kTaskColumns) + " FROM tasks WHERE id = ?1");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, id); !s.ok()) return s;
    auto rows = CollectTasks(conn, stmt);
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return NotFound("no task " + id);
    return std::move(rows->front());
  });
}

Result<TaskRow> SqliteStore::FindTaskByIdempotencyKey(const std::string& key) {
  return WithReader("find task", [&](SqliteConnection& conn) -> Result<TaskRow> {
    sqlite3_stmt* stmt =
        conn.Prepare(std::string("SELECT ") + std::string(kTaskColumns) + " FROM tasks WHERE idempotency_key = ?1");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    auto rows = CollectTasks(conn, stmt);
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return NotFound("no task with idempotency key " + key);
    return std::move(rows->front());
  });
}

Result<std::vector<TaskRow>> SqliteStore::ListTasks(const TaskQuery& q) {
  return WithReader("list tasks", [&](SqliteConnection& conn) -> Result<std::vector<TaskRow>> {
    sqlite3_stmt* stmt = conn.Prepare(std::string("SELECT ") + std::string(kTaskColumns) +
                                      " FROM tasks WHERE (?1 = '' OR state = ?1) AND (?2 = '' OR executor = ?2) AND "
                                      "(?3 = '' OR project = ?3) AND (?4 <= 0 OR seq < ?4) ORDER BY seq DESC LIMIT ?5");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
    StmtUse use(stmt);
    for (auto [i, text] : {std::pair{1, &q.state}, {2, &q.executor}, {3, &q.project}}) {
      if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
    }
    sqlite3_bind_int64(stmt, 4, q.before_seq);
    sqlite3_bind_int64(stmt, 5, static_cast<sqlite3_int64>(std::min<std::size_t>(q.limit, 1u << 30)));
    return CollectTasks(conn, stmt);
  });
}

Result<std::vector<TaskRow>> SqliteStore::TasksInStates(const std::vector<std::string>& states) {
  return WithReader("tasks in states", [&](SqliteConnection& conn) -> Result<std::vector<TaskRow>> {
    sqlite3_stmt* stmt = conn.Prepare(std::string("SELECT ") + std::string(kTaskColumns) +
                                      " FROM tasks WHERE state = ?1 ORDER BY seq");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
    std::vector<TaskRow> out;
    for (const std::string& state : states) {
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, state); !s.ok()) return s;
      auto rows = CollectTasks(conn, stmt);
      if (!rows.ok()) return rows.status();
      for (auto& r : *rows) out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const TaskRow& a, const TaskRow& b) { return a.seq < b.seq; });
    return out;
  });
}

Result<Store::TaskTotals> SqliteStore::TaskStats() {
  return WithReader("task stats", [&](SqliteConnection& conn) -> Result<TaskTotals> {
    TaskTotals totals;
    sqlite3_stmt* stmt = conn.Prepare("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
    {
      StmtUse use(stmt);
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        totals.by_state.emplace_back(ColumnText(stmt, 0), static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1)));
      }
      if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading tasks");
    }
    sqlite3_stmt* max = conn.Prepare("SELECT COALESCE(MAX(seq), 0) FROM tasks");
    if (max == nullptr) return PrepareError(conn.db(), "reading tasks");
    StmtUse use(max);
    if (int rc = sqlite3_step(max); rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading tasks");
    totals.max_seq = sqlite3_column_int64(max, 0);
    return totals;
  });
}

Status SqliteStore::Flush() {
  return NoThrow("flush", [&]() -> Status {
    std::shared_lock<std::shared_mutex> life;
    if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    // TRUNCATE copies the whole log into the database, then cuts the -wal
    // file to zero bytes; it waits (busy timeout) for readers still in the
    // log. The first result column is 1 when it could not finish.
    std::string busy;
    if (SqlError e = QueryFirst(*writer_, "PRAGMA wal_checkpoint(TRUNCATE)", &busy); !e.ok()) {
      return RuntimeError(e, "WAL checkpoint");
    }
    if (busy != "0") return Unavailable("WAL checkpoint could not finish: readers are still using the log");
    return {};
  });
}

void SqliteStore::Close() {
  try {
    closed_.store(true, std::memory_order_release);
    std::unique_lock life(lifecycle_mu_);
    // No call is in flight now, so every reader is back in the pool.
    {
      std::lock_guard lock(pool_mu_);
      idle_readers_.clear();
      open_readers_ = 0;
    }
    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    writer_.reset();  // the last connection to close checkpoints and removes the -wal file
  } catch (...) {
    // Only a failing mutex can throw here; the handles still close with the
    // store's destruction.
  }
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  return NoThrow("open SQLite store", [&]() -> Result<std::unique_ptr<Store>> {
    if (options.path.empty()) return InvalidArgument("SQLite database path is empty");
    // We open connections with NOMUTEX; that is only allowed when the library
    // was built thread-safe at all.
    if (sqlite3_threadsafe() == 0) return Internal("SQLite was built without thread support");

    std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec) return Unavailable("cannot create directory " + parent.string() + ": " + ec.message());
    }

    SqliteOptions effective = options;
    if (effective.migrations.empty()) effective.migrations = SqliteMigrations();
    auto writer = OpenConnection(effective, Role::kWriter);
    if (!writer.ok()) return writer.status();
    auto store = std::make_unique<SqliteStore>(std::move(effective), std::move(writer).value());
    return std::unique_ptr<Store>(std::move(store));
  });
}

}  // namespace bzzz::storage
