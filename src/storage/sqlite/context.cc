// The UCXL context domain in SQLite: its migrations and its
// ContextRepository (append-only versions per key).
#include <algorithm>

#include "storage/sqlite/database.h"

namespace bzzz::storage::sqlite {
namespace {

using ucxl::ContextTotals;
using ucxl::ContextVersion;

constexpr std::string_view kVersionColumns =
    "key, number, author_agent, author_role, created_ms, content_type, size, content_hash, tombstone, logical";

ContextVersion ReadVersion(sqlite3_stmt* stmt) {
  ContextVersion v;
  v.key = ColumnText(stmt, 0);
  v.number = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1));
  v.author_agent = ColumnText(stmt, 2);
  v.author_role = ColumnText(stmt, 3);
  v.created_ms = sqlite3_column_int64(stmt, 4);
  v.content_type = ColumnText(stmt, 5);
  v.size = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 6));
  v.content_hash = ColumnText(stmt, 7);
  v.tombstone = sqlite3_column_int64(stmt, 8) != 0;
  v.logical = static_cast<std::uint32_t>(sqlite3_column_int64(stmt, 9));
  return v;
}

Result<std::vector<ContextVersion>> CollectVersions(SqliteConnection& conn, sqlite3_stmt* stmt,
                                                    std::string_view what) {
  std::vector<ContextVersion> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadVersion(stmt));
  if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), what);
  return out;
}

class SqliteContextRepository final : public ucxl::ContextRepository {
 public:
  explicit SqliteContextRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Result<ContextVersion> AppendContextVersion(ContextVersion v, const std::string& stored) override {
    return db_->Write("append context version", [&](SqliteConnection& conn) -> Result<ContextVersion> {
      // One statement under the writer lock: the number is the key's next.
      sqlite3_stmt* stmt = conn.Prepare(
          "INSERT INTO context_versions (key, number, author_agent, author_role, created_ms, content_type, "
          "size, "
          "content_hash, tombstone, content, logical) VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM "
          "context_versions WHERE key = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING number");
      if (stmt == nullptr) return PrepareError(conn.db(), "writing context_versions");
      StmtUse use(stmt);
      for (auto [i, text] : {std::pair{1, &v.key},
                             {2, &v.author_agent},
                             {3, &v.author_role},
                             {5, &v.content_type},
                             {7, &v.content_hash}}) {
        if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
      }
      sqlite3_bind_int64(stmt, 4, v.created_ms);
      sqlite3_bind_int64(stmt, 6, static_cast<sqlite3_int64>(v.size));
      sqlite3_bind_int64(stmt, 8, v.tombstone ? 1 : 0);
      if (Status s = BindBlob(stmt, 9, stored); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 10, v.logical);
      int rc = sqlite3_step(stmt);
      if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "writing context_versions");
      v.number = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
      rc = sqlite3_step(stmt);
      if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "writing context_versions");
      return v;
    });
  }

  Result<std::vector<ContextVersion>> ContextHistory(const std::string& key) override {
    return db_->Read("context history", [&](SqliteConnection& conn) -> Result<std::vector<ContextVersion>> {
      sqlite3_stmt* stmt = conn.Prepare(std::string("SELECT ") + std::string(kVersionColumns) +
                                        " FROM context_versions WHERE key = ?1 ORDER BY number");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading context_versions");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
      return CollectVersions(conn, stmt, "reading context_versions");
    });
  }

  Result<std::string> ContextContent(const std::string& key, std::uint64_t number) override {
    return db_->Read("context content", [&](SqliteConnection& conn) -> Result<std::string> {
      sqlite3_stmt* stmt =
          conn.Prepare("SELECT content FROM context_versions WHERE key = ?1 AND number = ?2");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading context_versions");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(number));
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return NotFound("no version " + std::to_string(number) + " of " + key);
      if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading context_versions");
      const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, 0));
      return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)))
                  : std::string();
    });
  }

  Result<std::vector<ContextVersion>> SearchContext(const std::string& text, std::size_t limit) override {
    return db_->Read("search context", [&](SqliteConnection& conn) -> Result<std::vector<ContextVersion>> {
      sqlite3_stmt* stmt = conn.Prepare(
          std::string("SELECT ") + std::string(kVersionColumns) +
          " FROM context_versions v WHERE number = (SELECT MAX(number) FROM context_versions w WHERE w.key = "
          "v.key) "
          "AND tombstone = 0 AND (?1 = '' OR instr(key, ?1) > 0 OR instr(content_type, ?1) > 0 OR "
          "instr(author_agent, ?1) > 0 OR instr(author_role, ?1) > 0 OR instr(content, CAST(?1 AS BLOB)) > "
          "0) "
          "ORDER BY key LIMIT ?2");
      if (stmt == nullptr) return PrepareError(conn.db(), "searching context_versions");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, text); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(std::min<std::size_t>(limit, 1u << 30)));
      return CollectVersions(conn, stmt, "searching context_versions");
    });
  }

  Result<ContextTotals> ContextStats() override {
    return db_->Read("context stats", [&](SqliteConnection& conn) -> Result<ContextTotals> {
      sqlite3_stmt* stmt =
          conn.Prepare("SELECT COUNT(*), COALESCE(SUM(length(content)), 0) FROM context_versions");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading context_versions");
      StmtUse use(stmt);
      if (int rc = sqlite3_step(stmt); rc != SQLITE_ROW) {
        return RuntimeError(LastError(conn.db(), rc), "reading context_versions");
      }
      return ContextTotals{static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0)),
                           static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1))};
    });
  }

  Result<std::vector<std::pair<ContextVersion, std::string>>> ContextVersionsAfter(const std::string& key,
                                                                                  std::uint64_t number,
                                                                                  std::size_t limit) override {
    using Rows = std::vector<std::pair<ContextVersion, std::string>>;
    return db_->Read("scan context", [&](SqliteConnection& conn) -> Result<Rows> {
      sqlite3_stmt* stmt = conn.Prepare(std::string("SELECT ") + std::string(kVersionColumns) +
                                        ", content FROM context_versions WHERE (key, number) > (?1, ?2) "
                                        "ORDER BY key, number LIMIT ?3");
      if (stmt == nullptr) return PrepareError(conn.db(), "scanning context_versions");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(number));
      sqlite3_bind_int64(stmt, 3, static_cast<sqlite3_int64>(std::min<std::size_t>(limit, 1u << 20)));
      Rows out;
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, 10));
        out.emplace_back(ReadVersion(stmt),
                         data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 10))) : "");
      }
      if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "scanning context_versions");
      return out;
    });
  }

  Status ReplaceContextContent(const std::string& key, std::uint64_t number, const std::string& stored) override {
    auto done = db_->Write("re-wrap context version", [&](SqliteConnection& conn) -> Result<bool> {
      sqlite3_stmt* stmt = conn.Prepare("UPDATE context_versions SET content = ?3 WHERE key = ?1 AND number = ?2");
      if (stmt == nullptr) return PrepareError(conn.db(), "writing context_versions");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(number));
      if (Status s = BindBlob(stmt, 3, stored); !s.ok()) return s;
      if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) {
        return RuntimeError(LastError(conn.db(), rc), "writing context_versions");
      }
      return sqlite3_changes(conn.db()) > 0;
    });
    if (!done.ok()) return done.status();
    if (!*done) return NotFound("no version " + std::to_string(number) + " of " + key);
    return Status::Ok();
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<ucxl::ContextRepository> MakeContextRepository(std::shared_ptr<Database> db) {
  return std::make_shared<SqliteContextRepository>(std::move(db));
}

DomainMigrations ContextMigrations() {
  return {"ucxl",
          {
              {1, "ucxl_context_versions", R"sql(
        -- Append-only versions of the content at UCXL addresses (src/ucxl).
        CREATE TABLE context_versions (
          key          TEXT NOT NULL,     -- ucxl://agent:role@project:task/path
          number       INTEGER NOT NULL,  -- 1, 2, ... per key
          author_agent TEXT NOT NULL,
          author_role  TEXT NOT NULL,
          created_ms   INTEGER NOT NULL,  -- Unix milliseconds
          content_type TEXT NOT NULL,
          size         INTEGER NOT NULL,
          content_hash TEXT NOT NULL,     -- hex SHA-256 of the content as given
          tombstone    INTEGER NOT NULL DEFAULT 0,
          content      BLOB NOT NULL,     -- as stored (sealed by role encryption later)
          PRIMARY KEY (key, number)
        ) WITHOUT ROWID;
      )sql"},
              {2, "ucxl_hybrid_logical_clock", R"sql(
        -- The counter of the hybrid logical clock that orders the versions
        -- of one key written by several nodes (created_ms is its physical
        -- part); content holds the sealed envelope (src/keys) from now on.
        ALTER TABLE context_versions ADD COLUMN logical INTEGER NOT NULL DEFAULT 0;
      )sql"},
          }};
}

}  // namespace bzzz::storage::sqlite
