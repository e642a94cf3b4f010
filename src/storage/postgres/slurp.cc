// The slurp domain in PostgreSQL: its migrations and its SlurpRepository.
// One queue for the whole cluster: rows are not scoped by node, and any
// node may add, process and read any event (accepted_by only says who took
// it in).
//
// Concurrency between nodes:
// - AddEvent takes a transaction-scoped advisory lock first, so the key
//   lookup, the capacity check and the insert of one node see every event
//   that another node's AddEvent committed before; and seqs are given in
//   commit order, so a reader paging by after_seq never skips an event
//   that commits late with a smaller seq.
// - Complete, Fail and AdmitTerm first write the fence row (an upsert that
//   locks it), so fenced writes are serialized and each one checks the term
//   against the newest committed one in its own transaction.
#include <algorithm>
#include <limits>

#include "base/json.h"
#include "storage/postgres/database.h"

namespace bzzz::storage::postgres {
namespace {

using slurp::EventQuery;
using slurp::EventRow;
using slurp::QueueStats;
using slurp::RecordQuery;
using slurp::RecordRow;

// pg_advisory_xact_lock key of the queue's inserts: "bzzzslrp" as a
// big-endian 64-bit integer (the migrations use "bzzzmigr").
constexpr std::int64_t kQueueLock = 0x627a7a7a736c7270;

constexpr std::string_view kEventColumns =
    "seq, key, source, project, task_id, payload, payload_sha256, state, attempts, next_ms, accepted_ms, "
    "accepted_by, error, term, address, processed_ms";
constexpr std::string_view kRecordColumns =
    "event_seq, address, project, task_id, authors, roles, term, created_ms";

EventRow ReadEvent(const pqxx::row& r) {
  EventRow e;
  e.seq = Int(r[0]);
  std::string* texts[] = {&e.key, &e.source, &e.project, &e.task_id, &e.payload, &e.payload_sha256, &e.state};
  for (int i = 0; i < 7; ++i) *texts[i] = Text(r[i + 1]);
  e.attempts = static_cast<int>(Int(r[8]));
  e.next_ms = Int(r[9]);
  e.accepted_ms = Int(r[10]);
  e.accepted_by = Text(r[11]);
  e.error = Text(r[12]);
  e.term = static_cast<std::uint64_t>(Int(r[13]));
  e.address = Text(r[14]);
  e.processed_ms = Int(r[15]);
  return e;
}

RecordRow ReadRecord(const pqxx::row& r) {
  RecordRow rec;
  rec.event_seq = Int(r[0]);
  std::string* texts[] = {&rec.address, &rec.project, &rec.task_id, &rec.authors, &rec.roles};
  for (int i = 0; i < 5; ++i) *texts[i] = Text(r[i + 1]);
  rec.term = static_cast<std::uint64_t>(Int(r[6]));
  rec.created_ms = Int(r[7]);
  return rec;
}

template <typename Row>
std::vector<Row> Collect(const pqxx::result& result, Row (*read)(const pqxx::row&)) {
  std::vector<Row> out;
  out.reserve(result.size());
  for (const auto& r : result) out.push_back(read(r));
  return out;
}

std::int64_t Limit(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(limit, 1u << 30));
}

std::string SelectEvents(std::string_view rest) {
  return "SELECT " + std::string(kEventColumns) + " FROM slurp_events " + std::string(rest);
}

// Terms are unsigned in C++ and BIGINT in the table.
Status CheckTerm(std::uint64_t term) {
  if (term > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return InvalidArgument("term " + std::to_string(term) + " is out of range");
  }
  return Status::Ok();
}

// The record's authors are matched with jsonb's ? operator: only a JSON
// array of strings is stored, so a listing never trips over a bad row.
Status CheckStringArray(const std::string& text, std::string_view what) {
  const nlohmann::json j = ParseJson(text);
  bool ok = j.is_array();
  if (ok) ok = std::all_of(j.begin(), j.end(), [](const nlohmann::json& x) { return x.is_string(); });
  if (!ok) return InvalidArgument(std::string(what) + " must be a JSON array of strings");
  return Status::Ok();
}

// The fence, inside a write transaction: raises the stored term to `term`
// and returns the stored term, or FailedPrecondition when it is newer than
// `term` (the caller's transaction then aborts). The upsert locks the row
// until the transaction ends. The row is created on first use rather than
// by the migration, so that a database that was only migrated holds no rows
// (what a restore checks before overwriting).
Result<std::uint64_t> Fence(PgConnection& c, pqxx::work& tx, std::uint64_t term) {
  if (Status s = CheckTerm(term); !s.ok()) return s;
  const auto r = tx.exec_prepared(
      c.Prepare(
          "slurp_fence",
          "INSERT INTO slurp_fence (id, newest_term) VALUES (1, $1::bigint) ON CONFLICT (id) DO UPDATE SET "
          "newest_term = GREATEST(slurp_fence.newest_term, excluded.newest_term) RETURNING newest_term"),
      static_cast<std::int64_t>(term));
  const auto stored = static_cast<std::uint64_t>(Int(r[0][0]));
  if (stored > term) {
    return FailedPrecondition("fenced: the store has seen admin term " + std::to_string(stored) +
                              ", newer than term " + std::to_string(term));
  }
  return stored;
}

// The state of the event `seq`, locked until the transaction ends; NotFound
// when there is none.
Result<std::string> LockEvent(PgConnection& c, pqxx::work& tx, std::int64_t seq) {
  const auto r = tx.exec_prepared(
      c.Prepare("slurp_event_lock", "SELECT state FROM slurp_events WHERE seq = $1::bigint FOR UPDATE"), seq);
  if (r.empty()) return NotFound("no slurp event " + std::to_string(seq));
  return Text(r[0][0]);
}

Status RequireQueued(PgConnection& c, pqxx::work& tx, std::int64_t seq) {
  auto state = LockEvent(c, tx, seq);
  if (!state.ok()) return state.status();
  if (*state != "queued")
    return Conflict("slurp event " + std::to_string(seq) + " is " + *state + ", not queued");
  return Status::Ok();
}

Status RequireDead(PgConnection& c, pqxx::work& tx, std::int64_t seq) {
  auto state = LockEvent(c, tx, seq);
  if (!state.ok()) return state.status();
  if (*state != "dead") {
    return FailedPrecondition("slurp event " + std::to_string(seq) + " is " + *state + ", not dead");
  }
  return Status::Ok();
}

class PostgresSlurpRepository final : public slurp::SlurpRepository {
 public:
  explicit PostgresSlurpRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  bool Shared() const override { return true; }

  Result<std::pair<EventRow, bool>> AddEvent(const EventRow& event, std::int64_t max_queued) override {
    if (event.key.empty()) return InvalidArgument("a slurp event needs a key");
    using Added = std::pair<EventRow, bool>;
    return db_->Write("writing slurp_events", [&](PgConnection& c, pqxx::work& tx) -> Result<Added> {
      tx.exec_prepared(c.Prepare("slurp_queue_lock", "SELECT pg_advisory_xact_lock($1::bigint)"), kQueueLock);
      const std::string by_key = c.Prepare("slurp_event_by_key", SelectEvents("WHERE key = $1"));
      if (const auto found = tx.exec_prepared(by_key, event.key); !found.empty()) {
        return Added{ReadEvent(found[0]), false};
      }
      if (max_queued > 0) {
        const auto n = tx.exec_prepared(
            c.Prepare("slurp_queued_count", "SELECT COUNT(*) FROM slurp_events WHERE state = 'queued'"));
        const std::int64_t queued = Int(n[0][0]);
        if (queued >= max_queued) {
          return ResourceExhausted("the slurp queue is full (" + std::to_string(queued) + " events queued)");
        }
      }
      const auto put = tx.exec_prepared(
          c.Prepare(
              "slurp_event_put",
              "INSERT INTO slurp_events (key, source, project, task_id, payload, payload_sha256, state, "
              "attempts, next_ms, accepted_ms, accepted_by, error, term, address, processed_ms) VALUES ($1, "
              "$2, $3, $4, $5, $6, 'queued', 0, $7::bigint, $7::bigint, $8, '', 0, '', 0) "
              "ON CONFLICT (key) DO NOTHING RETURNING " +
                  std::string(kEventColumns)),
          event.key, event.source, event.project, event.task_id, event.payload, event.payload_sha256,
          event.accepted_ms, event.accepted_by);
      if (!put.empty()) return Added{ReadEvent(put[0]), true};
      // Not reached while every insert holds the lock; kept so that a key
      // inserted some other way is still answered as the contract says.
      const auto found = tx.exec_prepared(by_key, event.key);
      if (found.empty()) return Internal("slurp event " + event.key + " neither inserted nor found");
      return Added{ReadEvent(found[0]), false};
    });
  }

  Result<EventRow> GetEvent(std::int64_t seq) override {
    return db_->Read(
        "reading slurp_events", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<EventRow> {
          const auto r =
              tx.exec_prepared(c.Prepare("slurp_event_get", SelectEvents("WHERE seq = $1::bigint")), seq);
          if (r.empty()) return NotFound("no slurp event " + std::to_string(seq));
          return ReadEvent(r[0]);
        });
  }

  Result<EventRow> GetEventByKey(const std::string& key) override {
    return db_->Read(
        "reading slurp_events", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<EventRow> {
          const auto r =
              tx.exec_prepared(c.Prepare("slurp_event_by_key", SelectEvents("WHERE key = $1")), key);
          if (r.empty()) return NotFound("no slurp event with key " + key);
          return ReadEvent(r[0]);
        });
  }

  Result<std::vector<EventRow>> DueEvents(std::int64_t now_ms, std::size_t limit) override {
    return db_->Read(
        "reading slurp_events",
        [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<EventRow>> {
          return Collect(tx.exec_prepared(c.Prepare("slurp_event_due",
                                                    SelectEvents("WHERE state = 'queued' AND next_ms <= "
                                                                 "$1::bigint ORDER BY seq LIMIT $2::bigint")),
                                          now_ms, Limit(limit)),
                         &ReadEvent);
        });
  }

  Result<std::vector<EventRow>> ListEvents(const EventQuery& q) override {
    return db_->Read(
        "reading slurp_events",
        [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<EventRow>> {
          return Collect(
              tx.exec_prepared(
                  c.Prepare("slurp_event_list",
                            SelectEvents("WHERE ($1::text = '' OR state = $1::text) AND ($2::text = '' "
                                         "OR source = $2::text) AND seq > $3::bigint ORDER BY seq "
                                         "LIMIT $4::bigint")),
                  q.state, q.source, q.after_seq, Limit(q.limit)),
              &ReadEvent);
        });
  }

  Result<QueueStats> Stats() override {
    return db_->Read(
        "reading slurp_events", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<QueueStats> {
          // One statement, so the counts and the fence are of one snapshot.
          const auto r = tx.exec_prepared(c.Prepare(
              "slurp_stats",
              "SELECT COUNT(*) FILTER (WHERE state = 'queued'), COUNT(*) FILTER (WHERE state = 'dead'), "
              "COUNT(*) FILTER (WHERE state = 'done'), COALESCE(MIN(accepted_ms) FILTER (WHERE state = "
              "'queued'), 0), "
              "(SELECT COALESCE(MAX(newest_term), 0) FROM slurp_fence) FROM slurp_events"));
          QueueStats s;
          s.queued = Int(r[0][0]);
          s.dead = Int(r[0][1]);
          s.done = Int(r[0][2]);
          s.oldest_queued_ms = Int(r[0][3]);
          s.newest_term = static_cast<std::uint64_t>(Int(r[0][4]));
          return s;
        });
  }

  Result<std::uint64_t> AdmitTerm(std::uint64_t term) override {
    return db_->Write("writing slurp_fence", [&](PgConnection& c, pqxx::work& tx) -> Result<std::uint64_t> {
      return Fence(c, tx, term);
    });
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
    return db_->Write("completing a slurp event", [&](PgConnection& c, pqxx::work& tx) -> Status {
      if (auto fenced = Fence(c, tx, term); !fenced.ok()) return fenced.status();
      if (Status s = RequireQueued(c, tx, seq); !s.ok()) return s;
      const auto t = static_cast<std::int64_t>(term);
      tx.exec_prepared(c.Prepare("slurp_event_done",
                                 "UPDATE slurp_events SET state = 'done', term = $2::bigint, address = $3, "
                                 "processed_ms = $4::bigint WHERE seq = $1::bigint"),
                       seq, t, record.address, now_ms);
      // A record that exists already is a unique violation: Conflict, and
      // the transaction aborts.
      tx.exec_prepared(
          c.Prepare("slurp_record_put",
                    "INSERT INTO slurp_records (event_seq, address, project, task_id, authors, roles, "
                    "term, created_ms) VALUES ($1::bigint, $2, $3, $4, $5, $6, $7::bigint, $8::bigint)"),
          seq, record.address, record.project, record.task_id, record.authors, record.roles, t,
          record.created_ms);
      return Status::Ok();
    });
  }

  Status Fail(std::int64_t seq, std::uint64_t term, const std::string& error, std::int64_t next_ms,
              bool dead) override {
    return db_->Write("failing a slurp event", [&](PgConnection& c, pqxx::work& tx) -> Status {
      if (auto fenced = Fence(c, tx, term); !fenced.ok()) return fenced.status();
      if (Status s = RequireQueued(c, tx, seq); !s.ok()) return s;
      tx.exec_prepared(
          c.Prepare("slurp_event_fail",
                    "UPDATE slurp_events SET attempts = attempts + 1, error = $2, next_ms = $3::bigint, "
                    "state = CASE WHEN $4::boolean THEN 'dead' ELSE state END, "
                    "term = CASE WHEN $4::boolean THEN $5::bigint ELSE term END WHERE seq = $1::bigint"),
          seq, error, next_ms, dead, static_cast<std::int64_t>(term));
      return Status::Ok();
    });
  }

  Status Replay(std::int64_t seq, std::int64_t now_ms) override {
    return db_->Write("replaying a slurp event", [&](PgConnection& c, pqxx::work& tx) -> Status {
      if (Status s = RequireDead(c, tx, seq); !s.ok()) return s;
      tx.exec_prepared(
          c.Prepare("slurp_event_replay",
                    "UPDATE slurp_events SET state = 'queued', attempts = 0, next_ms = $2::bigint, "
                    "term = 0 WHERE seq = $1::bigint"),
          seq, now_ms);
      return Status::Ok();
    });
  }

  Result<std::int64_t> Purge(std::int64_t seq) override {
    return db_->Write("purging slurp events", [&](PgConnection& c, pqxx::work& tx) -> Result<std::int64_t> {
      if (seq > 0) {
        if (Status s = RequireDead(c, tx, seq); !s.ok()) return s;
      }
      const auto r = tx.exec_prepared(
          c.Prepare(
              "slurp_event_purge",
              "DELETE FROM slurp_events WHERE state = 'dead' AND ($1::bigint <= 0 OR seq = $1::bigint)"),
          seq);
      return static_cast<std::int64_t>(r.affected_rows());
    });
  }

  Result<std::vector<RecordRow>> ListRecords(const RecordQuery& q) override {
    return db_->Read(
        "reading slurp_records",
        [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<RecordRow>> {
          return Collect(
              tx.exec_prepared(
                  c.Prepare("slurp_record_list",
                            "SELECT " + std::string(kRecordColumns) +
                                " FROM slurp_records WHERE ($1::text = '' OR project = $1::text) AND "
                                "($2::text = '' "
                                "OR task_id = $2::text) AND ($3::text = '' OR authors::jsonb ? $3::text) AND "
                                "created_ms >= $4::bigint AND event_seq > $5::bigint ORDER BY event_seq "
                                "LIMIT $6::bigint"),
                  q.project, q.task_id, q.author, q.since_ms, q.after_seq, Limit(q.limit)),
              &ReadRecord);
        });
  }

  Result<RecordRow> GetRecord(std::int64_t event_seq) override {
    return db_->Read(
        "reading slurp_records", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<RecordRow> {
          const auto r = tx.exec_prepared(
              c.Prepare("slurp_record_get", "SELECT " + std::string(kRecordColumns) +
                                                " FROM slurp_records WHERE event_seq = $1::bigint"),
              event_seq);
          if (r.empty()) return NotFound("no slurp record for event " + std::to_string(event_seq));
          return ReadRecord(r[0]);
        });
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<slurp::SlurpRepository> MakeSlurpRepository(std::shared_ptr<Database> db) {
  return std::make_shared<PostgresSlurpRepository>(std::move(db));
}

DomainMigrations SlurpMigrations() {
  return {"slurp",
          {
              {1, "slurp_events", R"sql(
        -- SLURP's queue, one for the cluster (src/slurp, docs/slurp.md):
        -- events to curate, the done and the dead letters, numbered in the
        -- order accepted.
        CREATE TABLE slurp_events (
          seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          key            TEXT COLLATE "C" NOT NULL UNIQUE,  -- idempotency key
          source         TEXT NOT NULL,                     -- api, task, hmmm
          project        TEXT NOT NULL,
          task_id        TEXT NOT NULL,                     -- '' when none
          payload        TEXT NOT NULL,                     -- JSON
          payload_sha256 TEXT NOT NULL,                     -- hex
          state          TEXT NOT NULL,                     -- queued, done, dead
          attempts       INTEGER NOT NULL,                  -- failed processing attempts
          next_ms        BIGINT NOT NULL,                   -- not processed before (Unix ms)
          accepted_ms    BIGINT NOT NULL,
          accepted_by    TEXT NOT NULL,                     -- node id
          error          TEXT NOT NULL,                     -- the last failure
          term           BIGINT NOT NULL,                   -- admin term of done or dead, else 0
          address        TEXT NOT NULL,                     -- UCXL address of the record once done
          processed_ms   BIGINT NOT NULL
        );
        CREATE INDEX slurp_events_due ON slurp_events (state, next_ms, seq);
        -- One record per done event (its content is in UCXL, sealed).
        CREATE TABLE slurp_records (
          event_seq  BIGINT PRIMARY KEY REFERENCES slurp_events (seq),
          address    TEXT NOT NULL,
          project    TEXT NOT NULL,
          task_id    TEXT NOT NULL,
          authors    TEXT NOT NULL,  -- JSON array of strings
          roles      TEXT NOT NULL,  -- JSON array of strings: who may read it
          term       BIGINT NOT NULL,
          created_ms BIGINT NOT NULL
        );
        CREATE INDEX slurp_records_task ON slurp_records (project, task_id);
        CREATE INDEX slurp_records_created ON slurp_records (created_ms);
        -- The fence: the newest admin term seen (one row, written on first use).
        CREATE TABLE slurp_fence (
          id          INTEGER PRIMARY KEY CHECK (id = 1),
          newest_term BIGINT NOT NULL
        );
      )sql"},
          }};
}

}  // namespace bzzz::storage::postgres
