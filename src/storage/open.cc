// OpenStorage: the one place that maps storage.backend to an implementation.
#include <ctime>
#include <exception>
#include <utility>

#include "storage/backup.h"
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

namespace {

Result<std::string> SqlitePathOf(const config::Config& config) {
  if (config.storage.backend == "postgres") {
    return FailedPrecondition("backups of PostgreSQL (pg_dump/pg_restore) come with its backend, not built yet");
  }
  if (config.storage.backend != "sqlite") return InvalidArgument("unknown storage.backend \"" + config.storage.backend + "\"");
  try {
    return config.SqlitePath();
  } catch (const std::exception& e) {
    return Internal(std::string("cannot determine the SQLite path: ") + e.what());
  }
}

}  // namespace

std::string BackupTimestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Result<BackupReport> CreateBackup(const config::Config& config, const std::string& output,
                                  const BackupProgressFn& progress) {
  auto path = SqlitePathOf(config);
  if (!path.ok()) return path.status();
  return sqlite::Backup(*path, output, progress);
}

Result<BackupReport> DescribeBackup(const std::string& path) { return sqlite::DescribeFile(path); }

Result<BackupReport> RestoreBackup(const config::Config& config, const std::string& input, bool replace_existing,
                                   const BackupProgressFn& progress) {
  auto path = SqlitePathOf(config);
  if (!path.ok()) return path.status();
  return sqlite::Restore(input, *path, replace_existing, progress);
}

}  // namespace bzzz::storage
