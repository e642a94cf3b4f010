// SlurpRepository: what SLURP needs from durable storage (SPEC §3.8,
// docs/slurp.md): the queue of events to curate, the dead letters, the
// records written, and the term fence of admin-only writes.
//
// The slurp subsystem owns this contract; each storage backend implements
// it (src/storage/<backend>/slurp.cc) with its own migrations. In a store
// shared by several nodes (PostgreSQL) there is one queue for the cluster;
// on SQLite each node has its own.
//
// The fence: the store keeps the newest admin term it has seen, next to the
// queue. Every processing write (Complete, Fail, AdmitTerm) names the term
// it is made under, raises the stored term to it when newer, and is refused
// with FailedPrecondition when the stored term is newer than it, in the
// same transaction as the write: an admin deposed by a newer term cannot
// change the queue or add a record once its successor has written.
//
// Thread safety: every method may be called from any thread concurrently,
// but not from an HTTP I/O thread (base/threads.h CheckMayBlock).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace bzzz::slurp {

struct EventRow {
  std::int64_t seq = 0;         // given by the store on insert: 1, 2, ... (order of acceptance)
  std::string key;              // idempotency key, unique in the store
  std::string source;           // "api", "task", "hmmm"
  std::string project;
  std::string task_id;          // "" when none
  std::string payload;          // JSON text (docs/slurp.md)
  std::string payload_sha256;   // hex, to tell a repeated key with another payload
  std::string state;            // "queued", "done", "dead"
  int attempts = 0;             // processing attempts that failed
  std::int64_t next_ms = 0;     // not processed before this time (Unix ms)
  std::int64_t accepted_ms = 0;
  std::string accepted_by;      // node id
  std::string error;            // the last failure
  std::uint64_t term = 0;       // the term that completed it or made it dead (0 while queued)
  std::string address;          // the record's UCXL address once done
  std::int64_t processed_ms = 0;
  bool operator==(const EventRow&) const = default;
};

// One record written for one event (its content is in UCXL, sealed).
struct RecordRow {
  std::int64_t event_seq = 0;   // the event it was written for (unique)
  std::string address;          // UCXL address of the version
  std::string project;
  std::string task_id;
  std::string authors;          // JSON array of strings
  std::string roles;            // JSON array of strings: who may read it
  std::uint64_t term = 0;
  std::int64_t created_ms = 0;
  bool operator==(const RecordRow&) const = default;
};

// Filters; empty strings and zeros match everything.
struct EventQuery {
  std::string state;
  std::string source;
  std::int64_t after_seq = 0;   // seq > after_seq, oldest first
  std::size_t limit = 100;
};
struct RecordQuery {
  std::string project;
  std::string task_id;
  std::string author;           // one of the record's authors (exact)
  std::int64_t since_ms = 0;    // created_ms >= since_ms
  std::int64_t after_seq = 0;   // event_seq > after_seq, oldest first
  std::size_t limit = 100;
};
struct QueueStats {
  std::int64_t queued = 0;
  std::int64_t dead = 0;
  std::int64_t done = 0;
  std::int64_t oldest_queued_ms = 0;  // accepted_ms of the oldest queued event, 0 when none
  std::uint64_t newest_term = 0;      // the fence
};

class SlurpRepository {
 public:
  virtual ~SlurpRepository() = default;

  // True when several nodes share this store (PostgreSQL).
  virtual bool Shared() const = 0;

  // Inserts `event` (seq, state "queued", attempts 0, next_ms = accepted_ms
  // are set by the store) unless an event with its key exists; returns the
  // stored event and whether it was inserted. When `max_queued` > 0 and that
  // many events are queued already, ResourceExhausted and nothing is written
  // (an existing key is still returned).
  virtual Result<std::pair<EventRow, bool>> AddEvent(const EventRow& event, std::int64_t max_queued) = 0;
  // NotFound when none.
  virtual Result<EventRow> GetEvent(std::int64_t seq) = 0;
  virtual Result<EventRow> GetEventByKey(const std::string& key) = 0;
  // Queued events with next_ms <= now_ms, by seq, at most `limit`.
  virtual Result<std::vector<EventRow>> DueEvents(std::int64_t now_ms, std::size_t limit) = 0;
  virtual Result<std::vector<EventRow>> ListEvents(const EventQuery& query) = 0;
  virtual Result<QueueStats> Stats() = 0;

  // The fence alone: raises the stored term to `term`; FailedPrecondition
  // (naming the stored term) when it is newer. Returns the stored term.
  virtual Result<std::uint64_t> AdmitTerm(std::uint64_t term) = 0;
  // In one transaction, fenced: the queued event `seq` becomes "done" with
  // `term`, record.address and now_ms, and `record` is inserted.
  // FailedPrecondition when fenced; Conflict when the event is not queued
  // (done or dead already, or a record for it exists), and nothing changes.
  virtual Status Complete(std::int64_t seq, std::uint64_t term, const RecordRow& record, std::int64_t now_ms) = 0;
  // Fenced: a failed attempt of the queued event `seq`: attempts + 1,
  // `error`, next_ms; with `dead` the event becomes "dead" (term set).
  // FailedPrecondition when fenced, Conflict when not queued.
  virtual Status Fail(std::int64_t seq, std::uint64_t term, const std::string& error, std::int64_t next_ms,
                      bool dead) = 0;

  // Dead letters. Replay: a dead event is queued again (attempts 0, error
  // kept, next_ms now_ms); NotFound, or FailedPrecondition when not dead.
  // Purge: deletes dead events (`seq` > 0: that one, NotFound/
  // FailedPrecondition as Replay; 0: all); returns how many.
  virtual Status Replay(std::int64_t seq, std::int64_t now_ms) = 0;
  virtual Result<std::int64_t> Purge(std::int64_t seq) = 0;

  virtual Result<std::vector<RecordRow>> ListRecords(const RecordQuery& query) = 0;
  // NotFound when the event has no record.
  virtual Result<RecordRow> GetRecord(std::int64_t event_seq) = 0;
};

}  // namespace bzzz::slurp
