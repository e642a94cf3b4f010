// The audit domain in PostgreSQL: its migrations and its AuditRepository
// (each node's hash chain and head, append-only).
#include <algorithm>

#include "storage/postgres/database.h"

namespace bzzz::storage::postgres {
namespace {

using audit::AuditHead;
using audit::AuditQuery;
using audit::AuditRow;

constexpr std::string_view kAuditColumns =
    "seq, time_ms, node_id, kind, principal, action, target, outcome, client, request_id, details, prev_hash, "
    "hash, signature";

AuditRow ReadRow(const pqxx::row& r) {
  AuditRow a;
  a.seq = Int(r[0]);
  a.time_ms = Int(r[1]);
  std::string* texts[] = {&a.node_id, &a.kind,       &a.principal, &a.action,    &a.target, &a.outcome,
                          &a.client,  &a.request_id, &a.details,   &a.prev_hash, &a.hash,   &a.signature};
  for (int i = 0; i < 12; ++i) *texts[i] = Text(r[i + 2]);
  return a;
}

class PostgresAuditRepository final : public audit::AuditRepository {
 public:
  explicit PostgresAuditRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Status AppendAudit(const std::vector<AuditRow>& rows) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    if (rows.empty()) return Status::Ok();
    for (const AuditRow& r : rows) {
      // The chain is the node's own: an entry signed by another node does
      // not go into this node's log.
      if (r.node_id != db_->node_id()) {
        return InvalidArgument("audit entry " + std::to_string(r.seq) + " names node " + r.node_id + ", not " +
                               db_->node_id());
      }
    }
    return db_->Write("writing audit_log", [&](PgConnection& c, pqxx::work& tx) -> Status {
      const std::string put = c.Prepare(
          "audit_put",
          "INSERT INTO audit_log (seq, time_ms, node_id, kind, principal, action, target, outcome, client, "
          "request_id, details, prev_hash, hash, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
          "$12, $13, $14)");
      for (const AuditRow& r : rows) {
        tx.exec_prepared(put, r.seq, r.time_ms, r.node_id, r.kind, r.principal, r.action, r.target, r.outcome,
                         r.client, r.request_id, r.details, r.prev_hash, r.hash, r.signature);
      }
      tx.exec_prepared(c.Prepare("audit_head_put",
                                 "INSERT INTO audit_head (node_id, seq, hash) VALUES ($1, $2, $3) ON CONFLICT "
                                 "(node_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"),
                       db_->node_id(), rows.back().seq, rows.back().hash);
      return {};
    });
  }

  Result<std::vector<AuditRow>> ListAudit(const AuditQuery& q) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading audit_log", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<AuditRow>> {
      const std::string where =
          " FROM audit_log WHERE node_id = $1 AND ($2::text = '' OR kind = $2::text) AND "
          "($3::text = '' OR principal = $3::text) AND starts_with(action, $4::text) AND "
          "($5::bigint = 0 OR time_ms >= $5::bigint) AND ($6::bigint = 0 OR time_ms < $6::bigint) AND "
          "seq > $7::bigint AND ($8::bigint = 0 OR seq < $8::bigint) ORDER BY seq ";
      const std::string name = q.ascending ? "audit_list_asc" : "audit_list_desc";
      const std::string sql = "SELECT " + std::string(kAuditColumns) + where + (q.ascending ? "ASC" : "DESC") +
                              " LIMIT $9::bigint";
      const auto result = tx.exec_prepared(c.Prepare(name, sql), db_->node_id(), q.kind, q.principal,
                                           q.action_prefix, q.since_ms, q.until_ms, q.after_seq, q.before_seq,
                                           static_cast<std::int64_t>(std::min<std::size_t>(q.limit, 1u << 30)));
      std::vector<AuditRow> out;
      out.reserve(result.size());
      for (const auto& r : result) out.push_back(ReadRow(r));
      return out;
    });
  }

  Result<AuditHead> ReadAuditHead() override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading audit_head", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<AuditHead> {
      const auto r = tx.exec_prepared(c.Prepare("audit_head", "SELECT seq, hash FROM audit_head WHERE node_id = $1"),
                                      db_->node_id());
      if (r.empty()) return AuditHead{};
      return AuditHead{Int(r[0][0]), Text(r[0][1])};
    });
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<audit::AuditRepository> MakeAuditRepository(std::shared_ptr<Database> db) {
  return std::make_shared<PostgresAuditRepository>(std::move(db));
}

DomainMigrations AuditMigrations() {
  return {"audit",
          {
              {1, "audit_log", R"sql(
        -- Each node's audit hash chain (src/audit): append-only, signed.
        CREATE TABLE audit_log (
          node_id    TEXT COLLATE "C" NOT NULL,  -- the node that wrote and signed it
          seq        BIGINT NOT NULL,            -- 1, 2, ... per node
          time_ms    BIGINT NOT NULL,
          kind       TEXT NOT NULL,
          principal  TEXT NOT NULL,
          action     TEXT NOT NULL,
          target     TEXT NOT NULL,
          outcome    TEXT NOT NULL,
          client     TEXT NOT NULL,
          request_id TEXT NOT NULL,
          details    TEXT NOT NULL,              -- JSON object
          prev_hash  TEXT NOT NULL,
          hash       TEXT NOT NULL,
          signature  TEXT NOT NULL,
          PRIMARY KEY (node_id, seq)
        );
        CREATE INDEX audit_log_time ON audit_log (node_id, time_ms);
        CREATE INDEX audit_log_principal ON audit_log (node_id, principal, seq);
        -- Each node's last entry, updated in the same transaction as each append.
        CREATE TABLE audit_head (
          node_id TEXT COLLATE "C" PRIMARY KEY,
          seq     BIGINT NOT NULL,
          hash    TEXT NOT NULL
        );
      )sql"},
          }};
}

}  // namespace bzzz::storage::postgres
