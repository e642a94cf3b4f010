// TaskRepository: what the tasks subsystem needs from durable storage.
//
// The tasks subsystem owns this contract; each storage backend implements
// it (src/storage/<backend>/tasks.cc) with its own migrations, and nothing
// in src/tasks knows which backend it talks to. The repository knows only
// the columns it filters and orders by; `doc` is the whole task as the
// tasks subsystem serializes it (attempts and events included).
//
// Thread safety: every method may be called from any thread concurrently,
// but not from an HTTP I/O thread (base/threads.h CheckMayBlock).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace bzzz::tasks {

// One task as the repository keeps it.
struct TaskRow {
  std::string id;
  std::string idempotency_key;  // "" when none; unique otherwise
  std::string state;            // "queued", "running", "succeeded", "dead", ...
  std::string executor;
  std::string project;
  int priority = 0;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t seq = 0;         // creation order on this node, 1, 2, ...
  std::string doc;
  bool operator==(const TaskRow&) const = default;
};

// Filters of ListTasks; empty strings match everything. Rows come by seq,
// newest first, those with seq < before_seq when before_seq > 0.
struct TaskQuery {
  std::string state;
  std::string executor;
  std::string project;
  std::int64_t before_seq = 0;
  std::size_t limit = 100;
};

// Task counts by state, and the highest seq (0 without tasks).
struct TaskTotals {
  std::vector<std::pair<std::string, std::uint64_t>> by_state;
  std::int64_t max_seq = 0;
};

// Filters of ListAllTasks: every node's tasks in a shared store, newest id
// first (ids sort by creation time), those with id < before_id when set.
struct ClusterTaskQuery {
  std::string state;
  std::string executor;
  std::string project;
  std::string node;       // one node's tasks; "" for every node
  std::string before_id;
  std::size_t limit = 100;
};

// Ownership of tasks in a store shared by several nodes (PostgreSQL).
//
// Each node holds a lease on its tasks under a term: Claim() starts a new
// term, Renew() extends the lease. When a node's lease expires (it died,
// hung, or lost the database), a survivor's TakeOver() ends that term (so
// the old owner's writes are refused from then on: fencing) and moves the
// old owner's unfinished tasks to itself, in one transaction. Every
// WriteTasks of a node that has claimed checks its term in the same
// transaction, so a write either commits before the takeover (and the
// survivor adopts what it wrote) or is refused after it (Fenced() is then
// true, and the node must rebuild its state from the store and claim a new
// term). Times are the database server's clock, never a node's.
class TaskOwnership {
 public:
  virtual ~TaskOwnership() = default;

  // Starts a new term for this node with a lease of `ttl`; returns it.
  virtual Result<std::int64_t> Claim(std::chrono::milliseconds ttl) = 0;
  // Extends the lease of the current term by `ttl` from now. Conflict (and
  // Fenced() true) when another node ended the term.
  virtual Status Renew(std::chrono::milliseconds ttl) = 0;
  // True once a renewal or a write found this node's term ended; Claim()
  // clears it.
  virtual bool Fenced() const = 0;
  // Other nodes whose lease expired while they still own unfinished tasks.
  virtual Result<std::vector<std::string>> ExpiredOwners() = 0;
  // Fences `owner` and moves its unfinished tasks to this node, returning
  // them as stored; empty when the owner renewed meanwhile or another node
  // was first. An idempotency key this node already uses is dropped from
  // the adopted task (the key stays unique per owner).
  virtual Result<std::vector<TaskRow>> TakeOver(const std::string& owner) = 0;
  // Any node's task (NotFound when none has it), and listings across nodes.
  virtual Result<TaskRow> GetAnyTask(const std::string& id) = 0;
  virtual Result<std::vector<std::pair<std::string, TaskRow>>> ListAllTasks(const ClusterTaskQuery& query) = 0;
};

class TaskRepository {
 public:
  virtual ~TaskRepository() = default;

  // The shared-store side of the repository; null for a store only this
  // node uses (SQLite).
  virtual TaskOwnership* Ownership() { return nullptr; }

  // Inserts or replaces every row of `upserts` and deletes the ids of
  // `deletes`, all in one transaction (the task manager batches writes:
  // group commit). A row whose idempotency key another task holds is
  // refused with Conflict and nothing is written; so is every write of a
  // node fenced by a takeover (TaskOwnership).
  virtual Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) = 0;
  // NotFound when there is no such task.
  virtual Result<TaskRow> GetTask(const std::string& id) = 0;
  virtual Result<TaskRow> FindTaskByIdempotencyKey(const std::string& key) = 0;
  virtual Result<std::vector<TaskRow>> ListTasks(const TaskQuery& query) = 0;
  // Every task whose state is one of `states`, oldest first.
  virtual Result<std::vector<TaskRow>> TasksInStates(const std::vector<std::string>& states) = 0;
  virtual Result<TaskTotals> TaskStats() = 0;
};

}  // namespace bzzz::tasks
