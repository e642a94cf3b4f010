// The slurp domain in SQLite: its migrations and its SlurpRepository (this
// node's queue of events to curate, its dead letters, the records written
// and the term fence). Every write runs in one BEGIN IMMEDIATE transaction
// on the writer connection, so the capacity check of AddEvent and the fence
// of Complete/Fail/AdmitTerm see no other write between their read and
// their write.
#include <algorithm>
#include <limits>

#include "base/json.h"
#include "storage/sqlite/database.h"

namespace bzzz::storage::sqlite {
namespace {

using slurp::EventQuery;
using slurp::EventRow;
using slurp::QueueStats;
using slurp::RecordQuery;
using slurp::RecordRow;

constexpr std::string_view kEventColumns =
    "seq, key, source, project, task_id, payload, payload_sha256, state, attempts, next_ms, accepted_ms, "
    "accepted_by, error, term, address, processed_ms";
constexpr std::string_view kRecordColumns =
    "event_seq, address, project, task_id, authors, roles, term, created_ms";

EventRow ReadEvent(sqlite3_stmt* stmt) {
  EventRow e;
  e.seq = sqlite3_column_int64(stmt, 0);
  std::string* texts[] = {&e.key, &e.source, &e.project, &e.task_id, &e.payload, &e.payload_sha256, &e.state};
  for (int i = 0; i < 7; ++i) *texts[i] = ColumnText(stmt, i + 1);
  e.attempts = sqlite3_column_int(stmt, 8);
  e.next_ms = sqlite3_column_int64(stmt, 9);
  e.accepted_ms = sqlite3_column_int64(stmt, 10);
  e.accepted_by = ColumnText(stmt, 11);
  e.error = ColumnText(stmt, 12);
  e.term = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 13));
  e.address = ColumnText(stmt, 14);
  e.processed_ms = sqlite3_column_int64(stmt, 15);
  return e;
}

RecordRow ReadRecord(sqlite3_stmt* stmt) {
  RecordRow r;
  r.event_seq = sqlite3_column_int64(stmt, 0);
  std::string* texts[] = {&r.address, &r.project, &r.task_id, &r.authors, &r.roles};
  for (int i = 0; i < 5; ++i) *texts[i] = ColumnText(stmt, i + 1);
  r.term = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 6));
  r.created_ms = sqlite3_column_int64(stmt, 7);
  return r;
}

sqlite3_int64 Limit(std::size_t limit) {
  return static_cast<sqlite3_int64>(std::min<std::size_t>(limit, 1u << 30));
}

// A failed write: a constraint is Conflict, the rest as RuntimeError says.
Status WriteError(const SqlError& e, std::string_view what) {
  if ((e.code & 0xff) == SQLITE_CONSTRAINT) return Conflict(std::string(what) + ": " + e.message);
  return RuntimeError(e, what);
}
Status StepError(sqlite3* db, int rc, std::string_view what) { return WriteError(LastError(db, rc), what); }

// Terms are unsigned in C++ and INTEGER (int64) in the table.
Status CheckTerm(std::uint64_t term) {
  if (term > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return InvalidArgument("term " + std::to_string(term) + " is out of range");
  }
  return Status::Ok();
}

// The record's authors and roles are matched with json_each: only a JSON
// array of strings is stored, so a listing never trips over a bad row.
Status CheckStringArray(const std::string& text, std::string_view what) {
  const nlohmann::json j = ParseJson(text);
  bool ok = j.is_array();
  if (ok) ok = std::all_of(j.begin(), j.end(), [](const nlohmann::json& x) { return x.is_string(); });
  if (!ok) return InvalidArgument(std::string(what) + " must be a JSON array of strings");
  return Status::Ok();
}

// Runs a prepared query and collects its rows with `read`.
template <typename Row>
Result<std::vector<Row>> Collect(SqliteConnection& conn, sqlite3_stmt* stmt, Row (*read)(sqlite3_stmt*),
                                 std::string_view what) {
  std::vector<Row> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(read(stmt));
  if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), what);
  return out;
}

// The event `seq` in a write transaction, or NotFound.
Result<EventRow> EventIn(SqliteConnection& conn, std::int64_t seq) {
  sqlite3_stmt* stmt =
      conn.Prepare("SELECT " + std::string(kEventColumns) + " FROM slurp_events WHERE seq = ?1");
  if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_events");
  StmtUse use(stmt);
  sqlite3_bind_int64(stmt, 1, seq);
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return NotFound("no slurp event " + std::to_string(seq));
  if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading slurp_events");
  return ReadEvent(stmt);
}

// The fence, inside a write transaction: raises the stored term to `term`
// and returns the stored term, or FailedPrecondition when it is newer than
// `term` (the caller's transaction then rolls back). The row is created on
// first use rather than by the migration, so that a database that was only
// migrated holds no rows.
Result<std::uint64_t> Fence(SqliteConnection& conn, std::uint64_t term) {
  if (Status s = CheckTerm(term); !s.ok()) return s;
  sqlite3_stmt* stmt = conn.Prepare(
      "INSERT INTO slurp_fence (id, newest_term) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET "
      "newest_term = max(newest_term, excluded.newest_term) RETURNING newest_term");
  if (stmt == nullptr) return PrepareError(conn.db(), "writing slurp_fence");
  StmtUse use(stmt);
  sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(term));
  if (int rc = sqlite3_step(stmt); rc != SQLITE_ROW) return StepError(conn.db(), rc, "writing slurp_fence");
  const auto stored = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
  if (stored > term) {
    return FailedPrecondition("fenced: the store has seen admin term " + std::to_string(stored) +
                              ", newer than term " + std::to_string(term));
  }
  return stored;
}

class SqliteSlurpRepository final : public slurp::SlurpRepository {
 public:
  explicit SqliteSlurpRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  bool Shared() const override { return false; }

  Result<std::pair<EventRow, bool>> AddEvent(const EventRow& event, std::int64_t max_queued) override {
    if (event.key.empty()) return InvalidArgument("a slurp event needs a key");
    std::pair<EventRow, bool> out;
    Status s = Transact("add slurp event", [&](SqliteConnection& conn) -> Status {
      sqlite3* db = conn.db();
      sqlite3_stmt* find =
          conn.Prepare("SELECT " + std::string(kEventColumns) + " FROM slurp_events WHERE key = ?1");
      if (find == nullptr) return PrepareError(db, "reading slurp_events");
      {
        StmtUse use(find);
        if (Status b = BindText(find, 1, event.key); !b.ok()) return b;
        const int rc = sqlite3_step(find);
        if (rc == SQLITE_ROW) {
          out = {ReadEvent(find), false};
          return Status::Ok();
        }
        if (rc != SQLITE_DONE) return RuntimeError(LastError(db, rc), "reading slurp_events");
      }
      if (max_queued > 0) {
        std::int64_t queued = 0;
        if (SqlError e = QueryInt(conn, "SELECT COUNT(*) FROM slurp_events WHERE state = 'queued'", &queued);
            !e.ok()) {
          return RuntimeError(e, "counting slurp_events");
        }
        if (queued >= max_queued) {
          return ResourceExhausted("the slurp queue is full (" + std::to_string(queued) + " events queued)");
        }
      }
      sqlite3_stmt* put = conn.Prepare(
          "INSERT INTO slurp_events (key, source, project, task_id, payload, payload_sha256, state, "
          "attempts, next_ms, accepted_ms, accepted_by, error, term, address, processed_ms) VALUES (?1, ?2, "
          "?3, ?4, ?5, ?6, 'queued', 0, ?7, ?7, ?8, '', 0, '', 0) RETURNING " +
          std::string(kEventColumns));
      if (put == nullptr) return PrepareError(db, "writing slurp_events");
      StmtUse use(put);
      const std::string* texts[] = {&event.key,     &event.source,  &event.project,
                                    &event.task_id, &event.payload, &event.payload_sha256};
      for (int i = 0; i < 6; ++i) {
        if (Status b = BindText(put, i + 1, *texts[i]); !b.ok()) return b;
      }
      sqlite3_bind_int64(put, 7, event.accepted_ms);
      if (Status b = BindText(put, 8, event.accepted_by); !b.ok()) return b;
      if (int rc = sqlite3_step(put); rc != SQLITE_ROW) return StepError(db, rc, "writing slurp_events");
      out = {ReadEvent(put), true};
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return out;
  }

  Result<EventRow> GetEvent(std::int64_t seq) override {
    return db_->Read("get slurp event", [&](SqliteConnection& conn) { return EventIn(conn, seq); });
  }

  Result<EventRow> GetEventByKey(const std::string& key) override {
    return db_->Read("get slurp event", [&](SqliteConnection& conn) -> Result<EventRow> {
      sqlite3_stmt* stmt =
          conn.Prepare("SELECT " + std::string(kEventColumns) + " FROM slurp_events WHERE key = ?1");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_events");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, key); !s.ok()) return s;
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return NotFound("no slurp event with key " + key);
      if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading slurp_events");
      return ReadEvent(stmt);
    });
  }

  Result<std::vector<EventRow>> DueEvents(std::int64_t now_ms, std::size_t limit) override {
    return db_->Read("due slurp events", [&](SqliteConnection& conn) -> Result<std::vector<EventRow>> {
      sqlite3_stmt* stmt = conn.Prepare("SELECT " + std::string(kEventColumns) +
                                        " FROM slurp_events WHERE state = 'queued' AND next_ms <= ?1 "
                                        "ORDER BY seq LIMIT ?2");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_events");
      StmtUse use(stmt);
      sqlite3_bind_int64(stmt, 1, now_ms);
      sqlite3_bind_int64(stmt, 2, Limit(limit));
      return Collect(conn, stmt, &ReadEvent, "reading slurp_events");
    });
  }

  Result<std::vector<EventRow>> ListEvents(const EventQuery& q) override {
    return db_->Read("list slurp events", [&](SqliteConnection& conn) -> Result<std::vector<EventRow>> {
      sqlite3_stmt* stmt = conn.Prepare("SELECT " + std::string(kEventColumns) +
                                        " FROM slurp_events WHERE (?1 = '' OR state = ?1) AND "
                                        "(?2 = '' OR source = ?2) AND seq > ?3 ORDER BY seq LIMIT ?4");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_events");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, q.state); !s.ok()) return s;
      if (Status s = BindText(stmt, 2, q.source); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 3, q.after_seq);
      sqlite3_bind_int64(stmt, 4, Limit(q.limit));
      return Collect(conn, stmt, &ReadEvent, "reading slurp_events");
    });
  }

  Result<QueueStats> Stats() override {
    return db_->Read("slurp stats", [&](SqliteConnection& conn) -> Result<QueueStats> {
      // One statement, so the counts and the fence are of one snapshot.
      sqlite3_stmt* stmt = conn.Prepare(
          "SELECT COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'dead'), 0), "
          "COALESCE(SUM(state = 'done'), 0), "
          "COALESCE(MIN(CASE WHEN state = 'queued' THEN accepted_ms END), 0), "
          "(SELECT COALESCE(MAX(newest_term), 0) FROM slurp_fence) FROM slurp_events");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_events");
      StmtUse use(stmt);
      if (int rc = sqlite3_step(stmt); rc != SQLITE_ROW) {
        return RuntimeError(LastError(conn.db(), rc), "reading slurp_events");
      }
      QueueStats s;
      s.queued = sqlite3_column_int64(stmt, 0);
      s.dead = sqlite3_column_int64(stmt, 1);
      s.done = sqlite3_column_int64(stmt, 2);
      s.oldest_queued_ms = sqlite3_column_int64(stmt, 3);
      s.newest_term = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 4));
      return s;
    });
  }

  Result<std::uint64_t> AdmitTerm(std::uint64_t term) override {
    std::uint64_t stored = 0;
    Status s = Transact("admit slurp term", [&](SqliteConnection& conn) -> Status {
      auto fenced = Fence(conn, term);
      if (!fenced.ok()) return fenced.status();
      stored = *fenced;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return stored;
  }

  Status Complete(std::int64_t seq, std::uint64_t term, const RecordRow& record,
                  std::int64_t now_ms) override {
    if (record.event_seq != 0 && record.event_seq != seq) {
      return InvalidArgument("the record is for event " + std::to_string(record.event_seq) + ", not " +
                             std::to_string(seq));
    }
    if (record.term != 0 && record.term != term) {
      return InvalidArgument("the record names term " + std::to_string(record.term) + ", not " +
                             std::to_string(term));
    }
    if (Status s = CheckStringArray(record.authors, "the record's authors"); !s.ok()) return s;
    if (Status s = CheckStringArray(record.roles, "the record's roles"); !s.ok()) return s;
    return Transact("complete slurp event", [&](SqliteConnection& conn) -> Status {
      sqlite3* db = conn.db();
      if (auto fenced = Fence(conn, term); !fenced.ok()) return fenced.status();
      if (Status s = RequireQueued(conn, seq); !s.ok()) return s;
      sqlite3_stmt* done = conn.Prepare(
          "UPDATE slurp_events SET state = 'done', term = ?2, address = ?3, processed_ms = ?4 "
          "WHERE seq = ?1");
      if (done == nullptr) return PrepareError(db, "writing slurp_events");
      {
        StmtUse use(done);
        sqlite3_bind_int64(done, 1, seq);
        sqlite3_bind_int64(done, 2, static_cast<sqlite3_int64>(term));
        if (Status b = BindText(done, 3, record.address); !b.ok()) return b;
        sqlite3_bind_int64(done, 4, now_ms);
        if (int rc = sqlite3_step(done); rc != SQLITE_DONE) return StepError(db, rc, "writing slurp_events");
      }
      // A record that exists already (the event is done, then) is a
      // primary key violation: Conflict, and the transaction rolls back.
      sqlite3_stmt* put = conn.Prepare(
          "INSERT INTO slurp_records (event_seq, address, project, task_id, authors, roles, term, "
          "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
      if (put == nullptr) return PrepareError(db, "writing slurp_records");
      StmtUse use(put);
      sqlite3_bind_int64(put, 1, seq);
      const std::string* texts[] = {&record.address, &record.project, &record.task_id, &record.authors,
                                    &record.roles};
      for (int i = 0; i < 5; ++i) {
        if (Status b = BindText(put, i + 2, *texts[i]); !b.ok()) return b;
      }
      sqlite3_bind_int64(put, 7, static_cast<sqlite3_int64>(term));
      sqlite3_bind_int64(put, 8, record.created_ms);
      if (int rc = sqlite3_step(put); rc != SQLITE_DONE) return StepError(db, rc, "writing slurp_records");
      return Status::Ok();
    });
  }

  Status Fail(std::int64_t seq, std::uint64_t term, const std::string& error, std::int64_t next_ms,
              bool dead) override {
    return Transact("fail slurp event", [&](SqliteConnection& conn) -> Status {
      sqlite3* db = conn.db();
      if (auto fenced = Fence(conn, term); !fenced.ok()) return fenced.status();
      if (Status s = RequireQueued(conn, seq); !s.ok()) return s;
      sqlite3_stmt* stmt = conn.Prepare(
          "UPDATE slurp_events SET attempts = attempts + 1, error = ?2, next_ms = ?3, "
          "state = CASE WHEN ?4 THEN 'dead' ELSE state END, term = CASE WHEN ?4 THEN ?5 ELSE term END "
          "WHERE seq = ?1");
      if (stmt == nullptr) return PrepareError(db, "writing slurp_events");
      StmtUse use(stmt);
      sqlite3_bind_int64(stmt, 1, seq);
      if (Status b = BindText(stmt, 2, error); !b.ok()) return b;
      sqlite3_bind_int64(stmt, 3, next_ms);
      sqlite3_bind_int(stmt, 4, dead ? 1 : 0);
      sqlite3_bind_int64(stmt, 5, static_cast<sqlite3_int64>(term));
      if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return StepError(db, rc, "writing slurp_events");
      return Status::Ok();
    });
  }

  Status Replay(std::int64_t seq, std::int64_t now_ms) override {
    return Transact("replay slurp event", [&](SqliteConnection& conn) -> Status {
      if (Status s = RequireDead(conn, seq); !s.ok()) return s;
      sqlite3_stmt* stmt = conn.Prepare(
          "UPDATE slurp_events SET state = 'queued', attempts = 0, next_ms = ?2, term = 0 WHERE seq = ?1");
      if (stmt == nullptr) return PrepareError(conn.db(), "writing slurp_events");
      StmtUse use(stmt);
      sqlite3_bind_int64(stmt, 1, seq);
      sqlite3_bind_int64(stmt, 2, now_ms);
      if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) {
        return StepError(conn.db(), rc, "writing slurp_events");
      }
      return Status::Ok();
    });
  }

  Result<std::int64_t> Purge(std::int64_t seq) override {
    std::int64_t purged = 0;
    Status s = Transact("purge slurp events", [&](SqliteConnection& conn) -> Status {
      if (seq > 0) {
        if (Status d = RequireDead(conn, seq); !d.ok()) return d;
      }
      sqlite3_stmt* stmt =
          conn.Prepare("DELETE FROM slurp_events WHERE state = 'dead' AND (?1 <= 0 OR seq = ?1)");
      if (stmt == nullptr) return PrepareError(conn.db(), "writing slurp_events");
      StmtUse use(stmt);
      sqlite3_bind_int64(stmt, 1, seq);
      if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) {
        return StepError(conn.db(), rc, "writing slurp_events");
      }
      purged = sqlite3_changes64(conn.db());
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return purged;
  }

  Result<std::vector<RecordRow>> ListRecords(const RecordQuery& q) override {
    return db_->Read("list slurp records", [&](SqliteConnection& conn) -> Result<std::vector<RecordRow>> {
      sqlite3_stmt* stmt = conn.Prepare(
          "SELECT " + std::string(kRecordColumns) +
          " FROM slurp_records r WHERE (?1 = '' OR project = ?1) AND (?2 = '' OR task_id = ?2) AND "
          "(?3 = '' OR EXISTS (SELECT 1 FROM json_each(r.authors) a WHERE a.type = 'text' AND "
          "a.value = ?3)) AND created_ms >= ?4 AND event_seq > ?5 ORDER BY event_seq LIMIT ?6");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_records");
      StmtUse use(stmt);
      for (auto [i, text] : {std::pair{1, &q.project}, {2, &q.task_id}, {3, &q.author}}) {
        if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
      }
      sqlite3_bind_int64(stmt, 4, q.since_ms);
      sqlite3_bind_int64(stmt, 5, q.after_seq);
      sqlite3_bind_int64(stmt, 6, Limit(q.limit));
      return Collect(conn, stmt, &ReadRecord, "reading slurp_records");
    });
  }

  Result<RecordRow> GetRecord(std::int64_t event_seq) override {
    return db_->Read("get slurp record", [&](SqliteConnection& conn) -> Result<RecordRow> {
      sqlite3_stmt* stmt =
          conn.Prepare("SELECT " + std::string(kRecordColumns) + " FROM slurp_records WHERE event_seq = ?1");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading slurp_records");
      StmtUse use(stmt);
      sqlite3_bind_int64(stmt, 1, event_seq);
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return NotFound("no slurp record for event " + std::to_string(event_seq));
      if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading slurp_records");
      return ReadRecord(stmt);
    });
  }

 private:
  // Runs `body` in BEGIN IMMEDIATE ... COMMIT (Database::Transaction): a
  // body that returns anything but OK rolls back, and its Status is what
  // the caller gets.
  template <typename F>
  Status Transact(std::string_view what, F&& body) {
    Status refused;
    auto on_error = [&](const SqlError& e) -> Status {
      if (!refused.ok()) return refused;
      return WriteError(e, what);
    };
    return db_->Transaction(
        what,
        [&](SqliteConnection& conn) -> SqlError {
          refused = body(conn);
          if (refused.ok()) return {};
          return {SQLITE_ABORT, refused.message()};
        },
        on_error);
  }

  // Conflict unless the event `seq` is queued; NotFound when there is none.
  static Status RequireQueued(SqliteConnection& conn, std::int64_t seq) {
    auto event = EventIn(conn, seq);
    if (!event.ok()) return event.status();
    if (event->state != "queued") {
      return Conflict("slurp event " + std::to_string(seq) + " is " + event->state + ", not queued");
    }
    return Status::Ok();
  }

  // FailedPrecondition unless the event `seq` is dead; NotFound when there
  // is none.
  static Status RequireDead(SqliteConnection& conn, std::int64_t seq) {
    auto event = EventIn(conn, seq);
    if (!event.ok()) return event.status();
    if (event->state != "dead") {
      return FailedPrecondition("slurp event " + std::to_string(seq) + " is " + event->state + ", not dead");
    }
    return Status::Ok();
  }

  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<slurp::SlurpRepository> MakeSlurpRepository(std::shared_ptr<Database> db) {
  return std::make_shared<SqliteSlurpRepository>(std::move(db));
}

DomainMigrations SlurpMigrations() {
  return {"slurp",
          {
              {1, "slurp_events", R"sql(
        -- SLURP's queue on this node (src/slurp, docs/slurp.md): events to
        -- curate, the done and the dead letters, numbered in the order
        -- accepted (AUTOINCREMENT: a purged seq is never given again).
        CREATE TABLE slurp_events (
          seq            INTEGER PRIMARY KEY AUTOINCREMENT,
          key            TEXT NOT NULL UNIQUE,  -- idempotency key
          source         TEXT NOT NULL,         -- api, task, hmmm
          project        TEXT NOT NULL,
          task_id        TEXT NOT NULL,         -- '' when none
          payload        TEXT NOT NULL,         -- JSON
          payload_sha256 TEXT NOT NULL,         -- hex
          state          TEXT NOT NULL,         -- queued, done, dead
          attempts       INTEGER NOT NULL,      -- failed processing attempts
          next_ms        INTEGER NOT NULL,      -- not processed before (Unix ms)
          accepted_ms    INTEGER NOT NULL,
          accepted_by    TEXT NOT NULL,         -- node id
          error          TEXT NOT NULL,         -- the last failure
          term           INTEGER NOT NULL,      -- admin term of done or dead, else 0
          address        TEXT NOT NULL,         -- UCXL address of the record once done
          processed_ms   INTEGER NOT NULL
        );
        CREATE INDEX slurp_events_due ON slurp_events (state, next_ms, seq);
        -- One record per done event (its content is in UCXL, sealed).
        CREATE TABLE slurp_records (
          event_seq  INTEGER PRIMARY KEY REFERENCES slurp_events (seq),
          address    TEXT NOT NULL,
          project    TEXT NOT NULL,
          task_id    TEXT NOT NULL,
          authors    TEXT NOT NULL,  -- JSON array of strings
          roles      TEXT NOT NULL,  -- JSON array of strings: who may read it
          term       INTEGER NOT NULL,
          created_ms INTEGER NOT NULL
        );
        CREATE INDEX slurp_records_task ON slurp_records (project, task_id);
        CREATE INDEX slurp_records_created ON slurp_records (created_ms);
        -- The fence: the newest admin term seen (one row, written on first use).
        CREATE TABLE slurp_fence (
          id          INTEGER PRIMARY KEY CHECK (id = 1),
          newest_term INTEGER NOT NULL
        );
      )sql"},
          }};
}

}  // namespace bzzz::storage::sqlite
