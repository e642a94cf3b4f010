// OpenStorage: the one place that maps storage.backend to an implementation.
#include <exception>
#include <utility>

#include "storage/sqlite/sqlite.h"
#include "storage/store.h"

namespace bzzz::storage {

Result<Storage> OpenStorage(const config::Config& config) {
  const config::StorageConfig& storage = config.storage;
  if (storage.backend == "sqlite") {
    sqlite::SqliteOptions options;
    try {
      options.path = config.SqlitePath();
    } catch (const std::exception& e) {
      return Internal(std::string("cannot determine the SQLite path: ") + e.what());
    }
    // Refuse an unknown value rather than fall back to NORMAL: a typo must
    // not quietly weaken the durability the operator asked for.
    if (storage.sqlite.synchronous == "full") {
      options.synchronous_full = true;
    } else if (storage.sqlite.synchronous == "normal") {
      options.synchronous_full = false;
    } else {
      return InvalidArgument("storage.sqlite.synchronous must be \"normal\" or \"full\", not \"" +
                             storage.sqlite.synchronous + "\"");
    }
    options.busy_timeout = storage.sqlite.busy_timeout;
    return sqlite::Open(options);
  }
  if (storage.backend == "postgres") {
    return FailedPrecondition("the PostgreSQL backend is not built yet; use storage.backend: sqlite");
  }
  return InvalidArgument("unknown storage.backend \"" + storage.backend + "\" (expected sqlite or postgres)");
}

}  // namespace bzzz::storage
