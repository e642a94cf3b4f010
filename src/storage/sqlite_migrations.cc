// The schema of the SQLite backend, one Migration per version.
//
// Rules for adding a step:
// - Append; never edit or reorder a step that has shipped. Databases in the
//   field have it recorded in schema_migrations and will not run it again.
// - Each step runs inside one BEGIN IMMEDIATE transaction, so it must not
//   contain BEGIN/COMMIT, nor PRAGMAs that are no-ops inside a transaction
//   (journal_mode, foreign_keys); the store sets those on every connection.
// - Later subsystems (tasks, attempts, dead letters, HMMM threads, UCXL
//   versions, audit log, users and tokens) each add their own step.
#include "storage/sqlite_store.h"

namespace bzzz::storage {

const std::vector<Migration>& SqliteMigrations() {
  // Leaked on purpose: no destructor runs at exit while another thread may
  // still be opening a store.
  static const auto* const kMigrations = new std::vector<Migration>{
      {1, "initial", R"sql(
        -- Small durable facts about the node: first start, ids.
        CREATE TABLE node_meta (
          key        TEXT PRIMARY KEY,
          value      TEXT NOT NULL,
          updated_at TEXT NOT NULL  -- ISO 8601 UTC
        );
      )sql"},
      {2, "ucxl_context_versions", R"sql(
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
      {3, "tasks", R"sql(
        -- Tasks this node owns (src/tasks): filter columns plus the whole
        -- task (attempts, events) as JSON in doc.
        CREATE TABLE tasks (
          id              TEXT PRIMARY KEY,
          idempotency_key TEXT UNIQUE,        -- NULL when none
          state           TEXT NOT NULL,
          executor        TEXT NOT NULL,
          project         TEXT NOT NULL,
          priority        INTEGER NOT NULL,
          created_ms      INTEGER NOT NULL,   -- Unix milliseconds
          updated_ms      INTEGER NOT NULL,
          seq             INTEGER NOT NULL,   -- creation order on this node
          doc             TEXT NOT NULL
        );
        CREATE INDEX tasks_by_seq ON tasks (seq);
        CREATE INDEX tasks_by_state ON tasks (state, seq);
      )sql"},
  };
  return *kMigrations;
}

}  // namespace bzzz::storage
