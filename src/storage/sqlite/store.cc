// The SQLite backend's Store: per-domain schema migrations recorded in
// schema_migrations, health, node meta, flush and close; and Open(), which
// assembles the Store and the repositories over one Database.
//
// Rules for adding a migration step:
// - Append to the domain's list (beside its repository: tasks.cc,
//   context.cc, audit.cc; node meta here); never edit or reorder a step that has
//   shipped. Databases in the field have it recorded in schema_migrations
//   and will not run it again.
// - Each step runs inside one BEGIN IMMEDIATE transaction, so it must not
//   contain BEGIN/COMMIT, nor PRAGMAs that are no-ops inside a transaction
//   (journal_mode, foreign_keys); the Database sets those on every
//   connection.
// - A new domain is appended to Migrations(); its versions start at 1.
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "storage/migrations.h"
#include "storage/sqlite/database.h"

namespace bzzz::storage::sqlite {
namespace {

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  domain     TEXT NOT NULL,"
    "  version    INTEGER NOT NULL,"
    "  name       TEXT NOT NULL,"
    "  applied_at TEXT NOT NULL,"  // ISO 8601 UTC
    "  PRIMARY KEY (domain, version))";

// Before domains had their own versions (releases up to 2026-12), the
// schema was one sequence: 1 node meta, 2 UCXL versions, 3 tasks. Such a
// table is rewritten to the per-domain layout by the next Migrate(); until
// then it is read through this mapping.
constexpr const char* kUpgradeLegacyMigrationsTable =
    "ALTER TABLE schema_migrations RENAME TO schema_migrations_legacy;"
    "CREATE TABLE schema_migrations ("
    "  domain     TEXT NOT NULL,"
    "  version    INTEGER NOT NULL,"
    "  name       TEXT NOT NULL,"
    "  applied_at TEXT NOT NULL,"
    "  PRIMARY KEY (domain, version));"
    "INSERT INTO schema_migrations (domain, version, name, applied_at) "
    "  SELECT CASE version WHEN 1 THEN 'node' WHEN 2 THEN 'ucxl' ELSE 'tasks' END, 1, name, applied_at "
    "  FROM schema_migrations_legacy;"
    "DROP TABLE schema_migrations_legacy;";
constexpr int kLegacyLatest = 3;

Status NewerThanBinary(const std::string& domain, std::int64_t current, int latest) {
  return FailedPrecondition("database schema of " + domain + " is at version " + std::to_string(current) +
                            ", newer than this binary (" + std::to_string(latest) + "); upgrade bzzz");
}

enum class Layout { kNone, kLegacy, kDomains };

Result<Layout> ReadLayout(SqliteConnection& conn) {
  std::int64_t tables = 0, domain_columns = 0;
  if (SqlError e = QueryInt(
          conn, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'",
          &tables);
      !e.ok()) {
    return RuntimeError(e, "reading the schema version");
  }
  if (tables == 0) return Layout::kNone;
  if (SqlError e =
          QueryInt(conn, "SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'domain'",
                   &domain_columns);
      !e.ok()) {
    return RuntimeError(e, "reading the schema version");
  }
  return domain_columns > 0 ? Layout::kDomains : Layout::kLegacy;
}

// The highest applied version of every domain recorded in the database
// (domains this binary does not know included).
Result<std::map<std::string, std::int64_t>> ReadApplied(SqliteConnection& conn) {
  auto layout = ReadLayout(conn);
  if (!layout.ok()) return layout.status();
  std::map<std::string, std::int64_t> applied;
  if (*layout == Layout::kNone) return applied;
  if (*layout == Layout::kLegacy) {
    std::int64_t max = 0;
    if (SqlError e = QueryInt(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &max);
        !e.ok()) {
      return RuntimeError(e, "reading the schema version");
    }
    if (max > kLegacyLatest) return NewerThanBinary("the database", max, kLegacyLatest);
    const char* order[] = {"node", "ucxl", "tasks"};
    for (std::int64_t v = 1; v <= max; ++v) applied[order[v - 1]] = 1;
    return applied;
  }
  sqlite3_stmt* stmt = conn.Prepare("SELECT domain, MAX(version) FROM schema_migrations GROUP BY domain");
  if (stmt == nullptr) return PrepareError(conn.db(), "reading the schema version");
  StmtUse use(stmt);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
    applied[ColumnText(stmt, 0)] = sqlite3_column_int64(stmt, 1);
  if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading the schema version");
  return applied;
}

std::uint64_t FileSizeOrZero(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::uint64_t>(size);
}


class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  std::string Backend() const override { return "sqlite"; }
  Result<MigrationState> Migrate() override;
  Result<MigrationState> SchemaState() override;
  Status TestConnection() override;
  StoreHealth HealthCheck() override;
  Result<std::string> GetMeta(const std::string& key) override;
  Status PutMeta(const std::string& key, const std::string& value) override;
  Status Flush() override;
  Result<VacuumResult> Vacuum() override;
  void Close() override { db_->Close(); }

 private:
  const std::vector<DomainMigrations>& migrations() const { return db_->options().migrations; }

  std::shared_ptr<Database> db_;
};

// One step and its schema_migrations row in one transaction; requires the
// writer connection.
Status ApplyMigration(SqliteConnection& conn, const std::string& domain, const Migration& m) {
  sqlite3* db = conn.db();
  const std::string step = "migration " + domain + "/" + std::to_string(m.version) + " (\"" + m.name + "\")";
  auto fail = [&](const SqlError& e) {
    if (sqlite3_get_autocommit(db) == 0) (void)Exec(db, "ROLLBACK");
    std::string message = step + " failed: " + e.message;
    return IsTransient(e.code) ? Unavailable(std::move(message)) : Internal(std::move(message));
  };
  if (SqlError e = Exec(db, "BEGIN IMMEDIATE"); !e.ok()) return fail(e);
  if (SqlError e = Exec(db, m.sql.c_str()); !e.ok()) return fail(e);
  sqlite3_stmt* record = conn.Prepare(
      "INSERT INTO schema_migrations (domain, version, name, applied_at) VALUES (?1, ?2, ?3, "
      // ISO 8601 UTC with milliseconds, the format of FormatIso8601.
      "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
  if (record == nullptr) return fail(LastError(db, sqlite3_extended_errcode(db)));
  {
    StmtUse use(record);
    if (Status s = BindText(record, 1, domain); !s.ok()) return fail({SQLITE_ERROR, s.message()});
    sqlite3_bind_int(record, 2, m.version);
    if (Status s = BindText(record, 3, m.name); !s.ok()) return fail({SQLITE_ERROR, s.message()});
    int rc = sqlite3_step(record);
    if (rc != SQLITE_DONE) return fail(LastError(db, rc));
  }
  if (SqlError e = Exec(db, "COMMIT"); !e.ok()) return fail(e);
  return {};
}

Result<MigrationState> SqliteStore::Migrate() {
  // Validate before touching the database: a broken list is a bug in this
  // binary and must not leave a half-migrated schema behind.
  if (Status s = ValidateMigrations(migrations()); !s.ok()) return s;
  return db_->Write("migrate", [&](SqliteConnection& conn) -> Result<MigrationState> {
    auto layout = ReadLayout(conn);
    if (!layout.ok()) return layout.status();
    if (*layout == Layout::kLegacy) {
      // Refuses a legacy table newer than any legacy binary before rewriting.
      if (auto legacy = ReadApplied(conn); !legacy.ok()) return legacy.status();
      sqlite3* db = conn.db();
      SqlError e = Exec(db, "BEGIN IMMEDIATE");
      if (e.ok()) e = Exec(db, kUpgradeLegacyMigrationsTable);
      if (e.ok()) e = Exec(db, "COMMIT");
      if (!e.ok()) {
        if (sqlite3_get_autocommit(db) == 0) (void)Exec(db, "ROLLBACK");
        return RuntimeError(e, "rewriting schema_migrations per domain");
      }
    } else if (SqlError e = Exec(conn.db(), kCreateMigrationsTable); !e.ok()) {
      return RuntimeError(e, "creating schema_migrations");
    }
    auto applied = ReadApplied(conn);
    if (!applied.ok()) return applied.status();
    auto state = StateOf(migrations(), *applied);
    if (!state.ok()) return state.status();
    for (std::size_t i = 0; i < migrations().size(); ++i) {
      const DomainMigrations& d = migrations()[i];
      MigrationState::Domain& ds = state->domains[i];
      for (const Migration& m : d.steps) {
        if (m.version <= ds.current) continue;
        if (Status s = ApplyMigration(conn, d.domain, m); !s.ok()) return s;
        state->applied.push_back(d.domain + "/" + std::to_string(m.version) + " " + m.name);
        ds.current = m.version;
        ++state->current_version;
      }
    }
    return std::move(state).value();
  });
}

Result<MigrationState> SqliteStore::SchemaState() {
  if (Status s = ValidateMigrations(migrations()); !s.ok()) return s;
  return db_->Read("schema state", [&](SqliteConnection& conn) -> Result<MigrationState> {
    auto applied = ReadApplied(conn);
    if (!applied.ok()) return applied.status();
    return StateOf(migrations(), *applied);
  });
}

Status SqliteStore::TestConnection() {
  return db_->Read("test connection", [&](SqliteConnection& conn) -> Status {
    if (SqlError e = QueryFirst(conn, "SELECT 1", nullptr); !e.ok()) return RuntimeError(e, "SELECT 1");
    return {};
  });
}

StoreHealth SqliteStore::HealthCheck() {
  StoreHealth health;
  health.backend = "sqlite";
  health.location = db_->options().path;
  health.latest_version = LatestTotal(migrations());
  health.size_bytes = FileSizeOrZero(health.location) + FileSizeOrZero(health.location + "-wal");
  Status outcome = db_->Read("health check", [&](SqliteConnection& conn) -> Status {
    auto start = std::chrono::steady_clock::now();
    SqlError probe = QueryFirst(conn, "SELECT 1", nullptr);
    health.latency =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    if (!probe.ok()) return RuntimeError(probe, "SELECT 1");
    health.reachable = true;

    // quick_check skips the index cross-checks of integrity_check, so it stays
    // O(database size) without the sorting; it returns "ok" or the problems.
    std::string check;
    SqlError integrity = QueryFirst(conn, "PRAGMA quick_check", &check);
    health.integrity_ok = integrity.ok() && check == "ok";
    if (!integrity.ok()) return RuntimeError(integrity, "integrity check");
    if (!health.integrity_ok) return Internal("integrity check failed: " + check);

    if (Status s = ValidateMigrations(migrations()); !s.ok()) return s;
    auto applied = ReadApplied(conn);
    if (!applied.ok()) return applied.status();
    int current = 0;
    for (const DomainMigrations& d : migrations()) {
      auto it = applied->find(d.domain);
      current += it == applied->end() ? 0 : static_cast<int>(it->second);
    }
    health.schema_version = current;
    if (auto state = StateOf(migrations(), *applied); !state.ok()) return state.status();
    return {};
  });
  if (!outcome.ok()) {
    health.message = outcome.message();
  } else if (int pending = health.latest_version - health.schema_version; pending > 0) {
    health.message = std::to_string(pending) + (pending == 1 ? " pending migration" : " pending migrations");
  } else {
    health.message = "ok";
  }
  return health;
}

Result<std::string> SqliteStore::GetMeta(const std::string& key) {
  return db_->Read("get meta", [&](SqliteConnection& conn) -> Result<std::string> {
    sqlite3_stmt* stmt = conn.Prepare("SELECT value FROM node_meta WHERE key = ?1");
    if (stmt == nullptr) return PrepareError(conn.db(), "reading node_meta");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return NotFound("no node meta \"" + key + "\"");
    if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading node_meta");
    return ColumnText(stmt, 0);
  });
}

Status SqliteStore::PutMeta(const std::string& key, const std::string& value) {
  return db_->Write("put meta", [&](SqliteConnection& conn) -> Status {
    sqlite3_stmt* stmt = conn.Prepare(
        "INSERT INTO node_meta (key, value, updated_at) "
        "VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    if (stmt == nullptr) return PrepareError(conn.db(), "writing node_meta");
    StmtUse use(stmt);
    if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
    if (Status s = BindText(stmt, 2, value); !s.ok()) return s;
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "writing node_meta");
    return {};
  });
}

Status SqliteStore::Flush() {
  return db_->Write("flush", [&](SqliteConnection& conn) -> Status {
    // TRUNCATE copies the whole log into the database, then cuts the -wal
    // file to zero bytes; it waits (busy timeout) for readers still in the
    // log. The first result column is 1 when it could not finish.
    std::string busy;
    if (SqlError e = QueryFirst(conn, "PRAGMA wal_checkpoint(TRUNCATE)", &busy); !e.ok()) {
      return RuntimeError(e, "WAL checkpoint");
    }
    if (busy != "0") return Unavailable("WAL checkpoint could not finish: readers are still using the log");
    return {};
  });
}

Result<Store::VacuumResult> SqliteStore::Vacuum() {
  const std::string& path = db_->options().path;
  auto files = [&] { return FileSizeOrZero(path) + FileSizeOrZero(path + "-wal"); };
  return db_->Write("vacuum", [&](SqliteConnection& conn) -> Result<VacuumResult> {
    VacuumResult r;
    r.bytes_before = files();
    // VACUUM cannot run inside a transaction; the writer is between
    // transactions whenever it is handed out. The checkpoint first folds the
    // log into the file, so that the sizes compare like with like.
    std::string busy;
    if (SqlError e = QueryFirst(conn, "PRAGMA wal_checkpoint(TRUNCATE)", &busy); !e.ok()) {
      return RuntimeError(e, "WAL checkpoint");
    }
    if (SqlError e = Exec(conn.db(), "VACUUM"); !e.ok()) return RuntimeError(e, "VACUUM");
    if (SqlError e = Exec(conn.db(), "ANALYZE"); !e.ok()) return RuntimeError(e, "ANALYZE");
    if (SqlError e = QueryFirst(conn, "PRAGMA wal_checkpoint(TRUNCATE)", &busy); !e.ok()) {
      return RuntimeError(e, "WAL checkpoint");
    }
    r.bytes_after = files();
    return r;
  });
}

}  // namespace

std::shared_ptr<Store> MakeStore(std::shared_ptr<Database> db) {
  return std::make_shared<SqliteStore>(std::move(db));
}

DomainMigrations NodeMigrations() {
  return {"node",
          {
              {1, "initial", R"sql(
        -- Small durable facts about the node: first start, ids.
        CREATE TABLE node_meta (
          key        TEXT PRIMARY KEY,
          value      TEXT NOT NULL,
          updated_at TEXT NOT NULL  -- ISO 8601 UTC
        );
      )sql"},
          }};
}

const std::vector<DomainMigrations>& Migrations() {
  // Leaked on purpose: no destructor runs at exit while another thread may
  // still be opening a store.
  static const auto* const kMigrations =
      new std::vector<DomainMigrations>{NodeMigrations(), ContextMigrations(), TaskMigrations(), AuditMigrations(),
                                       HmmmMigrations(), SlurpMigrations()};
  return *kMigrations;
}

Result<Storage> Open(const SqliteOptions& options) {
  SqliteOptions effective = options;
  if (effective.migrations.empty()) effective.migrations = Migrations();
  auto db = Database::Open(std::move(effective));
  if (!db.ok()) return db.status();
  return Storage{MakeStore(*db), MakeTaskRepository(*db), MakeContextRepository(*db), MakeAuditRepository(*db),
                 MakeHmmmRepository(*db), MakeSlurpRepository(*db)};
}

}  // namespace bzzz::storage::sqlite
