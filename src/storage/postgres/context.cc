// The UCXL context domain in PostgreSQL: its migrations and its
// ContextRepository (append-only versions per key, per node).
#include <algorithm>

#include "storage/postgres/database.h"

namespace bzzz::storage::postgres {
namespace {

using ucxl::ContextTotals;
using ucxl::ContextVersion;

constexpr std::string_view kVersionColumns =
    "key, number, author_agent, author_role, created_ms, content_type, size, content_hash, tombstone, logical";

ContextVersion ReadVersion(const pqxx::row& r) {
  ContextVersion v;
  v.key = Text(r[0]);
  v.number = static_cast<std::uint64_t>(Int(r[1]));
  v.author_agent = Text(r[2]);
  v.author_role = Text(r[3]);
  v.created_ms = Int(r[4]);
  v.content_type = Text(r[5]);
  v.size = static_cast<std::uint64_t>(Int(r[6]));
  v.content_hash = Text(r[7]);
  v.tombstone = r[8].as<bool>();
  v.logical = static_cast<std::uint32_t>(Int(r[9]));
  return v;
}

std::vector<ContextVersion> Collect(const pqxx::result& result) {
  std::vector<ContextVersion> out;
  out.reserve(result.size());
  for (const auto& r : result) out.push_back(ReadVersion(r));
  return out;
}

std::string Select(std::string_view rest) { return "SELECT " + std::string(kVersionColumns) + " " + std::string(rest); }

class PostgresContextRepository final : public ucxl::ContextRepository {
 public:
  explicit PostgresContextRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Result<ContextVersion> AppendContextVersion(ContextVersion v, const std::string& stored) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Write("writing context_versions", [&](PgConnection& c, pqxx::work& tx) -> Result<ContextVersion> {
      // Appends to one key are serialized by a transaction-scoped advisory
      // lock on (node, key), so "the key's next number" is never taken twice.
      tx.exec_prepared(c.Prepare("ctx_lock", "SELECT pg_advisory_xact_lock(hashtextextended($1 || '|' || $2, 0))"),
                       db_->node_id(), v.key);
      const auto r = tx.exec_prepared(
          c.Prepare("ctx_append",
                    "INSERT INTO context_versions (node_id, key, number, author_agent, author_role, created_ms, "
                    "content_type, size, content_hash, tombstone, content, logical) VALUES ($1, $2, "
                    "(SELECT COALESCE(MAX(number), 0) + 1 FROM context_versions WHERE node_id = $1 AND key = $2), "
                    "$3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING number"),
          db_->node_id(), v.key, v.author_agent, v.author_role, v.created_ms, v.content_type,
          static_cast<std::int64_t>(v.size), v.content_hash, v.tombstone, pqxx::binarystring(stored),
          static_cast<std::int64_t>(v.logical));
      v.number = static_cast<std::uint64_t>(Int(r[0][0]));
      return v;
    });
  }

  Result<std::vector<ContextVersion>> ContextHistory(const std::string& key) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading context_versions",
                     [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<ContextVersion>> {
                       return Collect(tx.exec_prepared(
                           c.Prepare("ctx_history",
                                     Select("FROM context_versions WHERE node_id = $1 AND key = $2 ORDER BY number")),
                           db_->node_id(), key));
                     });
  }

  Result<std::string> ContextContent(const std::string& key, std::uint64_t number) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading context_versions", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::string> {
      const auto r = tx.exec_prepared(
          c.Prepare("ctx_content",
                    "SELECT content FROM context_versions WHERE node_id = $1 AND key = $2 AND number = $3"),
          db_->node_id(), key, static_cast<std::int64_t>(number));
      if (r.empty()) return NotFound("no version " + std::to_string(number) + " of " + key);
      return Bytes(r[0][0]);
    });
  }

  Result<std::vector<ContextVersion>> SearchContext(const std::string& text, std::size_t limit) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("searching context_versions",
                     [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<ContextVersion>> {
                       // The latest version of each key (DISTINCT ON), then the
                       // filters, as the SQLite backend does.
                       return Collect(tx.exec_prepared(
                           c.Prepare("ctx_search",
                                     Select("FROM (SELECT DISTINCT ON (key) * FROM context_versions WHERE node_id = $1 "
                                            "ORDER BY key, number DESC) v WHERE NOT tombstone AND ($2::text = '' OR "
                                            "strpos(key, $2::text) > 0 OR strpos(content_type, $2::text) > 0 OR "
                                            "strpos(author_agent, $2::text) > 0 OR strpos(author_role, $2::text) > 0 "
                                            "OR position(convert_to($2::text, 'UTF8') in content) > 0) "
                                            "ORDER BY key LIMIT $3::bigint")),
                           db_->node_id(), text, static_cast<std::int64_t>(std::min<std::size_t>(limit, 1u << 30))));
                     });
  }

  Result<ContextTotals> ContextStats() override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading context_versions", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<ContextTotals> {
      const auto r = tx.exec_prepared(
          c.Prepare("ctx_stats",
                    "SELECT COUNT(*), COALESCE(SUM(octet_length(content)), 0) FROM context_versions WHERE node_id = $1"),
          db_->node_id());
      return ContextTotals{static_cast<std::uint64_t>(Int(r[0][0])), static_cast<std::uint64_t>(Int(r[0][1]))};
    });
  }

  Result<std::vector<std::pair<ContextVersion, std::string>>> ContextVersionsAfter(const std::string& key,
                                                                                  std::uint64_t number,
                                                                                  std::size_t limit) override {
    using Rows = std::vector<std::pair<ContextVersion, std::string>>;
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("scanning context_versions", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<Rows> {
      const auto result = tx.exec_prepared(
          c.Prepare("ctx_after", Select(", content FROM context_versions WHERE node_id = $1 AND (key, number) > "
                                        "($2::text, $3::bigint) ORDER BY key, number LIMIT $4::bigint")),
          db_->node_id(), key, static_cast<std::int64_t>(number),
          static_cast<std::int64_t>(std::min<std::size_t>(limit, 1u << 20)));
      Rows out;
      out.reserve(result.size());
      for (const auto& r : result) out.emplace_back(ReadVersion(r), Bytes(r[10]));
      return out;
    });
  }

  Status ReplaceContextContent(const std::string& key, std::uint64_t number, const std::string& stored) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Write("re-wrapping a context version", [&](PgConnection& c, pqxx::work& tx) -> Status {
      const auto r = tx.exec_prepared(
          c.Prepare("ctx_replace",
                    "UPDATE context_versions SET content = $4 WHERE node_id = $1 AND key = $2 AND number = $3"),
          db_->node_id(), key, static_cast<std::int64_t>(number), pqxx::binarystring(stored));
      if (r.affected_rows() == 0) return NotFound("no version " + std::to_string(number) + " of " + key);
      return {};
    });
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<ucxl::ContextRepository> MakeContextRepository(std::shared_ptr<Database> db) {
  return std::make_shared<PostgresContextRepository>(std::move(db));
}

DomainMigrations ContextMigrations() {
  return {"ucxl",
          {
              {1, "ucxl_context_versions", R"sql(
        -- Append-only versions of the content at UCXL addresses (src/ucxl),
        -- per node: each node keeps its own log, as in its own SQLite file.
        CREATE TABLE context_versions (
          node_id      TEXT COLLATE "C" NOT NULL,
          key          TEXT COLLATE "C" NOT NULL,  -- ucxl://agent:role@project:task/path
          number       BIGINT NOT NULL,            -- 1, 2, ... per key
          author_agent TEXT NOT NULL,
          author_role  TEXT NOT NULL,
          created_ms   BIGINT NOT NULL,            -- Unix milliseconds
          content_type TEXT NOT NULL,
          size         BIGINT NOT NULL,
          content_hash TEXT NOT NULL,              -- hex SHA-256 of the content as given
          tombstone    BOOLEAN NOT NULL DEFAULT false,
          content      BYTEA NOT NULL,             -- as stored (sealed per role)
          PRIMARY KEY (node_id, key, number)
        );
      )sql"},
              {2, "ucxl_hybrid_logical_clock", R"sql(
        -- The counter of the hybrid logical clock (created_ms is its
        -- physical part), as in the SQLite backend's step 2.
        ALTER TABLE context_versions ADD COLUMN logical BIGINT NOT NULL DEFAULT 0;
      )sql"},
          }};
}

}  // namespace bzzz::storage::postgres
