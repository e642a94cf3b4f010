// The PostgreSQL backend's Store: per-domain migrations recorded in
// schema_migrations, health with the pool's state, node meta, vacuum; and
// Open(), which assembles the Store and the repositories over one Database.
//
// Rules for adding a migration step are the SQLite backend's
// (storage/sqlite/store.cc): append, never edit a step that shipped, one
// transaction per step, domains and versions named as in SQLite so that
// `bzzz db migrate` reports the same versions on both backends.
//
// Several nodes may migrate one database at the same time: every step takes
// a transaction-scoped advisory lock first and re-reads the domain's
// version under it, so each step runs exactly once and the others skip it.
#include <map>

#include "storage/migrations.h"
#include "storage/postgres/database.h"

namespace bzzz::storage::postgres {
namespace {

// pg_advisory_xact_lock key of schema changes: "bzzzmigr" as a big-endian
// 64-bit integer, unlikely to collide with another application's.
constexpr std::int64_t kMigrationLock = 0x627a7a7a6d696772;

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  domain     TEXT NOT NULL,"
    "  version    INTEGER NOT NULL,"
    "  name       TEXT NOT NULL,"
    "  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (domain, version))";

// Applied versions by domain; empty when schema_migrations does not exist.
template <typename Tx>
std::map<std::string, std::int64_t> ReadApplied(Tx& tx) {
  std::map<std::string, std::int64_t> applied;
  if (tx.exec("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0].template as<bool>() == false) {
    return applied;
  }
  for (const auto& row : tx.exec("SELECT domain, MAX(version) FROM schema_migrations GROUP BY domain")) {
    applied[row[0].template as<std::string>()] = row[1].template as<std::int64_t>();
  }
  return applied;
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  std::string Backend() const override { return "postgres"; }
  Result<MigrationState> Migrate() override;
  Result<MigrationState> SchemaState() override;
  Status TestConnection() override;
  StoreHealth HealthCheck() override;
  Result<std::string> GetMeta(const std::string& key) override;
  Status PutMeta(const std::string& key, const std::string& value) override;
  Status Flush() override { return Status::Ok(); }  // every COMMIT is durable on the server
  Result<VacuumResult> Vacuum() override;
  void Close() override { db_->Close(); }

 private:
  const std::vector<DomainMigrations>& migrations() const { return db_->options().migrations; }
  std::shared_ptr<Database> db_;
};

Result<MigrationState> PostgresStore::Migrate() {
  if (Status s = ValidateMigrations(migrations()); !s.ok()) return s;
  if (Status s = db_->Write("creating schema_migrations",
                            [&](PgConnection&, pqxx::work& tx) -> Status {
                              tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
                              tx.exec(kCreateMigrationsTable);
                              return {};
                            });
      !s.ok()) {
    return s;
  }
  auto state = db_->Read("reading the schema version", [&](PgConnection&, pqxx::read_transaction& tx) {
    return StateOf(migrations(), ReadApplied(tx));
  });
  if (!state.ok()) return state.status();
  for (std::size_t i = 0; i < migrations().size(); ++i) {
    const DomainMigrations& d = migrations()[i];
    MigrationState::Domain& ds = state->domains[i];
    for (const Migration& m : d.steps) {
      if (m.version <= ds.current) continue;
      const std::string step = "migration " + d.domain + "/" + std::to_string(m.version) + " (\"" + m.name + "\")";
      auto ran = db_->Write(step, [&](PgConnection&, pqxx::work& tx) -> Result<bool> {
        tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
        const auto applied = ReadApplied(tx);
        auto it = applied.find(d.domain);
        if (it != applied.end() && it->second >= m.version) return false;  // another node was first
        tx.exec(m.sql);
        tx.exec_params("INSERT INTO schema_migrations (domain, version, name) VALUES ($1, $2, $3)", d.domain,
                       m.version, m.name);
        return true;
      });
      if (!ran.ok()) {
        const Status& s = ran.status();
        return Status(s.code() == StatusCode::kUnavailable ? s.code() : StatusCode::kInternal,
                      step + " failed: " + s.message());
      }
      if (*ran) state->applied.push_back(d.domain + "/" + std::to_string(m.version) + " " + m.name);
      ds.current = m.version;
      ++state->current_version;
    }
  }
  return std::move(state).value();
}

Result<MigrationState> PostgresStore::SchemaState() {
  if (Status s = ValidateMigrations(migrations()); !s.ok()) return s;
  return db_->Read("schema state", [&](PgConnection&, pqxx::read_transaction& tx) {
    return StateOf(migrations(), ReadApplied(tx));
  });
}

Status PostgresStore::TestConnection() {
  return db_->Read("test connection", [](PgConnection&, pqxx::read_transaction& tx) -> Status {
    tx.exec("SELECT 1");
    return {};
  });
}

StoreHealth PostgresStore::HealthCheck() {
  StoreHealth health;
  health.backend = "postgres";
  health.location = Location(db_->options());
  health.latest_version = LatestTotal(migrations());
  Status outcome = db_->Read("health check", [&](PgConnection&, pqxx::read_transaction& tx) -> Status {
    const auto start = std::chrono::steady_clock::now();
    tx.exec("SELECT 1");
    health.latency =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    health.reachable = true;
    // A standby (or a server in recovery) answers reads and refuses every
    // write: for a node that must write, that is not a usable store.
    const auto facts = tx.exec("SELECT pg_is_in_recovery(), pg_database_size(current_database())")[0];
    health.integrity_ok = !facts[0].as<bool>();
    health.size_bytes = static_cast<std::uint64_t>(facts[1].as<std::int64_t>());
    if (!health.integrity_ok) return Unavailable("the server is a read-only standby (in recovery)");
    if (Status s = ValidateMigrations(migrations()); !s.ok()) return s;
    const auto applied = ReadApplied(tx);
    for (const DomainMigrations& d : migrations()) {
      auto it = applied.find(d.domain);
      health.schema_version += it == applied.end() ? 0 : static_cast<int>(it->second);
    }
    return StateOf(migrations(), applied).status();
  });
  health.pool = db_->pool().Stats();
  if (!outcome.ok()) {
    health.message = outcome.message();
  } else if (int pending = health.latest_version - health.schema_version; pending > 0) {
    health.message = std::to_string(pending) + (pending == 1 ? " pending migration" : " pending migrations");
  } else {
    health.message = "ok";
  }
  return health;
}

Result<std::string> PostgresStore::GetMeta(const std::string& key) {
  if (Status s = db_->RequireNode(); !s.ok()) return s;
  return db_->Read("get meta", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::string> {
    const auto r = tx.exec_prepared(c.Prepare("meta_get", "SELECT value FROM node_meta WHERE node_id = $1 AND key = $2"),
                                    db_->node_id(), key);
    if (r.empty()) return NotFound("no node meta \"" + key + "\"");
    return r[0][0].as<std::string>();
  });
}

Status PostgresStore::PutMeta(const std::string& key, const std::string& value) {
  if (Status s = db_->RequireNode(); !s.ok()) return s;
  return db_->Write("put meta", [&](PgConnection& c, pqxx::work& tx) -> Status {
    tx.exec_prepared(c.Prepare("meta_put",
                               "INSERT INTO node_meta (node_id, key, value, updated_at) VALUES ($1, $2, $3, now()) "
                               "ON CONFLICT (node_id, key) DO UPDATE SET value = excluded.value, "
                               "updated_at = excluded.updated_at"),
                     db_->node_id(), key, value);
    return {};
  });
}

Result<Store::VacuumResult> PostgresStore::Vacuum() {
  return db_->Direct("vacuum", [&](PgConnection&, pqxx::nontransaction& tx) -> Result<VacuumResult> {
    VacuumResult r;
    const char* size = "SELECT pg_database_size(current_database())";
    r.bytes_before = static_cast<std::uint64_t>(tx.exec(size)[0][0].as<std::int64_t>());
    // VACUUM ANALYZE (not FULL): gives the space of dead rows back for reuse
    // and refreshes the planner's statistics without locking the tables
    // against the other nodes.
    tx.exec("VACUUM ANALYZE");
    r.bytes_after = static_cast<std::uint64_t>(tx.exec(size)[0][0].as<std::int64_t>());
    return r;
  });
}

}  // namespace

std::shared_ptr<Store> MakeStore(std::shared_ptr<Database> db) { return std::make_shared<PostgresStore>(std::move(db)); }

DomainMigrations NodeMigrations() {
  return {"node",
          {
              {1, "initial", R"sql(
        -- Small durable facts about each node: first start, ids.
        CREATE TABLE node_meta (
          node_id    TEXT COLLATE "C" NOT NULL,
          key        TEXT COLLATE "C" NOT NULL,
          value      TEXT NOT NULL,
          updated_at TIMESTAMPTZ NOT NULL,
          PRIMARY KEY (node_id, key)
        );
      )sql"},
          }};
}

const std::vector<DomainMigrations>& Migrations() {
  static const auto* const kMigrations =
      new std::vector<DomainMigrations>{NodeMigrations(), ContextMigrations(), TaskMigrations(), AuditMigrations(),
                                       HmmmMigrations(), SlurpMigrations()};
  return *kMigrations;
}

Result<Storage> Open(const PostgresOptions& options) {
  PostgresOptions effective = options;
  if (effective.migrations.empty()) effective.migrations = Migrations();
  auto db = Database::Open(std::move(effective));
  if (!db.ok()) return db.status();
  return Storage{MakeStore(*db), MakeTaskRepository(*db), MakeContextRepository(*db), MakeAuditRepository(*db),
                 MakeHmmmRepository(*db), MakeSlurpRepository(*db)};
}

}  // namespace bzzz::storage::postgres
