// The tasks domain in SQLite: its migrations and its TaskRepository.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "storage/sqlite/database.h"

namespace bzzz::storage::sqlite {
namespace {

using tasks::TaskQuery;
using tasks::TaskRow;
using tasks::TaskTotals;

constexpr std::string_view kTaskColumns =
    "id, COALESCE(idempotency_key, ''), state, executor, project, priority, created_ms, updated_ms, seq, doc";

TaskRow ReadTask(sqlite3_stmt* stmt) {
  TaskRow row;
  row.id = ColumnText(stmt, 0);
  row.idempotency_key = ColumnText(stmt, 1);
  row.state = ColumnText(stmt, 2);
  row.executor = ColumnText(stmt, 3);
  row.project = ColumnText(stmt, 4);
  row.priority = sqlite3_column_int(stmt, 5);
  row.created_ms = sqlite3_column_int64(stmt, 6);
  row.updated_ms = sqlite3_column_int64(stmt, 7);
  row.seq = sqlite3_column_int64(stmt, 8);
  row.doc = ColumnText(stmt, 9);
  return row;
}

// Runs a prepared query and collects its rows.
Result<std::vector<TaskRow>> CollectTasks(SqliteConnection& conn, sqlite3_stmt* stmt) {
  std::vector<TaskRow> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadTask(stmt));
  if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading tasks");
  return out;
}

std::string SelectTasks(std::string_view rest) {
  return std::string("SELECT ") + std::string(kTaskColumns) + " FROM tasks " + std::string(rest);
}

class SqliteTaskRepository final : public tasks::TaskRepository {
 public:
  explicit SqliteTaskRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) override {
    auto on_error = [](const SqlError& e) -> Status {
      if ((e.code & 0xff) == SQLITE_CONSTRAINT) return Conflict("writing tasks: " + e.message);
      return RuntimeError(e, "writing tasks");
    };
    return db_->Transaction(
        "write tasks",
        [&](SqliteConnection& conn) -> SqlError {
          sqlite3* db = conn.db();
          sqlite3_stmt* put = conn.Prepare(
              "INSERT INTO tasks (id, idempotency_key, state, executor, project, priority, created_ms, "
              "updated_ms, seq, "
              "doc) VALUES (?1, NULLIF(?2, ''), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO UPDATE "
              "SET "
              "state = excluded.state, priority = excluded.priority, updated_ms = excluded.updated_ms, doc = "
              "excluded.doc");
          if (put == nullptr) return LastError(db, sqlite3_extended_errcode(db));
          for (const TaskRow& row : upserts) {
            StmtUse use(put);
            for (auto [i, text] : {std::pair{1, &row.id},
                                   {2, &row.idempotency_key},
                                   {3, &row.state},
                                   {4, &row.executor},
                                   {5, &row.project},
                                   {10, &row.doc}}) {
              if (Status s = BindText(put, i, *text); !s.ok()) return {SQLITE_ERROR, s.message()};
            }
            sqlite3_bind_int(put, 6, row.priority);
            sqlite3_bind_int64(put, 7, row.created_ms);
            sqlite3_bind_int64(put, 8, row.updated_ms);
            sqlite3_bind_int64(put, 9, row.seq);
            if (int rc = sqlite3_step(put); rc != SQLITE_DONE) return LastError(db, rc);
          }
          if (deletes.empty()) return {};
          sqlite3_stmt* del = conn.Prepare("DELETE FROM tasks WHERE id = ?1");
          if (del == nullptr) return LastError(db, sqlite3_extended_errcode(db));
          for (const std::string& id : deletes) {
            StmtUse use(del);
            if (Status s = BindText(del, 1, id); !s.ok()) return {SQLITE_ERROR, s.message()};
            if (int rc = sqlite3_step(del); rc != SQLITE_DONE) return LastError(db, rc);
          }
          return {};
        },
        on_error);
  }

  Result<TaskRow> GetTask(const std::string& id) override {
    return FindOne("get task", "WHERE id = ?1", id, "no task " + id);
  }

  Result<TaskRow> FindTaskByIdempotencyKey(const std::string& key) override {
    return FindOne("find task", "WHERE idempotency_key = ?1", key, "no task with idempotency key " + key);
  }

  Result<std::vector<TaskRow>> ListTasks(const TaskQuery& q) override {
    return db_->Read("list tasks", [&](SqliteConnection& conn) -> Result<std::vector<TaskRow>> {
      sqlite3_stmt* stmt = conn.Prepare(
          // seq is the table's key: a page starts right below ?4 instead of
          // scanning down from the newest task.
          SelectTasks("WHERE (?1 = '' OR state = ?1) AND (?2 = '' OR executor = ?2) AND "
                      "(?3 = '' OR project = ?3) AND seq < ?4 ORDER BY seq DESC LIMIT ?5"));
      if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
      StmtUse use(stmt);
      for (auto [i, text] : {std::pair{1, &q.state}, {2, &q.executor}, {3, &q.project}}) {
        if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
      }
      sqlite3_bind_int64(stmt, 4, q.before_seq > 0 ? q.before_seq : std::numeric_limits<std::int64_t>::max());
      sqlite3_bind_int64(stmt, 5, static_cast<sqlite3_int64>(std::min<std::size_t>(q.limit, 1u << 30)));
      return CollectTasks(conn, stmt);
    });
  }

  Result<std::vector<TaskRow>> TasksInStates(const std::vector<std::string>& states) override {
    return db_->Read("tasks in states", [&](SqliteConnection& conn) -> Result<std::vector<TaskRow>> {
      sqlite3_stmt* stmt = conn.Prepare(SelectTasks("WHERE state = ?1 ORDER BY seq"));
      if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
      std::vector<TaskRow> out;
      for (const std::string& state : states) {
        StmtUse use(stmt);
        if (Status s = BindText(stmt, 1, state); !s.ok()) return s;
        auto rows = CollectTasks(conn, stmt);
        if (!rows.ok()) return rows.status();
        for (auto& r : *rows) out.push_back(std::move(r));
      }
      std::sort(out.begin(), out.end(), [](const TaskRow& a, const TaskRow& b) { return a.seq < b.seq; });
      return out;
    });
  }

  Result<TaskTotals> TaskStats() override {
    return db_->Read("task stats", [&](SqliteConnection& conn) -> Result<TaskTotals> {
      TaskTotals totals;
      sqlite3_stmt* stmt = conn.Prepare("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
      {
        StmtUse use(stmt);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
          totals.by_state.emplace_back(ColumnText(stmt, 0),
                                       static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1)));
        }
        if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading tasks");
      }
      sqlite3_stmt* max = conn.Prepare("SELECT COALESCE(MAX(seq), 0) FROM tasks");
      if (max == nullptr) return PrepareError(conn.db(), "reading tasks");
      StmtUse use(max);
      if (int rc = sqlite3_step(max); rc != SQLITE_ROW)
        return RuntimeError(LastError(conn.db(), rc), "reading tasks");
      totals.max_seq = sqlite3_column_int64(max, 0);
      return totals;
    });
  }

 private:
  // The one row matching `where` (one text parameter), or NotFound.
  Result<TaskRow> FindOne(std::string_view what, std::string_view where, const std::string& value,
                          const std::string& missing) {
    return db_->Read(what, [&](SqliteConnection& conn) -> Result<TaskRow> {
      sqlite3_stmt* stmt = conn.Prepare(SelectTasks(where));
      if (stmt == nullptr) return PrepareError(conn.db(), "reading tasks");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, value); !s.ok()) return s;
      auto rows = CollectTasks(conn, stmt);
      if (!rows.ok()) return rows.status();
      if (rows->empty()) return NotFound(missing);
      return std::move(rows->front());
    });
  }

  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<tasks::TaskRepository> MakeTaskRepository(std::shared_ptr<Database> db) {
  return std::make_shared<SqliteTaskRepository>(std::move(db));
}

DomainMigrations TaskMigrations() {
  return {"tasks",
          {
              {1, "tasks", R"sql(
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
              {2, "task_owners", R"sql(
        -- Leases and terms of task owners in a database shared by several
        -- nodes (PostgreSQL, tasks/repository.h TaskOwnership). A file of
        -- one node never has another owner: the table stays empty here and
        -- exists so that both backends report the same schema versions.
        CREATE TABLE task_owners (
          node_id       TEXT PRIMARY KEY,
          term          INTEGER NOT NULL,
          lease_expires TEXT NOT NULL,
          taken_by      TEXT,
          taken_at      TEXT
        );
      )sql"},
              {3, "tasks_lighter_indexes", R"sql(
        -- The task writer's rows maintain three B-trees instead of five: the
        -- table is keyed by seq (this node's creation counter, unique), so
        -- new rows are appended and listings in creation order read the
        -- table itself (tasks_by_seq goes); the id's UNIQUE index finds a
        -- task; and only tasks with an idempotency key have an entry in the
        -- key's index.
        CREATE TABLE tasks_by_seq_new (
          seq             INTEGER PRIMARY KEY,  -- creation order on this node
          id              TEXT NOT NULL UNIQUE,
          idempotency_key TEXT,                 -- NULL when none
          state           TEXT NOT NULL,
          executor        TEXT NOT NULL,
          project         TEXT NOT NULL,
          priority        INTEGER NOT NULL,
          created_ms      INTEGER NOT NULL,     -- Unix milliseconds
          updated_ms      INTEGER NOT NULL,
          doc             TEXT NOT NULL
        );
        INSERT INTO tasks_by_seq_new (seq, id, idempotency_key, state, executor, project, priority,
                                      created_ms, updated_ms, doc)
          SELECT seq, id, idempotency_key, state, executor, project, priority, created_ms, updated_ms, doc
          FROM tasks ORDER BY seq;
        DROP TABLE tasks;
        ALTER TABLE tasks_by_seq_new RENAME TO tasks;
        CREATE UNIQUE INDEX tasks_by_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
        -- An index's entries end with the rowid (seq): a state's tasks come
        -- in creation order.
        CREATE INDEX tasks_by_state ON tasks (state);
      )sql"},
          }};
}

}  // namespace bzzz::storage::sqlite
