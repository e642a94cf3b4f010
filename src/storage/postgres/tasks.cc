// The tasks domain in PostgreSQL: its migrations and its TaskRepository,
// scoped to the node that owns the rows.
#include <algorithm>
#include <atomic>
#include <chrono>

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

// The states of a task that has not finished (TaskManager's recovery set):
// what a takeover moves.
constexpr std::string_view kOpenStates = "('queued', 'assigned', 'running', 'failed', 'retried')";

class PostgresTaskRepository final : public tasks::TaskRepository, public tasks::TaskOwnership {
 public:
  explicit PostgresTaskRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  tasks::TaskOwnership* Ownership() override { return this; }

  // ---- ownership (tasks/repository.h TaskOwnership) ----

  Result<std::int64_t> Claim(std::chrono::milliseconds ttl) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    auto term = db_->Write("claiming task ownership", [&](PgConnection& c, pqxx::work& tx) -> Result<std::int64_t> {
      const auto r = tx.exec_prepared(
          c.Prepare("owner_claim",
                    "INSERT INTO task_owners (node_id, term, lease_expires) VALUES ($1, 1, now() + $2::bigint * "
                    "interval '1 millisecond') ON CONFLICT (node_id) DO UPDATE SET term = task_owners.term + 1, "
                    "lease_expires = excluded.lease_expires, taken_by = NULL, taken_at = NULL RETURNING term"),
          db_->node_id(), ttl.count());
      return Int(r[0][0]);
    });
    if (!term.ok()) return term.status();
    term_.store(*term);
    fenced_.store(false);
    return *term;
  }

  Status Renew(std::chrono::milliseconds ttl) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    const std::int64_t term = term_.load();
    if (term == 0) return FailedPrecondition("renewing task ownership before claiming it");
    auto renewed = db_->Write("renewing task ownership", [&](PgConnection& c, pqxx::work& tx) -> Result<bool> {
      const auto r = tx.exec_prepared(
          c.Prepare("owner_renew",
                    "UPDATE task_owners SET lease_expires = now() + $3::bigint * interval '1 millisecond' "
                    "WHERE node_id = $1 AND term = $2"),
          db_->node_id(), term, ttl.count());
      return r.affected_rows() == 1;
    });
    if (!renewed.ok()) return renewed.status();
    if (!*renewed) {
      fenced_.store(true);
      return Conflict("task ownership term " + std::to_string(term) + " of " + db_->node_id() +
                      " was ended by another node (its lease had expired)");
    }
    return Status::Ok();
  }

  bool Fenced() const override { return fenced_.load(); }

  Result<std::vector<std::string>> ExpiredOwners() override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    return db_->Read("listing expired task owners",
                     [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<std::string>> {
                       std::vector<std::string> out;
                       for (const auto& r : tx.exec_prepared(
                                c.Prepare("owner_expired",
                                          "SELECT o.node_id FROM task_owners o WHERE o.node_id <> $1 AND "
                                          "o.lease_expires < now() AND EXISTS (SELECT 1 FROM tasks t WHERE "
                                          "t.node_id = o.node_id AND t.state IN " +
                                              std::string(kOpenStates) + ") ORDER BY o.lease_expires"),
                                db_->node_id())) {
                         out.push_back(Text(r[0]));
                       }
                       return out;
                     });
  }

  Result<std::vector<TaskRow>> TakeOver(const std::string& owner) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    if (owner == db_->node_id()) return InvalidArgument("a node does not take over its own tasks");
    return db_->Write("taking over tasks", [&](PgConnection& c, pqxx::work& tx) -> Result<std::vector<TaskRow>> {
      // Never wait on locks a dead owner's session may still hold (the
      // server ends such a session, idle in its transaction, after 5 s):
      // give up at once and try again at the next round, well within this
      // node's own lease.
      tx.exec("SET LOCAL lock_timeout = '200ms'");
      // Ends the owner's term (fencing its writes: they check the term under
      // a share lock of this row) only if its lease is still expired now;
      // the row lock orders this against the owner's own renewal or claim.
      const auto fenced = tx.exec_prepared(
          c.Prepare("owner_fence",
                    "UPDATE task_owners SET term = term + 1, taken_by = $2, taken_at = now() "
                    "WHERE node_id = $1 AND lease_expires < now() RETURNING term"),
          owner, db_->node_id());
      if (fenced.empty()) return std::vector<TaskRow>{};
      // The moved rows lose their idempotency key in the store until their
      // new owner writes them again: it keeps a key it does not use already
      // (TaskCore::Adopt decides from what it holds in memory; a key used by
      // one of its rows that only the store still has is dropped here).
      const auto moved = tx.exec_prepared(
          c.Prepare("owner_move",
                    "WITH moving AS (SELECT id, idempotency_key AS old_key FROM tasks WHERE node_id = $1 AND "
                    "state IN " + std::string(kOpenStates) + " FOR UPDATE) "
                    "UPDATE tasks t SET node_id = $2, idempotency_key = NULL FROM moving WHERE t.id = moving.id "
                    "RETURNING t.id, CASE WHEN moving.old_key IS NULL OR EXISTS (SELECT 1 FROM tasks m WHERE "
                    "m.node_id = $2 AND m.idempotency_key = moving.old_key) THEN '' ELSE moving.old_key END, "
                    "t.state, t.executor, t.project, t.priority, t.created_ms, t.updated_ms, t.seq, t.doc"),
          owner, db_->node_id());
      return Collect(moved);
    });
  }

  Result<TaskRow> GetAnyTask(const std::string& id) override {
    return db_->Read("reading tasks", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<TaskRow> {
      const auto r = tx.exec_prepared(c.Prepare("tasks_get_any", SelectTasks("WHERE id = $1")), id);
      if (r.empty()) return NotFound("no task " + id);
      return ReadTask(r[0]);
    });
  }

  Result<std::vector<std::pair<std::string, TaskRow>>> ListAllTasks(const tasks::ClusterTaskQuery& q) override {
    using Rows = std::vector<std::pair<std::string, TaskRow>>;
    return db_->Read("listing tasks", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<Rows> {
      const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(q.limit, 1u << 30));
      const auto result = tx.exec_prepared(
          c.Prepare("tasks_list_all",
                    "SELECT " + std::string(kTaskColumns) +
                        ", node_id FROM tasks WHERE ($1::text = '' OR node_id = $1::text) AND "
                        "($2::text = '' OR state = $2::text) AND ($3::text = '' OR executor = $3::text) AND "
                        "($4::text = '' OR project = $4::text) AND ($5::text = '' OR id < $5::text) "
                        "ORDER BY id DESC LIMIT $6::bigint"),
          q.node, q.state, q.executor, q.project, q.before_id, limit);
      Rows out;
      out.reserve(result.size());
      for (const auto& r : result) out.emplace_back(Text(r[10]), ReadTask(r));
      return out;
    });
  }

  Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    if (upserts.empty() && deletes.empty()) return Status::Ok();
    const std::int64_t term = term_.load();
    return db_->Write("writing tasks", [&](PgConnection& c, pqxx::work& tx) -> Status {
      // Fencing: once this node has claimed, every write checks that its
      // term is still current, under a share lock that a takeover's update
      // of the same row waits for (and that waits for a takeover).
      if (term != 0) {
        const auto r = tx.exec_prepared(
            c.Prepare("owner_check", "SELECT term FROM task_owners WHERE node_id = $1 FOR SHARE"), db_->node_id());
        if (r.empty() || Int(r[0][0]) != term) {
          fenced_.store(true);
          return Conflict("writing tasks: this node's ownership term " + std::to_string(term) +
                          " was ended by a takeover; its tasks belong to another node now");
        }
      }
      // A row of another node is never overwritten: the update applies only
      // where node_id is ours, and a refused row fails the whole batch.
      const std::string put = c.Prepare(
          "tasks_put",
          "INSERT INTO tasks (node_id, id, idempotency_key, state, executor, project, priority, created_ms, "
          "updated_ms, seq, doc) VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10, $11) "
          "ON CONFLICT (id) DO UPDATE SET state = excluded.state, priority = excluded.priority, "
          "updated_ms = excluded.updated_ms, doc = excluded.doc, seq = excluded.seq, "
          "idempotency_key = excluded.idempotency_key WHERE tasks.node_id = excluded.node_id");
      for (const TaskRow& row : upserts) {
        const auto r = tx.exec_prepared(put, db_->node_id(), row.id, row.idempotency_key, row.state, row.executor,
                                        row.project, row.priority, row.created_ms, row.updated_ms, row.seq, row.doc);
        if (r.affected_rows() != 1) return Conflict("writing tasks: task " + row.id + " belongs to another node");
      }
      const std::string del = c.Prepare("tasks_delete", "DELETE FROM tasks WHERE node_id = $1 AND id = $2");
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
      const std::string stmt =
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
  std::atomic<std::int64_t> term_{0};  // 0: never claimed (no fencing: tools, tests)
  std::atomic<bool> fenced_{false};
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
          -- Checked at COMMIT, not per statement: a batch may drop a key
          -- from one task (adopted in a takeover) and give it to another.
          UNIQUE (node_id, idempotency_key) DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX tasks_by_seq ON tasks (node_id, seq);
        CREATE INDEX tasks_by_state ON tasks (node_id, state, seq);
      )sql"},
              {2, "task_owners", R"sql(
        -- Each node's lease on its tasks in a shared database
        -- (tasks/repository.h TaskOwnership): a term, bumped by the node's
        -- own claim or by a survivor's takeover (which fences the old
        -- owner's writes), and when the lease ends (server clock).
        CREATE TABLE task_owners (
          node_id       TEXT COLLATE "C" PRIMARY KEY,
          term          BIGINT NOT NULL,
          lease_expires TIMESTAMPTZ NOT NULL,
          taken_by      TEXT,          -- the node whose takeover ended the last term
          taken_at      TIMESTAMPTZ
        );
      )sql"},
              {3, "tasks_lighter_indexes", R"sql(
        -- Only tasks that have an idempotency key have an entry in the
        -- key's index (a UNIQUE constraint indexes every row, keyless ones
        -- too): an exclusion constraint with = is a uniqueness constraint
        -- that may be partial, and it is still checked at COMMIT. (SQLite's
        -- tasks/3 does the same and also keys its table by seq.)
        ALTER TABLE tasks DROP CONSTRAINT tasks_node_id_idempotency_key_key;
        ALTER TABLE tasks ADD CONSTRAINT tasks_by_key
          EXCLUDE USING btree (node_id WITH =, idempotency_key WITH =) WHERE (idempotency_key IS NOT NULL)
          DEFERRABLE INITIALLY DEFERRED;
      )sql"},
          }};
}

}  // namespace bzzz::storage::postgres
