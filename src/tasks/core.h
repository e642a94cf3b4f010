// TaskCore: the owner's state machine over the tasks it holds, without
// threads, clocks or I/O. Every call takes `now_ms`; randomness comes from a
// seed. TaskManager (manager.h) wraps it with a lock, the store and the
// agents; the simulation (tests/tasks/task_sim_test.cc) drives it directly,
// crashing it between any two steps.
//
// Durability contract: every change marks the task dirty. The caller drains
// the dirty tasks (TakeDirty), writes them in one transaction and only then
// tells anybody (the submitter's 201, watchers). After a crash the core is
// rebuilt from what was written (Recover): an attempt that was in flight is
// `lost` and counts as a failure, so it runs again (at least once), while
// a task records at most one successful attempt (Complete accepts only the
// current attempt of a task that has not finished).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/status.h"
#include "tasks/policy.h"
#include "tasks/task.h"

namespace bzzz::tasks {

struct CoreOptions {
  std::string node_id;
  int default_max_attempts = 3;
  std::int64_t default_timeout_ms = 60000;
  std::int64_t lease_ms = 10000;
  std::size_t max_open_tasks = 100000;  // queued + waiting to retry + in flight
  std::int64_t backoff_base_ms = 500;
  std::int64_t backoff_max_ms = 60000;
  std::int64_t timeout_grace_ms = 2000;       // past the timeout before the owner gives up on an attempt
  std::int64_t idempotency_window_ms = 60000;  // keys of finished tasks stay in memory this long (then: the store)
  Strategy strategy = Strategy::kLeastLoaded;
};

struct SubmitRequest {
  std::string executor;
  std::string input = "{}";  // JSON text
  std::string idempotency_key;
  int priority = 0;
  std::optional<int> max_attempts;
  std::optional<std::int64_t> timeout_ms;
  std::string project;
  std::string name;
  std::vector<std::string> capabilities;
  std::string role;
  std::string submitter;  // the caller's principal (set by the API, never from the body)
};

struct SubmitOutcome {
  Task task;
  bool created = false;
  // The key belongs to a finished task that left memory: only task.id is
  // set; the caller reads the task from the store.
  bool evicted = false;
  // Set by TaskManager: `task`'s JSON document exactly as it was written
  // (codec.h TaskDocument), when no secret of its input needed sealing;
  // empty otherwise. An answer can send it instead of serializing again.
  std::string document;
};

// What an agent is told to run.
struct Assignment {
  std::string task_id;
  int attempt = 0;
  std::string agent_id;
  std::string executor;
  std::string input;
  std::int64_t timeout_ms = 0;
  std::int64_t lease_expiry_ms = 0;
  std::string owner;  // "" when this node owns the task; else the owner lent it (cluster.h)
};

// How an attempt ended, as its agent reports it.
struct AttemptOutcome {
  AttemptState state = AttemptState::kSucceeded;  // succeeded, failed, timed_out or cancelled
  std::string result;  // JSON text on success
  std::string error;
};

class TaskCore {
 public:
  TaskCore(CoreOptions options, std::uint64_t seed);

  // Rebuilds from the stored non-terminal tasks; `max_seq` is the highest seq
  // ever given. In-flight attempts become `lost` (counted).
  void Recover(std::vector<Task> open, std::int64_t max_seq, std::int64_t now_ms);

  // Takes in the unfinished tasks of `from`, another owner whose tasks this
  // node took over in a shared store (TaskOwnership::TakeOver): each gets a
  // new seq here and this node as owner; an attempt in flight becomes
  // `lost` (counted), as after a restart; an idempotency key this node
  // already knows is dropped from the adopted task. Every adopted task is
  // dirty. Returns how many were taken in (a task already held is skipped).
  std::size_t Adopt(std::vector<Task> tasks, const std::string& from, std::int64_t now_ms);

  // Creates a task (created = true) or returns the task that already has the
  // idempotency key (created = false). InvalidArgument on a bad request;
  // ResourceExhausted when max_open_tasks are open.
  Result<SubmitOutcome> Submit(const SubmitRequest& request, std::int64_t now_ms);
  // The id of a task that held `key` recently but left memory, if any (the
  // caller reads it from the store).
  std::optional<std::string> RecentKey(const std::string& key) const;

  // Assigns ready tasks to `slots` by the strategy, highest priority first,
  // oldest first among equals, decrementing the slots' free counts.
  std::vector<Assignment> Dispatch(std::vector<WorkerSlot>& slots, std::int64_t now_ms);

  // The agent began running it (assigned → running).
  Status Start(const std::string& id, int attempt, const std::string& agent, std::int64_t now_ms);
  // A progress line of the running attempt (an event; written like any change).
  Status Progress(const std::string& id, int attempt, const std::string& agent, std::string text, std::int64_t now_ms);
  // Extends the lease. FailedPrecondition when the attempt is not current.
  Status Renew(const std::string& id, int attempt, const std::string& agent, std::int64_t now_ms);
  // Records the end of an attempt. FailedPrecondition ("stale") when it is
  // not the task's current attempt any more: nothing is recorded.
  Result<Task> Complete(const std::string& id, int attempt, const std::string& agent, const AttemptOutcome& outcome,
                        std::int64_t now_ms);
  // The agent gives the attempt back unfinished (draining): queued again at
  // once, not counted as a failure.
  Status HandBack(const std::string& id, int attempt, const std::string& agent, std::int64_t now_ms);

  // Cancels a task that has not finished. Not running: cancelled at once.
  // Running: cancel_requested; it ends cancelled when its agent reports (or
  // its lease expires). NotFound when not held here; Conflict when finished.
  Result<Task> Cancel(const std::string& id, std::int64_t now_ms);

  // Re-admits a dead task (read from the store by the caller) with a fresh
  // attempt budget. Conflict unless it is dead.
  Result<Task> Replay(Task dead, std::int64_t now_ms);

  // HMMM escalated the task's room: automation on it stops. Not running:
  // escalated at once (out of the queue, never lent). Running: the attempt
  // may still succeed; if it fails, the task is escalated instead of
  // retried. Idempotent for a task already escalated; NotFound when not
  // held here; Conflict when it finished otherwise.
  Result<Task> Escalate(const std::string& id, const std::string& reason, std::int64_t now_ms);
  // An operator resolved the escalation: the task (read from the store by
  // the caller) is queued again with a fresh attempt budget, with `input`
  // instead of its own when not empty. Conflict unless it is escalated.
  Result<Task> Resume(Task escalated, const std::string& note, const std::string& input, std::int64_t now_ms);

  // Lease expiry, timeouts past the grace, due retries, and forgetting
  // finished tasks that are written (Evict). Returns how many tasks changed.
  std::size_t Tick(std::int64_t now_ms);

  // Finished tasks that have been written leave memory (their idempotency
  // keys stay for the window).
  void Evict(const std::vector<std::string>& written, std::int64_t now_ms);

  // Forgets a purged task and its idempotency key (a new task may take it).
  void Forget(const std::string& id, const std::string& key);

  // Tasks changed since the last call (copies, ready to write).
  std::vector<Task> TakeDirty();
  bool HasDirty() const { return !dirty_.empty(); }
  bool IsDirty(const std::string& id) const { return dirty_.count(id) > 0; }

  const Task* Find(const std::string& id) const;
  std::vector<Task> Snapshot() const;  // every task in memory

  struct Counts {
    std::size_t queued = 0, retrying = 0, in_flight = 0, open = 0, in_memory = 0;
  };
  Counts counts() const;
  std::size_t ReadyCount() const { return ready_.size(); }
  // Ready tasks the last Dispatch with a free agent had to skip: no agent
  // here can run them (a node's agents are alike), so another node must.
  // At most 256 (Dispatch's skip bound); 0 once nothing is ready.
  std::size_t StrandedCount() const { return std::min(stranded_, ready_.size()); }
  std::int64_t NextDeadline() const;  // earliest lease expiry / timeout / retry (INT64_MAX when none)
  const CoreOptions& options() const { return options_; }

 private:
  using ReadyKey = std::pair<std::pair<int, std::int64_t>, std::string>;  // (-priority, seq), id

  Task* Get(const std::string& id);
  void Touch(Task& t, std::int64_t now_ms);
  void Enqueue(Task& t);
  void Unqueue(const Task& t);
  // The current attempt ended as `state`: decide retry, dead or cancel.
  void AfterFailure(Task& t, std::int64_t now_ms);
  void Finish(Task& t, TaskState state, std::int64_t now_ms);
  // Back in the queue with a fresh attempt budget (replay, resume), with an event.
  Task& Requeue(Task t, std::string event, std::string detail, std::int64_t now_ms);
  void Index(Task& t);

  CoreOptions options_;
  std::mt19937_64 rng_;
  std::int64_t seq_ = 0;
  std::unordered_map<std::string, Task> tasks_;
  std::set<ReadyKey> ready_;
  std::size_t stranded_ = 0;
  std::set<std::pair<std::int64_t, std::string>> retrying_;  // (not_before, id)
  std::set<std::string> in_flight_;
  std::unordered_map<std::string, std::string> keys_;  // idempotency key → id (in memory)
  std::map<std::string, std::pair<std::string, std::int64_t>> recent_keys_;  // key → (id, evicted at)
  std::deque<std::pair<std::int64_t, std::string>> recent_order_;
  std::set<std::string> finished_;  // terminal, in memory until written and evicted
  std::unordered_set<std::string> dirty_;
  std::vector<std::string> dirty_order_;
  std::size_t rr_cursor_ = 0;
};

}  // namespace bzzz::tasks
