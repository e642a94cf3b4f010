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
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
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

  Database(SqliteOptions options, std::unique_ptr<SqliteConnection> writer)
      : options_(std::move(options)), writer_(std::move(writer)) {}

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
