// TaskManager: the tasks this node owns, durable in its store, run by
// agents (pool.h). It wraps TaskCore with a lock and three duties:
//
// - Group commit: one writer thread writes every changed task in one
//   transaction per batch. A submitter hears 201 only after the batch that
//   holds its task is committed; watchers hear of changes after they are
//   committed. A failed write is retried (the tasks stay in memory).
// - The loop (ticker thread, and at once on every event): lease expiry,
//   timeouts, due retries, and dispatch of ready tasks to waiting agents by
//   the configured strategy.
// - Reads: memory first (open and recently finished tasks), then the store.
// - In a store shared by several nodes (TaskOwnership): the owner thread
//   claims a term at start, renews the lease, takes over the unfinished
//   tasks of nodes whose lease expired (TaskCore::Adopt), and, when it finds
//   its own tasks taken over (fenced), drops everything unwritten, claims a
//   new term and rebuilds from the store, as a restart would. Submitters
//   whose task was not written then hear Unavailable, never 201.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "tasks/repository.h"
#include "tasks/core.h"

namespace prometheus {
class Registry;
}
namespace bzzz::executors {
class ExecutorRegistry;
class SecretSealer;
}

namespace bzzz::cache {
class Cache;
}

namespace bzzz::tasks {

struct ManagerOptions {
  CoreOptions core;
  std::shared_ptr<TaskRepository> store;
  const executors::ExecutorRegistry* executors = nullptr;  // validates inputs at submit; null: no check
  // Seals the secrets of task inputs in the store (codec.h ToRow); null:
  // they are stored in clear (tests, tools).
  std::shared_ptr<const executors::SecretSealer> sealer;
  std::size_t max_unwritten = 50000;  // changed tasks waiting for the writer; past it, submit gets 429
  std::chrono::milliseconds tick{50};
  // In a store shared by several nodes (store->Ownership() set): this
  // node's lease on its tasks. It is renewed every quarter of it; a node
  // that has not renewed for this long has its unfinished tasks taken over
  // by a survivor, which looks for such owners as often.
  std::chrono::milliseconds owner_lease{3000};
  // Caches the rows of finished tasks read from the store (succeeded and
  // cancelled: nothing changes them); null: every such read asks the store.
  std::shared_ptr<cache::Cache> cache;
  // Called once a task's change into succeeded, dead or cancelled is
  // committed (on the writer's acknowledgement thread, never under a lock;
  // it must not block): SLURP's task outcomes.
  std::function<void(const Task&)> on_final;
};

struct TaskStats {
  std::vector<std::pair<std::string, std::uint64_t>> by_state;  // committed
  std::size_t queue_depth = 0;   // ready + waiting to retry
  std::size_t in_flight = 0;
  std::size_t waiting_agents = 0;
  std::uint64_t committed_batches = 0;
  std::uint64_t write_failures = 0;
};

class TaskManager {
 public:
  // Loads the open tasks (in-flight attempts of a previous run become lost),
  // then starts the writer and the loop. `metrics` may be null.
  static Result<std::unique_ptr<TaskManager>> Start(ManagerOptions options, prometheus::Registry* metrics);
  ~TaskManager();  // Stop()
  // Writes what is pending (bounded wait) and stops the threads. Idempotent.
  void Stop();

  using SubmitDone = std::function<void(Result<SubmitOutcome>)>;
  // `done` runs once: with the task when it is durable (created or found by
  // its idempotency key), or with InvalidArgument / ResourceExhausted /
  // Unavailable. It may run on the calling thread or the writer's.
  void Submit(SubmitRequest request, SubmitDone done);

  // This node's task, or in a shared store any node's (its sealed inputs
  // stay sealed).
  Result<Task> Get(const std::string& id);
  Result<std::vector<Task>> List(const TaskQuery& query);
  // Every node's tasks in a shared store (owner_node set from the store);
  // FailedPrecondition for a store only this node uses.
  Result<std::vector<Task>> ListCluster(const ClusterTaskQuery& query);
  Result<TaskStats> Stats();
  Result<Task> Cancel(const std::string& id);
  // Dead-letter queue: dead tasks. Replay re-queues with a fresh attempt
  // budget; Purge deletes the task for good.
  Result<std::vector<Task>> DeadLetters(std::size_t limit, std::int64_t before_seq);
  Result<Task> Replay(const std::string& id);
  Status Purge(const std::string& id);
  // HMMM (tasks/core.h Escalate and Resume): only the owner changes a task
  // (FailedPrecondition naming it otherwise). Resume checks a new input
  // like a submission (InvalidArgument).
  Result<Task> Escalate(const std::string& id, const std::string& reason);
  Result<Task> Resume(const std::string& id, const std::string& note, const std::string& input);

  // Calls `done` with the task once it has more than `after` events or is
  // finished, or when `wait` has passed (with the task as it is).
  void Watch(const std::string& id, std::size_t after, std::chrono::milliseconds wait,
             std::function<void(Result<Task>)> done);

  // --- agents (pool.h) ---
  // Offers `slot` for work and blocks up to `wait` for an assignment.
  std::optional<Assignment> Await(const WorkerSlot& slot, std::chrono::milliseconds wait);
  // Wakes an agent blocked in Await (stopping it).
  void Release(const std::string& agent_id);
  Status Begin(const Assignment& a);
  Status Renew(const std::string& task_id, int attempt, const std::string& agent);
  // A progress line from the executor (an event of the task; borrowed
  // attempts keep theirs to themselves).
  void Progress(const Assignment& a, std::string_view text);
  // Records the end; FailedPrecondition when the attempt is stale (the
  // lease expired and the task moved on): nothing is recorded.
  Status Complete(const Assignment& a, const AttemptOutcome& outcome);
  Status HandBack(const Assignment& a);
  // The pool's hook to stop an attempt whose task was cancelled.
  void OnCancel(std::function<void(const std::string& agent_id, const std::string& task_id)> hook);

  // --- other nodes (cluster.h) ---
  // Owner: leases up to `count` ready tasks that `worker`'s agents can run
  // (agent "remote:<worker>").
  std::vector<Assignment> Lend(const std::string& worker, const std::string& role,
                               const std::vector<std::string>& capabilities,
                               const std::vector<std::string>& executors, int count);
  // Owner: what a borrower reports (kHandedBack hands the attempt back).
  Status RemoteComplete(const std::string& task_id, int attempt, const std::string& agent,
                        const AttemptOutcome& outcome);
  Status RemoteRenew(const std::string& task_id, int attempt, const std::string& agent);
  // Worker: borrowed attempts (owner set) for the local agents, before
  // local work; their ends go to the hook instead of the local core.
  void AcceptForeign(std::vector<Assignment> jobs);
  void OnForeignDone(std::function<void(const Assignment&, const AttemptOutcome&)> hook);
  // Borrowed attempts held here (queued or running), for renewals.
  std::vector<Assignment> ForeignHeld() const;
  // Removes and returns the borrowed attempts no agent has started.
  std::vector<Assignment> TakeForeignQueued();

  std::size_t QueueDepth() const;
  std::size_t ReadyCount() const;
  std::size_t StrandedCount() const;  // TaskCore::StrandedCount
  std::size_t InFlight() const;
  const CoreOptions& options() const;

  class Impl;

 private:
  explicit TaskManager(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::tasks
