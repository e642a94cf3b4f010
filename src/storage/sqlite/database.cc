// The SQLite database shared by the backend's Store and repositories:
// opening connections, the reader pool, Close(), and the error helpers.
#include "storage/sqlite/database.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "base/log.h"
#include "base/log_limiter.h"

namespace bzzz::storage::sqlite {
namespace {

using internal::DbHandle;

constexpr SubsystemLog kLog{"storage"};

// Enough for the HTTP workers' concurrent reads on our 2-core target; each
// reader costs a file descriptor and its page cache.
constexpr int kMaxReaders = 4;

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

enum class Role { kWriter, kReader, kCheckpointer };

Result<std::unique_ptr<SqliteConnection>> OpenConnection(const SqliteOptions& options, Role role) {
  // NOMUTEX: the Database already guarantees one thread per connection, so
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
    // A new database gets 8 KiB pages (SQLite's default is 4): a task's
    // row (about 1.4 KB for a small one) then wastes less of a page, and
    // the task writer's commits log fewer bytes per task. An existing
    // database keeps its page size; this does nothing there.
    if (SqlError e = Exec(conn->db(), "PRAGMA page_size=8192"); !e.ok()) return OpenError(e, options.path);
    // The next statement reads the file header: this is where a file that
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
  } else if (role == Role::kCheckpointer) {
    // The log's syncs during a checkpoint follow this connection's setting:
    // it must be the writer's. query_only: it runs checkpoints, never SQL
    // that writes.
    const char* pragmas = options.synchronous_full ? "PRAGMA synchronous=FULL; PRAGMA query_only=ON;"
                                                   : "PRAGMA synchronous=NORMAL; PRAGMA query_only=ON;";
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

}  // namespace

SqlError LastError(sqlite3* db, int rc) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return {};
  std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return {rc, std::move(message)};
}

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

Status PrepareError(sqlite3* db, std::string_view what) {
  SqlError e = LastError(db, sqlite3_extended_errcode(db));
  if (e.message.starts_with("no such table")) {
    return FailedPrecondition(std::string(kNotMigratedMessage));
  }
  if (e.ok()) e = {SQLITE_ERROR, "cannot prepare statement"};
  return RuntimeError(e, what);
}

SqlError Exec(sqlite3* db, const char* sql) {
  char* raw_message = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &raw_message);
  if (rc == SQLITE_OK) return {};
  std::string message = raw_message != nullptr ? raw_message : sqlite3_errstr(rc);
  sqlite3_free(raw_message);
  return {rc, std::move(message)};
}

SqlError QueryFirst(SqliteConnection& conn, std::string_view sql, std::string* out) {
  sqlite3_stmt* stmt = conn.Prepare(sql);
  if (stmt == nullptr) {
    SqlError e = LastError(conn.db(), sqlite3_extended_errcode(conn.db()));
    return e.ok() ? SqlError{SQLITE_ERROR, "cannot prepare statement"} : e;
  }
  StmtUse use(stmt);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW && out != nullptr) *out = ColumnText(stmt, 0);
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

Status BindBlob(sqlite3_stmt* stmt, int index, const std::string& value) {
  if (value.size() > static_cast<std::size_t>(INT_MAX)) return InvalidArgument("value too large");
  int rc = sqlite3_bind_blob(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (rc == SQLITE_TOOBIG) return InvalidArgument("value too large for SQLite");
  if (rc != SQLITE_OK) return Internal(std::string("binding a parameter: ") + sqlite3_errstr(rc));
  return {};
}

std::string ColumnText(sqlite3_stmt* stmt, int i) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return text ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))) : std::string();
}

Result<std::shared_ptr<Database>> Database::Open(SqliteOptions options) {
  return NoThrow("open SQLite database", [&]() -> Result<std::shared_ptr<Database>> {
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
    auto writer = OpenConnection(options, Role::kWriter);
    if (!writer.ok()) return writer.status();
    auto checkpointer = OpenConnection(options, Role::kCheckpointer);
    if (!checkpointer.ok()) return checkpointer.status();
    return std::shared_ptr<Database>(
        new Database(std::move(options), std::move(writer).value(), std::move(checkpointer).value()));
  });
}

Database::Database(SqliteOptions options, std::unique_ptr<SqliteConnection> writer,
                   std::unique_ptr<SqliteConnection> checkpointer)
    : options_(std::move(options)), writer_(std::move(writer)), checkpointer_(std::move(checkpointer)) {
  checkpoint_thread_ = NamedThread("sqlite-ckpt", [this] { CheckpointerLoop(); });
  sqlite3_wal_hook(writer_->db(), &Database::OnWalCommit, this);
}

int Database::Checkpoint(sqlite3* db, const char* schema, std::atomic<std::uint64_t>* copied) {
  int log_frames = 0, copied_frames = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied_frames);
  if (rc == SQLITE_OK) {
    if (copied_frames <= 0) return 0;
    copied->fetch_add(static_cast<std::uint64_t>(copied_frames), std::memory_order_relaxed);
    return copied_frames;
  }
  // Busy: another checkpoint runs; the next commit tries again. Anything
  // else leaves the log growing until a checkpoint succeeds.
  if ((rc & 0xff) == SQLITE_BUSY) return 0;
  static LogLimiter lines(1, std::chrono::minutes(1));
  std::uint64_t held = 0;
  if (lines.Allow(&held)) {
    kLog.warn("storage: a checkpoint of {} failed: {}{}", sqlite3_db_filename(db, schema), sqlite3_errmsg(db),
              held ? " (" + std::to_string(held) + " similar lines suppressed)" : "");
  }
  return 0;
}

void Database::SyncCheckpointedFiles() {
  // The database file first: the pass wrote its pages there. Then the log,
  // which the writer appended to meanwhile. These syncs are additional:
  // SQLite's own, which durability rests on, still happen in the catch-up;
  // they just find the pages already written. A failure is logged (the
  // disk is failing: the catch-up's own sync reports it to SQLite too).
  for (int op : {SQLITE_FCNTL_FILE_POINTER, SQLITE_FCNTL_JOURNAL_POINTER}) {
    sqlite3_file* file = nullptr;
    if (sqlite3_file_control(checkpointer_->db(), "main", op, &file) != SQLITE_OK) continue;
    if (file == nullptr || file->pMethods == nullptr) continue;
    if (const int rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL); rc != SQLITE_OK) {
      static LogLimiter lines(1, std::chrono::minutes(1));
      std::uint64_t held = 0;
      if (lines.Allow(&held)) {
        kLog.error("storage: syncing {} after a checkpoint failed: {}{}",
                   op == SQLITE_FCNTL_FILE_POINTER ? options_.path : options_.path + "-wal", sqlite3_errstr(rc),
                   held ? " (" + std::to_string(held) + " similar lines suppressed)" : "");
      }
    }
  }
  background_syncs_.fetch_add(1, std::memory_order_relaxed);
}

int Database::OnWalCommit(void* self, sqlite3* db, const char* schema, int frames) {
  auto* d = static_cast<Database*>(self);
  if (frames > d->longest_log_.load(std::memory_order_relaxed))
    d->longest_log_.store(frames, std::memory_order_relaxed);
  bool catch_up = false;
  {
    std::lock_guard lock(d->checkpoint_mu_);
    if (d->checkpoint_done_) {
      d->checkpoint_done_ = false;
      catch_up = true;
    } else if (frames >= kWalCheckpointFrames && !d->checkpoint_requested_ && !d->checkpoint_stop_) {
      d->checkpoint_requested_ = true;
      d->checkpoint_cv_.notify_one();
    }
  }
  if (catch_up || frames >= kWalInlineCheckpointFrames) Checkpoint(db, schema, &d->writer_frames_);
  return SQLITE_OK;
}

void Database::CheckpointerLoop() {
  std::unique_lock lock(checkpoint_mu_);
  for (;;) {
    checkpoint_cv_.wait(lock, [&] { return checkpoint_requested_ || checkpoint_stop_; });
    if (checkpoint_stop_) return;
    lock.unlock();
    if (Checkpoint(checkpointer_->db(), "main", &background_frames_) > 0) SyncCheckpointedFiles();
    lock.lock();
    checkpoint_requested_ = false;
    checkpoint_done_ = true;
  }
}

void Database::StopCheckpointer() {
  {
    std::lock_guard lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  checkpointer_.reset();
}

Result<Database::ReaderLease> Database::AcquireReader() {
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

void Database::ReleaseReader(std::unique_ptr<SqliteConnection> conn) {
  {
    std::lock_guard lock(pool_mu_);
    idle_readers_.push_back(std::move(conn));
  }
  pool_cv_.notify_one();
}

void Database::Close() {
  try {
    closed_.store(true, std::memory_order_release);
    std::unique_lock life(lifecycle_mu_);
    // No call is in flight now, so every reader is back in the pool.
    {
      std::lock_guard lock(pool_mu_);
      idle_readers_.clear();
      open_readers_ = 0;
    }
    StopCheckpointer();  // before the writer, which must be the last connection to close
    CheckMayBlock("storage write");
    std::lock_guard lock(writer_mu_);
    writer_.reset();  // the last connection to close checkpoints and removes the -wal file
  } catch (...) {
    // Only a failing mutex can throw here; the handles still close with the
    // database's destruction.
  }
}

}  // namespace bzzz::storage::sqlite
