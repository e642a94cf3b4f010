// SQLite backend of Store: one database file in WAL mode with a busy
// timeout. One writer connection (serialized by a mutex) and a small pool of
// reader connections, so reads never wait for a write transaction.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "storage/store.h"

namespace bzzz::storage {

struct SqliteOptions {
  std::string path;                       // database file; parent directory is created
  bool synchronous_full = false;          // FULL: survive power loss; NORMAL: survive kill -9
  std::chrono::milliseconds busy_timeout{5000};
  std::vector<Migration> migrations;      // empty: SqliteMigrations()
};

// The schema of the SQLite backend, version by version.
const std::vector<Migration>& SqliteMigrations();

// Opens (creating if needed) the database. Fails with Unavailable when the
// file cannot be opened and InvalidArgument when it is not a database.
Result<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace bzzz::storage
