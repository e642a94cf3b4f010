// Backups of the store (SPEC §3.11; docs/operations.md "Backups").
//
// PostgreSQL: pg_dump's custom format and pg_restore (postgres/backup.cc
// says how); the rest of this comment is about SQLite.
//
// CreateBackup copies the store into one file while the node runs:
// for SQLite with the online backup API, page by page inside one read
// transaction (a consistent snapshot; the node's writers are not blocked,
// WAL), reporting progress; then the copy is checked (integrity_check) and
// described (each domain's schema version, each table's rows).
// RestoreBackup checks a backup the same way, refuses one whose schema is
// newer than this binary, and replaces the store with it: the current
// database is kept beside it (<file>.before-restore-<UTC time>), the copy
// written next to the target and renamed over it. The node must be
// stopped (the caller checks the data directory's LOCK).
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "config/config.h"

namespace bzzz::storage {

struct BackupProgress {
  std::uint64_t done = 0;   // units copied
  std::uint64_t total = 0;  // units in all
  const char* unit = "pages";  // SQLite copies pages; pg_dump and pg_restore tables
};
using BackupProgressFn = std::function<void(const BackupProgress&)>;

struct BackupReport {
  std::string backend;                          // "sqlite" or "postgres"
  std::string path;                             // the file written (create) or restored from (restore)
  std::string target;                           // the database (create: the source; restore: replaced)
  std::string previous;                         // restore: where the replaced database was kept ("" if none)
  std::uint64_t bytes = 0;                      // size of the backup file
  std::map<std::string, int> domains;           // schema version per domain (schema_migrations)
  std::vector<std::pair<std::string, std::uint64_t>> tables;  // rows per table, by name
  double seconds = 0;
};

// Now in UTC, compact ("20261206T220000Z"): the time in backup file names.
inline std::string BackupTimestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// Writes a backup of the configured store to `output`. InvalidArgument for
// an existing output file (never overwritten).
Result<BackupReport> CreateBackup(const config::Config& config, const std::string& output,
                                  const BackupProgressFn& progress = nullptr);
// Checks and describes a backup file without restoring it.
Result<BackupReport> DescribeBackup(const std::string& path);
// Replaces the configured store with the backup at `input`. Without
// `replace_existing`, a store that exists and holds data is not replaced
// (FailedPrecondition).
Result<BackupReport> RestoreBackup(const config::Config& config, const std::string& input, bool replace_existing,
                                   const BackupProgressFn& progress = nullptr);

}  // namespace bzzz::storage
