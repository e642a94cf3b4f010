// Private to the SQLite backend: RAII owners of sqlite3 handles and one
// connection with its cache of prepared statements. Not thread-safe: a
// SqliteConnection is used by one thread at a time (the Database hands each
// one out under a mutex or from its reader pool), which is why connections
// are opened with SQLITE_OPEN_NOMUTEX.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace bzzz::storage::internal {

struct DbCloser {
  // close_v2 never fails: it defers the close until the last statement is
  // finalized, so a forgotten statement leaks nothing past the store.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// One use of a cached statement. Resetting at the end matters: a SELECT left
// un-reset keeps its read snapshot open, which stops a WAL checkpoint from
// truncating the log; clearing the bindings drops pointers to the caller's
// strings (bound with SQLITE_STATIC).
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StmtUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

class SqliteConnection {
 public:
  explicit SqliteConnection(DbHandle db) : db_(std::move(db)) {}

  sqlite3* db() const { return db_.get(); }

  // The prepared statement for `sql`, prepared on first use and kept for the
  // connection's lifetime. Returns null on failure; sqlite3_errmsg(db()) and
  // sqlite3_extended_errcode(db()) say why. A failed prepare is not cached,
  // so a statement on a table that a later migration creates works then.
  sqlite3_stmt* Prepare(std::string_view sql) {
    std::string key(sql);
    if (auto it = statements_.find(key); it != statements_.end()) return it->second.get();
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(), key.data(), static_cast<int>(key.size()), SQLITE_PREPARE_PERSISTENT,
                           &raw, nullptr) != SQLITE_OK ||
        raw == nullptr) {  // null without an error: the SQL was only whitespace or comments
      sqlite3_finalize(raw);
      return nullptr;
    }
    statements_.emplace(std::move(key), StmtHandle(raw));
    return raw;
  }

 private:
  // Declared after db_ so the statements are finalized before the handle is
  // closed.
  DbHandle db_;
  std::unordered_map<std::string, StmtHandle> statements_;
};

}  // namespace bzzz::storage::internal
