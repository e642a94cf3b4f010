// Private to the SQLite backend: one database file shared by the backend's
// Store and its repositories, and the helpers every one of them uses.
//
// Concurrency: SQLite in WAL mode lets one writer and any number of readers
// work at once, but only on separate connections, and a connection opened
// with SQLITE_OPEN_NOMUTEX must be used by one thread at a time. So writes go
// through one connection under a mutex, and reads borrow a connection from a
// small pool; a read therefore never queues behind a write transaction.
//
// Lifetime: every call holds the lifecycle lock shared for its duration and
// Close() takes it exclusively, so Close() waits for calls in flight and
// tears the connections down only when nobody uses them. A closed flag is
// also checked before taking the lock so that a steady stream of calls
// cannot starve Close().
//
// Checkpoints: left to SQLite, the commit that takes the write-ahead log
// past kWalCheckpointFrames copies the log into the database file itself,
// with a sync of each (milliseconds), and every writer waits behind it. So
// the writer's commit hook hands that work to a checkpointer thread with a
// connection of its own, which copies while the writer goes on committing.
// A log can only start over once all of it is copied, and the writer adds to
// it meanwhile, so after each background checkpoint the writer's next commit
// copies the little that was added since (the catch-up), and the log starts
// over at the following write. SQLite syncs the database file only after a
// checkpoint that copied the whole log, i.e. in the catch-up: so the
// checkpointer syncs the file (and the log) itself after its pass, and the
// catch-up's syncs, on the writer's thread, find little left to write. Should the checkpointer fall behind, the
// writer checkpoints itself past kWalInlineCheckpointFrames, as SQLite
// would. Both connections use the same synchronous setting, so what a
// commit and a checkpoint promise is SQLite's, unchanged.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/threads.h"
#include "storage/sqlite/connection.h"
#include "storage/sqlite/sqlite.h"

namespace bzzz::storage::sqlite {

using internal::SqliteConnection;
using internal::StmtUse;

inline constexpr std::string_view kClosedMessage = "store is closed";
inline constexpr std::string_view kNotMigratedMessage = "database not migrated; run `bzzz db migrate`";

// A failed SQLite call: its (extended) result code and message, captured at
// once because the next call on the connection replaces them.
struct SqlError {
  int code = SQLITE_OK;
  std::string message;

  bool ok() const { return code == SQLITE_OK; }
};

SqlError LastError(sqlite3* db, int rc);
// Failures a retry may cure (locks held by another process, I/O, a full
// disk) are Unavailable; the rest (bad SQL, constraint, corruption) are
// bugs or damage, so Internal.
bool IsTransient(int rc);
Status RuntimeError(const SqlError& e, std::string_view what);
// A statement that cannot be prepared; one on a table that does not exist
// means the schema is behind the code (FailedPrecondition: run a migration).
Status PrepareError(sqlite3* db, std::string_view what);
SqlError Exec(sqlite3* db, const char* sql);
// Runs a (cached) single statement and returns the first column of its
// first row in *out; *out is left alone when there is no row.
SqlError QueryFirst(SqliteConnection& conn, std::string_view sql, std::string* out);
SqlError QueryInt(SqliteConnection& conn, std::string_view sql, std::int64_t* out);
Status BindText(sqlite3_stmt* stmt, int index, const std::string& value);
Status BindBlob(sqlite3_stmt* stmt, int index, const std::string& value);
std::string ColumnText(sqlite3_stmt* stmt, int i);

// Runs `body` and turns any exception (bad_alloc, system_error from a mutex)
// into Internal: nothing may escape the storage interfaces.
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

class Database {
 public:
  // Opens the writer connection (creating the file and its directory); fails
  // with Unavailable when the file cannot be opened and InvalidArgument when
  // it is not a database.
  static Result<std::shared_ptr<Database>> Open(SqliteOptions options);
  ~Database() { Close(); }

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const SqliteOptions& options() const { return options_; }

  // Runs `body` with a pooled reader connection, holding off Close(), with
  // NoThrow's error handling: the prologue of every read.
  template <typename F>
  auto Read(std::string_view what, F&& body) -> decltype(body(std::declval<SqliteConnection&>())) {
    using R = decltype(body(std::declval<SqliteConnection&>()));
    return NoThrow(what, [&]() -> R {
      std::shared_lock<std::shared_mutex> life;
      if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
      auto reader = AcquireReader();
      if (!reader.ok()) return reader.status();
      return body(**reader);
    });
  }

  // Runs `body` with the writer connection, alone among writers.
  template <typename F>
  auto Write(std::string_view what, F&& body) -> decltype(body(std::declval<SqliteConnection&>())) {
    using R = decltype(body(std::declval<SqliteConnection&>()));
    return NoThrow(what, [&]() -> R {
      std::shared_lock<std::shared_mutex> life;
      if (!Enter(life)) return Unavailable(std::string(kClosedMessage));
      CheckMayBlock("storage write");
      std::lock_guard lock(writer_mu_);
      return body(*writer_);
    });
  }

  // Write() inside BEGIN IMMEDIATE ... COMMIT: a failing body (or commit) is
  // rolled back. IMMEDIATE takes the write lock up front, so a concurrent
  // writer in another process makes us wait (busy timeout) instead of
  // failing mid-way. `on_error` maps a failed SQLite call to the Status the
  // caller returns.
  template <typename F, typename E>
  Status Transaction(std::string_view what, F&& body, E&& on_error) {
    return Write(what, [&](SqliteConnection& conn) -> Status {
      sqlite3* db = conn.db();
      auto fail = [&](const SqlError& e) -> Status {
        // Some errors already rolled the transaction back; a second ROLLBACK
        // would only replace the message we want to report.
        if (sqlite3_get_autocommit(db) == 0) (void)Exec(db, "ROLLBACK");
        return on_error(e);
      };
      if (SqlError e = Exec(db, "BEGIN IMMEDIATE"); !e.ok()) return fail(e);
      if (SqlError e = body(conn); !e.ok()) return fail(e);
      if (SqlError e = Exec(db, "COMMIT"); !e.ok()) return fail(e);
      return Status();
    });
  }

  // Releases every connection; later calls fail with Unavailable.
  void Close();

  // Frames copied into the database file since it was opened, by whom
  // (tests and the documentation's claims).
  struct CheckpointActivity {
    std::uint64_t background_frames = 0;  // by the checkpointer thread
    std::uint64_t writer_frames = 0;      // by the writer's catch-ups and fallbacks
    int longest_log = 0;                  // the most frames the log held after a commit
    std::uint64_t background_syncs = 0;   // passes whose copy the checkpointer synced
  };
  CheckpointActivity checkpoint_activity() const {
    return {background_frames_.load(std::memory_order_relaxed), writer_frames_.load(std::memory_order_relaxed),
            longest_log_.load(std::memory_order_relaxed), background_syncs_.load(std::memory_order_relaxed)};
  }

  // SQLite's default automatic checkpoint threshold, in frames (pages):
  // 8 MiB of log with the 8 KiB pages of a new database.
  static constexpr int kWalCheckpointFrames = 1000;
  static constexpr int kWalInlineCheckpointFrames = 4 * kWalCheckpointFrames;

 private:
  // A reader connection borrowed from the pool, returned when destroyed.
  class ReaderLease {
   public:
    ReaderLease(Database* db, std::unique_ptr<SqliteConnection> conn) : db_(db), conn_(std::move(conn)) {}
    ReaderLease(ReaderLease&& other) noexcept = default;
    ReaderLease& operator=(ReaderLease&&) = delete;
    ~ReaderLease() {
      if (conn_ != nullptr) db_->ReleaseReader(std::move(conn_));
    }
    SqliteConnection& operator*() const { return *conn_; }

   private:
    Database* db_;
    std::unique_ptr<SqliteConnection> conn_;
  };

  Database(SqliteOptions options, std::unique_ptr<SqliteConnection> writer,
           std::unique_ptr<SqliteConnection> checkpointer);

  // The writer connection's commit hook (sqlite3_wal_hook, which replaces
  // SQLite's automatic checkpoint). Runs on the writer's thread, writer_mu_
  // held, after every commit; `frames` is the log's length.
  static int OnWalCommit(void* self, sqlite3* db, const char* schema, int frames);
  // Copies what the log holds into the database file (PASSIVE: never waits
  // for the writer or readers); adds the frames copied to *copied and
  // returns them (0 also when it could not run).
  static int Checkpoint(sqlite3* db, const char* schema, std::atomic<std::uint64_t>* copied);
  // Syncs the checkpointer connection's database file, then its log.
  void SyncCheckpointedFiles();
  void CheckpointerLoop();
  void StopCheckpointer();

  // Holds off Close() while a call runs; false (and no lock) once closed.
  bool Enter(std::shared_lock<std::shared_mutex>& lock) {
    if (closed_.load(std::memory_order_acquire)) return false;
    lock = std::shared_lock<std::shared_mutex>(lifecycle_mu_);
    return !closed_.load(std::memory_order_acquire);
  }
  Result<ReaderLease> AcquireReader();
  void ReleaseReader(std::unique_ptr<SqliteConnection> conn);

  const SqliteOptions options_;

  std::atomic<bool> closed_{false};
  std::shared_mutex lifecycle_mu_;  // shared: a call in flight; exclusive: Close()

  std::mutex writer_mu_;
  std::unique_ptr<SqliteConnection> writer_;  // guarded by writer_mu_

  // The checkpointer: its connection (used by its thread only) and what the
  // hook and the thread tell each other (guarded by checkpoint_mu_).
  std::unique_ptr<SqliteConnection> checkpointer_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_requested_ = false;  // set by the hook, cleared by the thread when done
  bool checkpoint_done_ = false;       // a background checkpoint ended; the writer catches up
  bool checkpoint_stop_ = false;
  std::thread checkpoint_thread_;
  std::atomic<std::uint64_t> background_frames_{0};
  std::atomic<std::uint64_t> writer_frames_{0};
  std::atomic<int> longest_log_{0};
  std::atomic<std::uint64_t> background_syncs_{0};

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_readers_;  // guarded by pool_mu_
  int open_readers_ = 0;                                         // idle plus lent out; guarded by pool_mu_
};

// The repositories and the Store of the backend (tasks.cc, context.cc,
// audit.cc, hmmm.cc, slurp.cc, store.cc), over one shared Database.
std::shared_ptr<tasks::TaskRepository> MakeTaskRepository(std::shared_ptr<Database> db);
std::shared_ptr<ucxl::ContextRepository> MakeContextRepository(std::shared_ptr<Database> db);
std::shared_ptr<audit::AuditRepository> MakeAuditRepository(std::shared_ptr<Database> db);
std::shared_ptr<hmmm::HmmmRepository> MakeHmmmRepository(std::shared_ptr<Database> db);
std::shared_ptr<slurp::SlurpRepository> MakeSlurpRepository(std::shared_ptr<Database> db);
std::shared_ptr<Store> MakeStore(std::shared_ptr<Database> db);

}  // namespace bzzz::storage::sqlite
