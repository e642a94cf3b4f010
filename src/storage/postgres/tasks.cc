// The tasks domain in PostgreSQL: its migrations and its TaskRepository,
// scoped to the node that owns the rows.
#include <algorithm>

#include "storage/postgres/database.h"

namespace bzzz::storage::postgres {
namespace {

using tasks::TaskQuery;
using tasks::TaskRow;
using tasks::TaskTotals;

constexpr std::string_view kTaskColumns =
    "id, COALESCE(idempotency_key, ''), state, executor, project, priority, created_ms, updated_ms, seq, doc";

std::string SelectTasks(std::string_view rest) {
  return "SELECT " + std::string(kTaskColumns) + " FROM tasks " + std::string(rest);
}

TaskRow ReadTask(const pqxx::row& r) {
  TaskRow row;
  row.id = Text(r[0]);
  row.idempotency_key = Text(r[1]);
  row.state = Text(r[2]);
  row.executor = Text(r[3]);
  row.project = Text(r[4]);
  row.priority = static_cast<int>(Int(r[5]));
  row.created_ms = Int(r[6]);
  row.updated_ms = Int(r[7]);
  row.seq = Int(r[8]);
  row.doc = Text(r[9]);
  return row;
}

std::vector<TaskRow> Collect(const pqxx::result& result) {
  std::vector<TaskRow> out;
  out.reserve(result.size());
  for (const auto& r : result) out.push_back(ReadTask(r));
  return out;
}

class PostgresTaskRepository final : public tasks::TaskRepository {
 public:
  explicit PostgresTaskRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    if (upserts.empty() && deletes.empty()) return Status::Ok();
    return db_->Write("writing tasks", [&](PgConnection& c, pqxx::work& tx) -> Status {
      // A row of another node is never overwritten: the update applies only
      // where node_id is ours, and a refused row fails the whole batch.
      const std::string& put = c.Prepare(
          "tasks_put",
          "INSERT INTO tasks (node_id, id, idempotency_key, state, executor, project, priority, created_ms, "
          "updated_ms, seq, doc) VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10, $11) "
          "ON CONFLICT (id) DO UPDATE SET state = excluded.state, priority = excluded.priority, "
          "updated_ms = excluded.updated_ms, doc = excluded.doc WHERE tasks.node_id = excluded.node_id");
      for (const TaskRow& row : upserts) {
        const auto r = tx.exec_prepared(put, db_->node_id(), row.id, row.idempotency_key, row.state, row.executor,
                                        row.project, row.priority, row.created_ms, row.updated_ms, row.seq, row.doc);
        if (r.affected_rows() != 1) return Conflict("writing tasks: task " + row.id + " belongs to another node");
      }
      const std::string& del = c.Prepare("tasks_delete", "DELETE FROM tasks WHERE node_id = $1 AND id = $2");
      for (const std::string& id : deletes) tx.exec_prepared(del, db_->node_id(), id);
      return {};
    });
  }

  Result<TaskRow> GetTask(const std::string& id) override {
    return FindOne("tasks_get", "WHERE node_id = $1 AND id = $2", id, "no task " + id);
  }

  Result<TaskRow> FindTaskByIdempotencyKey(const std::string& key) override {
    return FindOne("tasks_by_key", "WHERE node_id = $1 AND idempotency_key = $2", key,
                   "no task with idempotency key " + key);
  }

  Result<std::vector<TaskRow>> ListTasks(const TaskQuery& q) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("listing tasks", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<TaskRow>> {
      const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(q.limit, 1u << 30));
      return Collect(tx.exec_prepared(
          c.Prepare("tasks_list", SelectTasks("WHERE node_id = $1 AND ($2::text = '' OR state = $2::text) AND "
                                              "($3::text = '' OR executor = $3::text) AND "
                                              "($4::text = '' OR project = $4::text) AND "
                                              "($5::bigint <= 0 OR seq < $5::bigint) ORDER BY seq DESC LIMIT $6::bigint")),
          db_->node_id(), q.state, q.executor, q.project, q.before_seq, limit));
    });
  }

  Result<std::vector<TaskRow>> TasksInStates(const std::vector<std::string>& states) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading tasks", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<TaskRow>> {
      const std::string& stmt =
          c.Prepare("tasks_in_state", SelectTasks("WHERE node_id = $1 AND state = $2 ORDER BY seq"));
      std::vector<TaskRow> out;
      for (const std::string& state : states) {
        for (auto& row : Collect(tx.exec_prepared(stmt, db_->node_id(), state))) out.push_back(std::move(row));
      }
      std::sort(out.begin(), out.end(), [](const TaskRow& a, const TaskRow& b) { return a.seq < b.seq; });
      return out;
    });
  }

  Result<TaskTotals> TaskStats() override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading task totals", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<TaskTotals> {
      TaskTotals totals;
      for (const auto& r : tx.exec_prepared(
               c.Prepare("tasks_by_state",
                         "SELECT state, COUNT(*) FROM tasks WHERE node_id = $1 GROUP BY state ORDER BY state"),
               db_->node_id())) {
        totals.by_state.emplace_back(Text(r[0]), static_cast<std::uint64_t>(Int(r[1])));
      }
      totals.max_seq = Int(tx.exec_prepared(c.Prepare("tasks_max_seq",
                                                      "SELECT COALESCE(MAX(seq), 0) FROM tasks WHERE node_id = $1"),
                                            db_->node_id())[0][0]);
      return totals;
    });
  }

 private:
  Result<TaskRow> FindOne(const std::string& name, std::string_view where, const std::string& value,
                          const std::string& missing) {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("reading tasks", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<TaskRow> {
      const auto r = tx.exec_prepared(c.Prepare(name, SelectTasks(where)), db_->node_id(), value);
      if (r.empty()) return NotFound(missing);
      return ReadTask(r[0]);
    });
  }

  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<tasks::TaskRepository> MakeTaskRepository(std::shared_ptr<Database> db) {
  return std::make_shared<PostgresTaskRepository>(std::move(db));
}

DomainMigrations TaskMigrations() {
  return {"tasks",
          {
              {1, "tasks", R"sql(
        -- Tasks (src/tasks) of every node: node_id owns the row; filter
        -- columns plus the whole task (attempts, events) as JSON in doc.
        CREATE TABLE tasks (
          id              TEXT COLLATE "C" PRIMARY KEY,
          node_id         TEXT COLLATE "C" NOT NULL,
          idempotency_key TEXT COLLATE "C",     -- NULL when none
          state           TEXT NOT NULL,
          executor        TEXT NOT NULL,
          project         TEXT NOT NULL,
          priority        INTEGER NOT NULL,
          created_ms      BIGINT NOT NULL,      -- Unix milliseconds
          updated_ms      BIGINT NOT NULL,
          seq             BIGINT NOT NULL,      -- creation order on the owning node
          doc             TEXT NOT NULL,
          UNIQUE (node_id, idempotency_key)
        );
        CREATE INDEX tasks_by_seq ON tasks (node_id, seq);
        CREATE INDEX tasks_by_state ON tasks (node_id, state, seq);
      )sql"},
          }};
}

}  // namespace bzzz::storage::postgres
