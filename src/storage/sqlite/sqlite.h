// The SQLite backend: one database file in WAL mode with a busy timeout,
// shared by the backend's Store and every domain's repository. One writer
// connection (serialized by a mutex) and a small pool of reader connections,
// so reads never wait for a write transaction (database.h).
//
// Files: store.cc (schema_migrations, health, node meta, flush), tasks.cc,
// context.cc, audit.cc, hmmm.cc and slurp.cc (one domain each: its repository
// and its migrations).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "storage/backup.h"
#include "storage/store.h"

namespace bzzz::storage::sqlite {

struct SqliteOptions {
  std::string path;               // database file; parent directory is created
  bool synchronous_full = false;  // FULL: survive power loss; NORMAL: survive kill -9
  std::chrono::milliseconds busy_timeout{5000};
  std::vector<DomainMigrations> migrations;  // empty: Migrations()
};

// The schema of the SQLite backend, domain by domain, in the order they are
// applied: node (node_meta), ucxl (context_versions), tasks, audit
// (audit_log, audit_head), hmmm (hmmm_rooms, hmmm_messages), slurp
// (slurp_events, slurp_records, slurp_fence).
const std::vector<DomainMigrations>& Migrations();
// Each domain's steps (defined beside the domain's repository).
DomainMigrations NodeMigrations();
DomainMigrations ContextMigrations();
DomainMigrations TaskMigrations();
DomainMigrations AuditMigrations();
DomainMigrations HmmmMigrations();
DomainMigrations SlurpMigrations();

// Opens (creating if needed) the database. Fails with Unavailable when the
// file cannot be opened and InvalidArgument when it is not a database.
Result<Storage> Open(const SqliteOptions& options);

// Backups (storage/backup.h): `source` and `target` are database files.
Result<BackupReport> Backup(const std::string& source, const std::string& output, const BackupProgressFn& progress);
Result<BackupReport> DescribeFile(const std::string& path);
Result<BackupReport> Restore(const std::string& input, const std::string& target, bool replace_existing,
                             const BackupProgressFn& progress);

}  // namespace bzzz::storage::sqlite
