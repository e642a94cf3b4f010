// The audit domain in SQLite: its migrations and its AuditRepository
// (append-only entries and the chain head, written together).
#include <algorithm>

#include "storage/sqlite/database.h"

namespace bzzz::storage::sqlite {
namespace {

using audit::AuditHead;
using audit::AuditQuery;
using audit::AuditRow;

constexpr std::string_view kAuditColumns =
    "seq, time_ms, node_id, kind, principal, action, target, outcome, client, request_id, details, prev_hash, "
    "hash, signature";

AuditRow ReadRow(sqlite3_stmt* stmt) {
  AuditRow r;
  r.seq = sqlite3_column_int64(stmt, 0);
  r.time_ms = sqlite3_column_int64(stmt, 1);
  std::string* texts[] = {&r.node_id, &r.kind,    &r.principal,  &r.action,    &r.target,    &r.outcome,
                          &r.client,  &r.request_id, &r.details, &r.prev_hash, &r.hash, &r.signature};
  for (int i = 0; i < 12; ++i) *texts[i] = ColumnText(stmt, i + 2);
  return r;
}

class SqliteAuditRepository final : public audit::AuditRepository {
 public:
  explicit SqliteAuditRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Status AppendAudit(const std::vector<AuditRow>& rows) override {
    if (rows.empty()) return Status::Ok();
    auto on_error = [](const SqlError& e) -> Status {
      if ((e.code & 0xff) == SQLITE_CONSTRAINT) return Conflict("writing audit_log: " + e.message);
      return RuntimeError(e, "writing audit_log");
    };
    return db_->Transaction(
        "append audit",
        [&](SqliteConnection& conn) -> SqlError {
          sqlite3* db = conn.db();
          sqlite3_stmt* put = conn.Prepare(
              "INSERT INTO audit_log (seq, time_ms, node_id, kind, principal, action, target, outcome, client, "
              "request_id, details, prev_hash, hash, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
              "?10, ?11, ?12, ?13, ?14)");
          if (put == nullptr) return LastError(db, sqlite3_extended_errcode(db));
          for (const AuditRow& r : rows) {
            StmtUse use(put);
            sqlite3_bind_int64(put, 1, r.seq);
            sqlite3_bind_int64(put, 2, r.time_ms);
            const std::string* texts[] = {&r.node_id, &r.kind,       &r.principal, &r.action,
                                          &r.target,  &r.outcome,    &r.client,    &r.request_id,
                                          &r.details, &r.prev_hash,  &r.hash,      &r.signature};
            for (int i = 0; i < 12; ++i) {
              if (Status s = BindText(put, i + 3, *texts[i]); !s.ok()) return {SQLITE_ERROR, s.message()};
            }
            if (int rc = sqlite3_step(put); rc != SQLITE_DONE) return LastError(db, rc);
          }
          sqlite3_stmt* head = conn.Prepare(
              "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET seq = "
              "excluded.seq, hash = excluded.hash");
          if (head == nullptr) return LastError(db, sqlite3_extended_errcode(db));
          StmtUse use(head);
          sqlite3_bind_int64(head, 1, rows.back().seq);
          if (Status s = BindText(head, 2, rows.back().hash); !s.ok()) return {SQLITE_ERROR, s.message()};
          if (int rc = sqlite3_step(head); rc != SQLITE_DONE) return LastError(db, rc);
          return {};
        },
        on_error);
  }

  Result<std::vector<AuditRow>> ListAudit(const AuditQuery& q) override {
    return db_->Read("list audit", [&](SqliteConnection& conn) -> Result<std::vector<AuditRow>> {
      std::string sql = std::string("SELECT ") + std::string(kAuditColumns) +
                        " FROM audit_log WHERE (?1 = '' OR kind = ?1) AND (?2 = '' OR principal = ?2) AND "
                        "(?3 = '' OR substr(action, 1, length(?3)) = ?3) AND (?4 = 0 OR time_ms >= ?4) AND "
                        "(?5 = 0 OR time_ms < ?5) AND seq > ?6 AND (?7 = 0 OR seq < ?7) ORDER BY seq ";
      sql += q.ascending ? "ASC" : "DESC";
      sql += " LIMIT ?8";
      sqlite3_stmt* stmt = conn.Prepare(sql);
      if (stmt == nullptr) return PrepareError(conn.db(), "reading audit_log");
      StmtUse use(stmt);
      for (auto [i, text] : {std::pair{1, &q.kind}, {2, &q.principal}, {3, &q.action_prefix}}) {
        if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
      }
      sqlite3_bind_int64(stmt, 4, q.since_ms);
      sqlite3_bind_int64(stmt, 5, q.until_ms);
      sqlite3_bind_int64(stmt, 6, q.after_seq);
      sqlite3_bind_int64(stmt, 7, q.before_seq);
      sqlite3_bind_int64(stmt, 8, static_cast<sqlite3_int64>(std::min<std::size_t>(q.limit, 1u << 30)));
      std::vector<AuditRow> out;
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadRow(stmt));
      if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading audit_log");
      return out;
    });
  }

  Result<AuditHead> ReadAuditHead() override {
    return db_->Read("audit head", [&](SqliteConnection& conn) -> Result<AuditHead> {
      sqlite3_stmt* stmt = conn.Prepare("SELECT seq, hash FROM audit_head WHERE id = 1");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading audit_head");
      StmtUse use(stmt);
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return AuditHead{};
      if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading audit_head");
      return AuditHead{sqlite3_column_int64(stmt, 0), ColumnText(stmt, 1)};
    });
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<audit::AuditRepository> MakeAuditRepository(std::shared_ptr<Database> db) {
  return std::make_shared<SqliteAuditRepository>(std::move(db));
}

DomainMigrations AuditMigrations() {
  return {"audit",
          {
              {1, "audit_log", R"sql(
        -- The node's audit hash chain (src/audit): append-only, signed entries.
        CREATE TABLE audit_log (
          seq        INTEGER PRIMARY KEY,  -- 1, 2, ... in the order written
          time_ms    INTEGER NOT NULL,
          node_id    TEXT NOT NULL,
          kind       TEXT NOT NULL,        -- auth_failure, permission_denied, admin_action, ...
          principal  TEXT NOT NULL,
          action     TEXT NOT NULL,
          target     TEXT NOT NULL,
          outcome    TEXT NOT NULL,
          client     TEXT NOT NULL,
          request_id TEXT NOT NULL,
          details    TEXT NOT NULL,        -- JSON object
          prev_hash  TEXT NOT NULL,        -- hex SHA-256 of the previous entry
          hash       TEXT NOT NULL,        -- hex SHA-256 of this one (audit/chain.h)
          signature  TEXT NOT NULL         -- hex Ed25519 of hash by the node key
        );
        CREATE INDEX audit_log_time ON audit_log (time_ms);
        CREATE INDEX audit_log_principal ON audit_log (principal, seq);
        -- The last entry written, updated in the same transaction as each append.
        CREATE TABLE audit_head (
          id   INTEGER PRIMARY KEY CHECK (id = 1),
          seq  INTEGER NOT NULL,
          hash TEXT NOT NULL
        );
      )sql"},
          }};
}

}  // namespace bzzz::storage::sqlite
