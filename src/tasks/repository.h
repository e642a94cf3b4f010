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

class TaskRepository {
 public:
  virtual ~TaskRepository() = default;

  // Inserts or replaces every row of `upserts` and deletes the ids of
  // `deletes`, all in one transaction (the task manager batches writes:
  // group commit). A row whose idempotency key another task holds is
  // refused with Conflict and nothing is written.
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
