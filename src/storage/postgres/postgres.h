// The PostgreSQL backend: a database shared by the nodes of a cluster,
// reached through a pool of libpqxx connections (database.h), implementing
// the Store and every domain's repository.
//
// One database, many nodes: every per-node row (node meta, tasks, context
// versions, audit entries) carries the id of the node that owns it, and a
// node's repositories read and write its own rows only, so each node sees
// exactly what it would see in its own SQLite file. The exceptions are
// cluster-wide by design: HMMM rooms (every node reads every room) and the
// SLURP queue (one queue for the cluster). schema_migrations is
// shared: migrating from several nodes at once is safe (each step runs under
// an advisory lock and is skipped when another node applied it first).
//
// Files: store.cc (schema_migrations, health, node meta, vacuum), tasks.cc,
// context.cc, audit.cc, hmmm.cc and slurp.cc (one domain each: its
// repository and migrations), backup.cc (pg_dump / pg_restore), database.cc
// (the connection pool and transactions).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "storage/backup.h"
#include "storage/store.h"

namespace bzzz::storage::postgres {

struct PostgresOptions {
  std::string host = "localhost";
  int port = 5432;
  std::string database = "bzzz";
  std::string user = "bzzz";
  std::string password;            // never logged nor reported
  std::string sslmode = "prefer";
  // The pool (config storage.pool, nO performance.connectionPool).
  int min_connections = 2;
  int max_connections = 16;
  std::chrono::milliseconds acquire_timeout{30000};  // waiting for a free connection
  std::chrono::milliseconds idle_timeout{300000};    // idle connections above min are closed after this
  std::chrono::milliseconds connect_timeout{5000};   // one connection attempt
  // A connection idle for longer than this is checked (SELECT 1) before it is
  // lent out; a fresh or recently used one is trusted. Keeps a restarted
  // server from failing the first call on each stale connection.
  std::chrono::milliseconds validate_after{1000};
  // The node whose rows the repositories read and write. Required by the
  // repositories and node meta; `bzzz db migrate|health-check` work without.
  std::string node_id;
  std::vector<DomainMigrations> migrations;  // empty: Migrations()
};

// The libpq connection string of `options` (keyword=value, quoted).
std::string ConnectionString(const PostgresOptions& options);
// "host:port/database", what health and errors name (never the password).
std::string Location(const PostgresOptions& options);

// The schema of the PostgreSQL backend, domain by domain, in the order they
// are applied: node (node_meta), ucxl (context_versions), tasks, audit, hmmm,
// slurp.
// Domain names and versions match the SQLite backend's; the SQL is
// PostgreSQL's and every per-node table has a node_id column.
const std::vector<DomainMigrations>& Migrations();
DomainMigrations NodeMigrations();
DomainMigrations ContextMigrations();
DomainMigrations TaskMigrations();
DomainMigrations AuditMigrations();
DomainMigrations HmmmMigrations();
DomainMigrations SlurpMigrations();

// Connects (min_connections of the pool) and returns the Store and the
// repositories. Unavailable when the server cannot be reached.
Result<Storage> Open(const PostgresOptions& options);

// Backups (storage/backup.h) with pg_dump in its custom format and
// pg_restore; see backup.cc.
Result<BackupReport> Backup(const PostgresOptions& options, const std::string& output,
                            const BackupProgressFn& progress);
Result<BackupReport> DescribeArchive(const std::string& path);
Result<BackupReport> Restore(const PostgresOptions& options, const std::string& input, bool replace_existing,
                             const BackupProgressFn& progress);

}  // namespace bzzz::storage::postgres
