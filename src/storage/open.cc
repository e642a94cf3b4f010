// OpenStorage: the one place that maps storage.backend to an implementation.
#include <exception>
#include <fstream>
#include <utility>

#include "storage/backup.h"
#include "storage/postgres/postgres.h"
#include "storage/sqlite/sqlite.h"
#include "storage/store.h"

namespace bzzz::storage {

namespace {

postgres::PostgresOptions PostgresOptionsOf(const config::Config& config, const std::string& node_id) {
  const config::StorageConfig& storage = config.storage;
  postgres::PostgresOptions o;
  o.host = storage.postgres.host;
  o.port = storage.postgres.port;
  o.database = storage.postgres.database;
  o.user = storage.postgres.user;
  o.password = storage.postgres.password;
  o.sslmode = storage.postgres.sslmode;
  // A disabled pool (nO connectionPool.enabled: false) is one connection.
  o.max_connections = storage.pool.enabled ? storage.pool.max_connections : 1;
  o.min_connections = storage.pool.enabled ? storage.pool.min_connections : 1;
  o.acquire_timeout = storage.pool.acquire_timeout;
  o.idle_timeout = storage.pool.idle_timeout;
  o.node_id = node_id;
  return o;
}

}  // namespace

Result<Storage> OpenStorage(const config::Config& config, const std::string& node_id) {
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
  if (storage.backend == "postgres") return postgres::Open(PostgresOptionsOf(config, node_id));
  return InvalidArgument("unknown storage.backend \"" + storage.backend + "\" (expected sqlite or postgres)");
}

namespace {

Result<std::string> SqlitePathOf(const config::Config& config) {
  if (config.storage.backend != "sqlite") return InvalidArgument("unknown storage.backend \"" + config.storage.backend + "\"");
  try {
    return config.SqlitePath();
  } catch (const std::exception& e) {
    return Internal(std::string("cannot determine the SQLite path: ") + e.what());
  }
}

bool IsPostgresArchive(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[5] = {};
  return in.read(magic, 5) && std::string(magic, 5) == "PGDMP";
}

}  // namespace

Result<BackupReport> CreateBackup(const config::Config& config, const std::string& output,
                                  const BackupProgressFn& progress) {
  if (config.storage.backend == "postgres") return postgres::Backup(PostgresOptionsOf(config, ""), output, progress);
  auto path = SqlitePathOf(config);
  if (!path.ok()) return path.status();
  return sqlite::Backup(*path, output, progress);
}

// A pg_dump custom-format archive starts with "PGDMP"; anything else is
// taken for an SQLite file (whose check then says what is wrong).
Result<BackupReport> DescribeBackup(const std::string& path) {
  if (IsPostgresArchive(path)) return postgres::DescribeArchive(path);
  return sqlite::DescribeFile(path);
}

Result<BackupReport> RestoreBackup(const config::Config& config, const std::string& input, bool replace_existing,
                                   const BackupProgressFn& progress) {
  const bool archive = IsPostgresArchive(input);
  if (config.storage.backend == "postgres") {
    if (!archive) return InvalidArgument(input + " is not a pg_dump archive; the store is PostgreSQL");
    return postgres::Restore(PostgresOptionsOf(config, ""), input, replace_existing, progress);
  }
  if (archive) return InvalidArgument(input + " is a PostgreSQL archive; the store is SQLite");
  auto path = SqlitePathOf(config);
  if (!path.ok()) return path.status();
  return sqlite::Restore(input, *path, replace_existing, progress);
}

}  // namespace bzzz::storage
