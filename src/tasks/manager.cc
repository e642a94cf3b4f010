#include "tasks/manager.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/log_limiter.h"
#include "base/threads.h"
#include "cache/cache.h"
#include "executors/executor.h"
#include "tasks/borrowed.h"
#include "tasks/codec.h"
#include "tasks/errc.h"
#include "tasks/probe.h"

namespace bzzz::tasks {

namespace {

constexpr SubsystemLog kLog{"tasks"};
constexpr std::string_view kCacheDomain = "task";

using SteadyClock = std::chrono::steady_clock;


}  // namespace

class TaskManager::Impl {
 public:
  Impl(ManagerOptions o) : options(std::move(o)), core(options.core, std::random_device{}()) {}

  ManagerOptions options;
  mutable std::mutex mu;
  std::mutex dlq_mu;  // held across the read and the change of a replay or purge (before mu)
  TaskCore core;
  bool stopping = false;
  std::condition_variable writer_cv;  // dirty tasks or stop
  std::condition_variable tick_cv;
  std::thread writer, ticker;
  // Acknowledgements run on their own thread, so the writer goes on writing
  // while the answers (201 bodies, watcher replies) are built.
  std::unique_ptr<SerialQueue> acks;

  // Group commit bookkeeping (under mu).
  std::uint64_t taken_batches = 0;      // batches the writer has taken
  std::uint64_t committed_batches = 0;  // of those, written
  std::uint64_t write_failures = 0;
  std::size_t unwritten = 0;            // tasks taken but not yet written
  // What a batch wrote of a task: the task and, when no secret of its input
  // needed sealing, the document written (codec.h TaskDocument).
  struct Written {
    Task task;
    std::string document;
  };
  // Told whether the batch was written (false: this node was fenced before
  // it was, and its tasks rebuilt from the store) and, when the task was in
  // that very batch, what was written (else null).
  using CommitCallback = std::function<void(bool written, Written* as_written)>;
  struct AwaitingCommit {
    std::string id;
    CommitCallback fn;
  };
  std::multimap<std::uint64_t, AwaitingCommit> after_commit;  // by batch

  // A store shared with other nodes (null otherwise) and the owner thread.
  TaskOwnership* ownership = nullptr;
  std::thread owner;
  std::condition_variable owner_cv;  // stop, or a write found this node fenced
  bool fenced = false;               // under mu: the writer holds off until the rebuild
  bool writing = false;              // under mu: the writer is inside WriteTasks
  // Takeovers only from then on (steady clock, ns): a whole lease after
  // start and after the last failed renewal.
  std::atomic<std::int64_t> takeover_after_ns{0};
  std::thread taker;
  // Held across a takeover and across a rebuild: a rebuild must not load
  // the store between a takeover's move and its adoption (it would drop
  // the adopted tasks from memory while the store says they are ours).
  std::mutex takeover_mu;
  std::condition_variable writer_idle_cv;

  // Agents waiting for work (under mu).
  struct Waiter {
    WorkerSlot slot;
    std::optional<Assignment> got;
    bool released = false;
    std::condition_variable cv;
  };
  std::unordered_map<std::string, Waiter*> waiting;
  std::vector<std::string> waiting_order;  // arrival order: the strategies' tie-break
  std::function<void(const std::string&, const std::string&)> cancel_hook;
  // Borrowed work (under mu).
  BorrowedWork borrowed;
  std::function<void(const Assignment&, const AttemptOutcome&)> foreign_hook;

  // Watchers (under mu).
  struct Watcher {
    std::string id;
    std::size_t after;
    SteadyClock::time_point deadline;
    std::function<void(Result<Task>)> done;
  };
  std::vector<Watcher> watchers;

  // Metrics (tasks/probe.h; the bookkeeping below under mu).
  std::unique_ptr<TaskProbe> probe;
  std::unordered_map<std::string, TaskState> last_counted;
  std::unordered_map<std::string, SteadyClock::time_point> submitted_at;
  std::uint64_t attempts_ok = 0, attempts_done = 0;

  // Dispatches ready tasks to waiting agents. Requires mu.
  void DispatchLocked(std::int64_t now) {
    if (waiting.empty() || core.ReadyCount() == 0) return;
    const auto t0 = SteadyClock::now();
    std::vector<WorkerSlot> slots;
    slots.reserve(waiting_order.size());
    for (const auto& id : waiting_order) slots.push_back(waiting.at(id)->slot);
    auto assignments = core.Dispatch(slots, now);
    for (auto& a : assignments) {
      auto it = waiting.find(a.agent_id);
      Waiter* w = it->second;
      waiting.erase(it);
      waiting_order.erase(std::find(waiting_order.begin(), waiting_order.end(), a.agent_id));
      w->got = std::move(a);
      w->cv.notify_one();
    }
    {
      probe->LoopIteration(std::chrono::duration<double>(SteadyClock::now() - t0).count());
    }
    if (!assignments.empty()) writer_cv.notify_one();
  }

  // After a change: hand out work and wake the writer. Requires mu.
  void Changed(std::int64_t now) {
    DispatchLocked(now);
    if (core.HasDirty()) writer_cv.notify_one();
  }

  // Runs `fn` once task `id` as it is now is written: after the next batch
  // when it has unwritten changes, else after the batch the writer holds
  // (at once when that is written). Requires mu; may unlock it.
  void AfterCommit(const std::string& id, CommitCallback fn, std::unique_lock<std::mutex>& lock) {
    const std::uint64_t batch = core.IsDirty(id) ? taken_batches + 1 : taken_batches;
    if (batch <= committed_batches) {
      lock.unlock();
      fn(true, nullptr);
      return;
    }
    after_commit.emplace(batch, AwaitingCommit{id, std::move(fn)});
  }

  void NotifyWatchers(bool all_expired_only) {
    struct Due {
      std::function<void(Result<Task>)> done;
      std::string id;
      std::optional<Task> task;  // empty: it left memory, read the store
    };
    std::vector<Due> due;
    {
      std::lock_guard lock(mu);
      const auto now = SteadyClock::now();
      for (auto it = watchers.begin(); it != watchers.end();) {
        const Task* t = core.Find(it->id);
        const bool expired = now >= it->deadline;
        const bool news = t && (static_cast<std::size_t>(t->event_count) > it->after || IsTerminal(t->state));
        if (expired || (!all_expired_only && news) || !t) {
          due.push_back({std::move(it->done), it->id, t ? std::optional<Task>(*t) : std::nullopt});
          it = watchers.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& d : due) {
      if (d.task) {
        d.done(std::move(*d.task));
      } else {
        d.done(Read(d.id));
      }
    }
  }

  // This node's task (memory, then its rows), or in a shared store any
  // node's, to show.
  Result<Task> Read(const std::string& id) {
    auto own = ReadOwn(id);
    if (own.ok() || !own.status().IsNotFound() || ownership == nullptr) return own;
    if (auto cached = FromCache(id, /*any_owner=*/true)) return std::move(*cached);
    auto any = ownership->GetAnyTask(id);
    if (!any.ok()) return any.status();
    CacheRow(*any);
    return FromRowSealed(*any);
  }

  // This node's task only: what it may change.
  Result<Task> ReadOwn(const std::string& id) {
    {
      std::lock_guard lock(mu);
      if (const Task* t = core.Find(id)) return *t;
    }
    if (auto cached = FromCache(id, /*any_owner=*/false)) return std::move(*cached);
    auto row = options.store->GetTask(id);
    if (!row.ok()) return row.status();
    CacheRow(*row);
    return FromRow(*row, options.sealer.get());
  }

  // The read cache (cache.h) holds the rows of finished tasks that nothing
  // changes any more: succeeded and cancelled (a dead task may be replayed
  // or purged, an escalated one resumed). Keyed by task id, shared through
  // Redis by the nodes, so a cached row is this node's task only when its
  // owner says so; another node's is used only with a shared store, where
  // this node would read it anyway. Such a task never runs again, so its
  // sealed secrets stay sealed.
  static bool Cacheable(const TaskRow& row) { return row.state == "succeeded" || row.state == "cancelled"; }

  void CacheRow(const TaskRow& row) {
    if (options.cache && Cacheable(row)) options.cache->Put(kCacheDomain, row.id, RowToCacheValue(row));
  }

  std::optional<Result<Task>> FromCache(const std::string& id, bool any_owner) {
    if (!options.cache) return std::nullopt;
    auto hit = options.cache->Get(kCacheDomain, id);
    if (!hit) return std::nullopt;
    auto row = RowFromCacheValue(hit->value);
    Result<Task> t = row && row->id == id && Cacheable(*row) ? FromRowSealed(*row)
                                                             : Result<Task>(InvalidArgument("unreadable"));
    if (!t.ok() || t->id != id) {
      kLog.warn("tasks: cached copy of task {} is unreadable; dropped", id);
      options.cache->Erase(kCacheDomain, id);
      return std::nullopt;
    }
    if (t->owner_node != options.core.node_id && !any_owner) return std::nullopt;
    return t;
  }

  // Why `verb` of a task this node does not own fails: NotFound, or in a
  // shared store FailedPrecondition naming the owner (only it changes it).
  Status NotOwned(const std::string& id, std::string_view verb) {
    if (ownership != nullptr) {
      auto any = ownership->GetAnyTask(id);
      if (any.ok()) {
        auto t = FromRowSealed(*any);
        const std::string owner = t.ok() ? t->owner_node : "another node";
        return FailedPrecondition("task " + id + " belongs to node " + owner + ": " + std::string(verb) +
                                  " it there (only the owner changes a task)");
      }
      if (!any.status().IsNotFound()) return any.status();
    }
    return NotFound("no task " + id);
  }

  void WriterLoop() {
    std::map<std::string, Task> pending;
    Backoff backoff(std::chrono::milliseconds(50), std::chrono::milliseconds(2000));
    for (;;) {
      std::uint64_t batch;
      {
        std::unique_lock lock(mu);
        writer_cv.wait(lock, [&] { return stopping || fenced || core.HasDirty() || !pending.empty(); });
        if (fenced) {
          // Another node owns what this node had not written: drop it and
          // wait for the owner thread to rebuild from the store.
          pending.clear();
          if (stopping) return;
          writer_cv.wait(lock, [&] { return stopping || !fenced; });
          continue;
        }
        if (stopping && !core.HasDirty() && pending.empty()) return;
        for (Task& t : core.TakeDirty()) pending[t.id] = std::move(t);
        batch = ++taken_batches;
        unwritten = pending.size();
        writing = true;
      }
      std::vector<TaskRow> rows;
      rows.reserve(pending.size());
      for (const auto& [id, t] : pending) rows.push_back(ToRow(t, options.sealer.get()));
      Status s = options.store->WriteTasks(rows, {});
      {
        std::lock_guard lock(mu);
        writing = false;
        writer_idle_cv.notify_all();
        // Refused because this node's term ended (or a row is another
        // node's): retrying cannot help; the owner thread rebuilds.
        if (!s.ok() && ownership != nullptr && (ownership->Fenced() || s.code() == StatusCode::kConflict)) {
          fenced = true;
          owner_cv.notify_all();
          kLog.warn("tasks: writing {} tasks refused ({}); this node's tasks were taken over", pending.size(),
                    s.ToString());
          continue;
        }
      }
      if (!s.ok()) {
        {
          std::lock_guard lock(mu);
          ++write_failures;
          probe->WriteFailure();
          if (stopping && write_failures > 20) {
            kLog.error("tasks: giving up writing {} tasks at shutdown: {}", pending.size(), s.ToString());
            return;
          }
        }
        const auto delay = backoff.Next();
        kLog.warn("tasks: writing {} tasks failed ({}); retrying in {} ms", pending.size(), s.ToString(),
                     delay.count());
        std::this_thread::sleep_for(delay);
        continue;
      }
      backoff.Reset();
      std::vector<std::function<void()>> callbacks;
      // What needs no lock (pending is the writer's own) is done outside it:
      // every submitter and agent waits for that lock.
      std::vector<std::string> written;
      written.reserve(pending.size());
      for (const auto& entry : pending) written.push_back(entry.first);
      std::vector<const Task*> final_states;  // first reached in this batch, for on_final
      std::vector<AwaitingCommit> due;
      {
        std::lock_guard lock(mu);
        committed_batches = batch;
        unwritten = 0;
        for (const auto& [id, t] : pending) {
          const bool changed = CountTransition(t);
          if (changed && options.on_final &&
              (t.state == TaskState::kSucceeded || t.state == TaskState::kDead || t.state == TaskState::kCancelled)) {
            final_states.push_back(&t);
          }
        }
        core.Evict(written, UnixMillisNow());
        for (auto it = after_commit.begin(); it != after_commit.end() && it->first <= batch;) {
          due.push_back(std::move(it->second));
          it = after_commit.erase(it);
        }
        if (probe->enabled()) {
          auto c = core.counts();
          probe->QueueDepth(c.queued + c.retrying);
        }
      }
      if (!final_states.empty()) {
        std::vector<Task> finals;
        finals.reserve(final_states.size());
        for (const Task* t : final_states) finals.push_back(*t);
        callbacks.push_back([this, finals = std::move(finals)] {
          for (const Task& t : finals) options.on_final(t);
        });
      }
      // Hand each waiter what was written, so that its answer needs neither
      // the lock nor a second serialization (rows are in pending's order).
      for (AwaitingCommit& d : due) {
        auto p = pending.find(d.id);
        if (p == pending.end()) {  // written by an earlier batch, or a second waiter
          callbacks.push_back([fn = std::move(d.fn)] { fn(true, nullptr); });
          continue;
        }
        Written w{std::move(p->second), {}};
        pending.erase(p);
        if (!InputMayCarrySecrets(w.task.input)) {
          auto row = std::lower_bound(rows.begin(), rows.end(), d.id,
                                      [](const TaskRow& r, const std::string& id) { return r.id < id; });
          if (row != rows.end() && row->id == d.id) w.document = std::move(row->doc);
        }
        callbacks.push_back([fn = std::move(d.fn), w = std::move(w)]() mutable { fn(true, &w); });
      }
      pending.clear();
      callbacks.push_back([this] { NotifyWatchers(false); });
      acks->PostAll(std::move(callbacks));
    }
  }

  // The lines an operator greps for: an attempt that timed out, a task
  // that went to the dead-letter queue (at most 20 a second each).
  void LogTransition(const Task& t) {
    static LogLimiter timeout_lines(20, std::chrono::seconds(1));
    static LogLimiter dead_lines(20, std::chrono::seconds(1));
    std::uint64_t held = 0;
    const Attempt* last = t.attempts.empty() ? nullptr : &t.attempts.back();
    const bool after_failure =
        t.state == TaskState::kRetried || t.state == TaskState::kFailed || t.state == TaskState::kDead;
    if (last && last->state == AttemptState::kTimedOut && after_failure && timeout_lines.Allow(&held)) {
      kLog.warn("tasks: attempt {} of task {} ({}) timed out after {} ms{}", last->number, t.id, t.executor,
                   t.timeout_ms, held ? " (" + std::to_string(held) + " similar lines suppressed)" : "");
    }
    if (t.state == TaskState::kDead && dead_lines.Allow(&held)) {
      kLog.error("tasks: task {} ({}) failed {} attempt(s) and went to the dead-letter queue: {}{}", t.id,
                    t.executor, t.attempts.size(), t.error,
                    held ? " (" + std::to_string(held) + " similar lines suppressed)" : "");
    }
  }

  // Metrics of a written task's state change. Requires mu.
  // Counts `t`'s change of state, if it changed; says whether it did.
  bool CountTransition(const Task& t) {
    auto it = last_counted.find(t.id);
    const bool is_new = it == last_counted.end();
    if (!is_new && it->second == t.state) return false;
    if (is_new) probe->Transition("created", t.executor);
    probe->Transition(std::string(TaskStateName(t.state)), t.executor);
    LogTransition(t);
    if (IsTerminal(t.state)) {
      if (!is_new) last_counted.erase(it);
      submitted_at.erase(t.id);
    } else {
      last_counted[t.id] = t.state;
    }
    return true;
  }

  // ---- a store shared with other nodes (TaskOwnership) ----

  static std::int64_t Ns(SteadyClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  // Renewals, and the rebuild when fenced. Alone on its thread, so that a
  // long takeover (thousands of tasks to read and adopt) never delays this
  // node's own renewals.
  void OwnerLoop() {
    takeover_after_ns = Ns(SteadyClock::now() + options.owner_lease);
    const auto period = std::max(options.owner_lease / 4, std::chrono::milliseconds(20));
    std::unique_lock lock(mu);
    while (!stopping) {
      owner_cv.wait_for(lock, period, [&] { return stopping || fenced; });
      if (stopping) return;
      const bool was_fenced = fenced;
      lock.unlock();
      if (was_fenced) {
        Rebuild();
      } else if (Status s = ownership->Renew(options.owner_lease); !s.ok()) {
        takeover_after_ns = Ns(SteadyClock::now() + options.owner_lease);  // see TakerLoop
        if (ownership->Fenced()) {
          Rebuild();
        } else {
          static LogLimiter lines(1, std::chrono::seconds(5));
          std::uint64_t held = 0;
          if (lines.Allow(&held)) kLog.warn("tasks: renewing this node's lease on its tasks failed: {}", s.ToString());
        }
      }
      lock.lock();
    }
  }

  // Looks for owners whose lease expired, as often as this node renews.
  void TakerLoop() {
    const auto period = std::max(options.owner_lease / 4, std::chrono::milliseconds(20));
    std::unique_lock lock(mu);
    while (!stopping) {
      owner_cv.wait_for(lock, period, [&] { return stopping; });
      if (stopping) return;
      // Only after renewing for a whole lease: when this node has just
      // started or could not reach the store, the others may not have been
      // able to renew either (a cluster restart, a database outage), and
      // their leases deserve a chance before their tasks move.
      if (fenced || Ns(SteadyClock::now()) < takeover_after_ns) continue;
      lock.unlock();
      TakeOverExpired();
      lock.lock();
    }
  }

  // Takes in the unfinished tasks of every other node whose lease expired.
  void TakeOverExpired() {
    std::lock_guard serial(takeover_mu);
    auto owners = ownership->ExpiredOwners();
    if (!owners.ok()) return;
    for (const std::string& from : *owners) {
      const auto started = SteadyClock::now();
      auto rows = ownership->TakeOver(from);
      if (!rows.ok()) {
        // Typically a lock the old owner's session still holds (it froze in
        // a write): the next round tries again.
        static LogLimiter lines(1, std::chrono::seconds(5));
        std::uint64_t held = 0;
        if (lines.Allow(&held)) {
          kLog.warn("tasks: taking over the tasks of {} failed, retrying: {}", from, rows.status().ToString());
        }
        continue;
      }
      if (rows->empty()) continue;
      const std::int64_t now = UnixMillisNow();
      std::vector<Task> adopted;
      adopted.reserve(rows->size());
      std::size_t unreadable = 0;
      for (const TaskRow& row : *rows) {
        auto t = FromRow(row, options.sealer.get());
        if (!t.ok()) {
          // Sealed by the old owner's key: it cannot run here. It goes to
          // the dead-letter queue with the reason rather than being lost.
          t = FromRowSealed(row);
          if (!t.ok()) {
            ++unreadable;
            continue;
          }
          t->state = TaskState::kDead;
          t->error = "taken over from " + from + ", but its sealed inputs open only there: submit it again";
          t->finished_ms = now;
        }
        t->idempotency_key = row.idempotency_key;  // dropped when this node uses it already
        adopted.push_back(std::move(*t));
      }
      std::size_t n;
      {
        std::lock_guard lock(mu);
        n = core.Adopt(std::move(adopted), from, now);
        for (const Task& t : core.Snapshot()) last_counted.try_emplace(t.id, t.state);
        probe->TakeOver(n);
        Changed(now);
      }
      kLog.warn("tasks: took over {} unfinished task(s) of {} (its lease expired) in {:.1f} ms{}", n, from,
                std::chrono::duration<double, std::milli>(SteadyClock::now() - started).count(),
                unreadable ? " (" + std::to_string(unreadable) + " unreadable rows left)" : "");
    }
  }

  // This node's tasks were taken over: drop what was not written, claim a
  // new term, and rebuild from the store as a restart would.
  void Rebuild() {
    std::lock_guard serial(takeover_mu);
    {
      std::unique_lock lock(mu);
      fenced = true;
      writer_cv.notify_all();
      writer_idle_cv.wait(lock, [&] { return !writing; });
      probe->Fenced();
    }
    kLog.warn("tasks: another node took over this node's tasks (its lease had expired); rebuilding from the store");
    Backoff backoff(std::chrono::milliseconds(50), std::chrono::milliseconds(2000));
    std::vector<Task> open;
    std::int64_t max_seq = 0;
    // Claim first (see Start), then read what is still this node's.
    auto load = [&]() -> Status {
      if (auto term = ownership->Claim(options.owner_lease); !term.ok()) return term.status();
      auto rows = options.store->TasksInStates({"queued", "assigned", "running", "failed", "retried"});
      if (!rows.ok()) return rows.status();
      auto totals = options.store->TaskStats();
      if (!totals.ok()) return totals.status();
      max_seq = totals->max_seq;
      open.clear();
      for (const auto& row : *rows) {
        auto t = FromRow(row, options.sealer.get());
        if (t.ok()) open.push_back(std::move(*t));
      }
      return Status::Ok();
    };
    for (Status s = load(); !s.ok(); s = load()) {
      kLog.warn("tasks: rebuilding from the store failed ({}); retrying", s.ToString());
      {
        std::lock_guard lock(mu);
        if (stopping) return;
      }
      std::this_thread::sleep_for(backoff.Next());
    }
    std::vector<CommitCallback> dropped;
    {
      std::lock_guard lock(mu);
      core.Recover(std::move(open), max_seq, UnixMillisNow());
      last_counted.clear();
      for (const Task& t : core.Snapshot()) last_counted[t.id] = t.state;
      for (auto& [b, waiting] : after_commit) dropped.push_back(std::move(waiting.fn));
      after_commit.clear();
      committed_batches = taken_batches;
      unwritten = 0;
      fenced = false;
      writer_cv.notify_all();
      Changed(UnixMillisNow());
    }
    for (auto& cb : dropped) cb(false, nullptr);
    NotifyWatchers(false);
  }

  void TickerLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      const std::int64_t now = UnixMillisNow();
      core.Tick(now);
      Changed(now);
      const std::int64_t next = core.NextDeadline();
      auto wait = options.tick;
      if (next != INT64_MAX) wait = std::clamp(std::chrono::milliseconds(next - now), std::chrono::milliseconds(1), options.tick);
      tick_cv.wait_for(lock, wait);
      if (!watchers.empty()) {
        lock.unlock();
        NotifyWatchers(true);
        lock.lock();
      }
    }
  }
};

TaskManager::TaskManager(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
TaskManager::~TaskManager() { Stop(); }

Result<std::unique_ptr<TaskManager>> TaskManager::Start(ManagerOptions options, prometheus::Registry* registry) {
  if (!options.store) return InvalidArgument("tasks: no store");
  auto impl = std::make_shared<Impl>(std::move(options));
  impl->ownership = impl->options.store->Ownership();
  // In a shared store the term comes first: a survivor that took over this
  // node's tasks while it was down has moved them already, and none moves
  // what is loaded below while the new lease runs.
  if (impl->ownership != nullptr) {
    auto term = impl->ownership->Claim(impl->options.owner_lease);
    if (!term.ok()) return term.status();
    kLog.info("tasks: holding this node's tasks in the shared store under term {}", *term);
  }
  // Recovery: every task that has not finished, in creation order.
  auto rows = impl->options.store->TasksInStates({"queued", "assigned", "running", "failed", "retried"});
  if (!rows.ok()) return rows.status();
  auto totals = impl->options.store->TaskStats();
  if (!totals.ok()) return totals.status();
  std::vector<Task> open;
  open.reserve(rows->size());
  for (const auto& row : *rows) {
    auto t = FromRow(row, impl->options.sealer.get());
    if (!t.ok()) return Internal("tasks: stored task " + row.id + " is damaged: " + t.status().message());
    open.push_back(std::move(*t));
  }
  const std::size_t recovered = open.size();
  impl->core.Recover(std::move(open), totals->max_seq, UnixMillisNow());
  for (const Task& t : impl->core.Snapshot()) impl->last_counted[t.id] = t.state;
  if (recovered) kLog.info("tasks: recovered {} unfinished tasks", recovered);
  impl->probe = std::make_unique<TaskProbe>(
      registry, impl->options.executors ? impl->options.executors->Kinds() : std::vector<std::string>{});
  {
    auto c = impl->core.counts();
    impl->probe->QueueDepth(c.queued + c.retrying);
  }
  Impl* raw = impl.get();
  impl->acks = std::make_unique<SerialQueue>("task-acks");
  impl->writer = NamedThread("task-writer", [raw] { raw->WriterLoop(); });
  impl->ticker = NamedThread("task-ticker", [raw] { raw->TickerLoop(); });
  if (impl->ownership != nullptr) {
    impl->owner = NamedThread("task-owner", [raw] { raw->OwnerLoop(); });
    impl->taker = NamedThread("task-taker", [raw] { raw->TakerLoop(); });
  }
  return std::unique_ptr<TaskManager>(new TaskManager(std::move(impl)));
}

void TaskManager::Stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
    for (auto& [id, w] : m.waiting) {
      w->released = true;
      w->cv.notify_one();
    }
  }
  m.tick_cv.notify_all();
  m.writer_cv.notify_all();
  m.owner_cv.notify_all();
  if (m.owner.joinable()) m.owner.join();
  if (m.taker.joinable()) m.taker.join();
  if (m.ticker.joinable()) m.ticker.join();
  if (m.writer.joinable()) m.writer.join();
  if (m.acks) m.acks->Stop();
  std::vector<Impl::CommitCallback> left;
  {
    std::lock_guard lock(m.mu);
    for (auto& [b, waiting] : m.after_commit) left.push_back(std::move(waiting.fn));
    m.after_commit.clear();
  }
  for (auto& cb : left) cb(true, nullptr);  // each re-reads its outcome; nothing further is promised
  m.NotifyWatchers(true);
  std::vector<std::function<void(Result<Task>)>> rest;
  {
    std::lock_guard lock(m.mu);
    for (auto& w : m.watchers) rest.push_back(std::move(w.done));
    m.watchers.clear();
  }
  for (auto& fn : rest) fn(Unavailable("the node is stopping"));
}

void TaskManager::Submit(SubmitRequest request, SubmitDone done) {
  Impl& m = *impl_;
  if (m.options.executors) {
    if (Status s = m.options.executors->Validate(request.executor, request.input); !s.ok()) {
      done(s);
      return;
    }
  }
  // A key seen before this process started is in the store.
  if (!request.idempotency_key.empty()) {
    bool known;
    {
      std::lock_guard lock(m.mu);
      known = m.core.RecentKey(request.idempotency_key).has_value();
    }
    if (!known) {
      auto row = m.options.store->FindTaskByIdempotencyKey(request.idempotency_key);
      if (row.ok()) {
        auto t = FromRow(*row, m.options.sealer.get());
        if (!t.ok()) {
          done(t.status());
          return;
        }
        done(SubmitOutcome{std::move(*t), false, false, {}});
        return;
      }
      if (row.status().code() != StatusCode::kNotFound) {
        done(row.status());
        return;
      }
    }
  }
  std::unique_lock lock(m.mu);
  if (m.stopping) {
    lock.unlock();
    done(Unavailable("the node is stopping"));
    return;
  }
  if (m.unwritten >= m.options.max_unwritten) {
    m.probe->Rejected();
    lock.unlock();
    done(Error(Errc::kStoreBehind, "the task store is behind (" + std::to_string(m.unwritten) + " unwritten changes)"));
    return;
  }
  const std::int64_t now = UnixMillisNow();
  auto outcome = m.core.Submit(request, now);
  if (!outcome.ok()) {
    if (const auto reason = outcome.status().reason();
        reason == Errc::kQueueFull || reason == Errc::kStoreBehind) {
      m.probe->Rejected();
    }
    lock.unlock();
    done(outcome.status());
    return;
  }
  if (outcome->evicted) {  // finished and written: read it back
    lock.unlock();
    auto t = m.Read(outcome->task.id);
    if (!t.ok()) {
      done(t.status());
      return;
    }
    done(SubmitOutcome{std::move(*t), false, false, {}});
    return;
  }
  if (outcome->created) m.submitted_at.emplace(outcome->task.id, SteadyClock::now());
  auto shared = std::make_shared<SubmitOutcome>(std::move(*outcome));
  m.Changed(now);
  const std::string id = shared->task.id;
  m.AfterCommit(id, [shared, done = std::move(done), impl = impl_](bool written, Impl::Written* as_written) {
    if (!written) {
      done(Unavailable("this node's tasks were taken over by another node before the task was written; submit "
                       "it again"));
      return;
    }
    if (as_written != nullptr) {  // the task as this batch wrote it
      shared->task = std::move(as_written->task);
      shared->document = std::move(as_written->document);
      done(std::move(*shared));
      return;
    }
    // Report the task as written (it may have moved on since).
    bool stopped;
    {
      std::lock_guard l(impl->mu);
      stopped = impl->stopping && impl->committed_batches < impl->taken_batches;
      if (const Task* t = impl->core.Find(shared->task.id)) shared->task = *t;
    }
    if (stopped) {
      auto row = impl->options.store->GetTask(shared->task.id);
      if (!row.ok()) {
        done(Unavailable("the node stopped before the task was written"));
        return;
      }
    }
    done(std::move(*shared));
  }, lock);
}

Result<Task> TaskManager::Get(const std::string& id) { return impl_->Read(id); }

Result<std::vector<Task>> TaskManager::List(const TaskQuery& query) {
  auto rows = impl_->options.store->ListTasks(query);
  if (!rows.ok()) return rows.status();
  std::vector<Task> out;
  out.reserve(rows->size());
  std::lock_guard lock(impl_->mu);
  for (const auto& row : *rows) {
    if (const Task* t = impl_->core.Find(row.id)) {
      out.push_back(*t);
      continue;
    }
    auto t = FromRow(row, impl_->options.sealer.get());
    if (!t.ok()) return t.status();
    out.push_back(std::move(*t));
  }
  return out;
}

Result<std::vector<Task>> TaskManager::ListCluster(const ClusterTaskQuery& query) {
  TaskOwnership* ownership = impl_->ownership;
  if (ownership == nullptr) {
    return FailedPrecondition("listing every node's tasks needs a store shared by the nodes (storage.backend: postgres)");
  }
  auto rows = ownership->ListAllTasks(query);
  if (!rows.ok()) return rows.status();
  std::vector<Task> out;
  out.reserve(rows->size());
  std::lock_guard lock(impl_->mu);
  for (const auto& [node, row] : *rows) {
    if (const Task* t = impl_->core.Find(row.id)) {
      out.push_back(*t);
      continue;
    }
    auto t = FromRowSealed(row);
    if (!t.ok()) return t.status();
    t->owner_node = node;
    out.push_back(std::move(*t));
  }
  return out;
}

Result<TaskStats> TaskManager::Stats() {
  auto totals = impl_->options.store->TaskStats();
  if (!totals.ok()) return totals.status();
  TaskStats s;
  s.by_state = totals->by_state;
  std::lock_guard lock(impl_->mu);
  auto c = impl_->core.counts();
  s.queue_depth = c.queued + c.retrying;
  s.in_flight = c.in_flight;
  s.waiting_agents = impl_->waiting.size();
  s.committed_batches = impl_->committed_batches;
  s.write_failures = impl_->write_failures;
  return s;
}

Result<Task> TaskManager::Cancel(const std::string& id) {
  Impl& m = *impl_;
  std::function<void(const std::string&, const std::string&)> hook;
  std::string agent;
  Result<Task> out = NotFound("");
  {
    std::lock_guard lock(m.mu);
    out = m.core.Cancel(id, UnixMillisNow());
    if (out.ok() && out->Current()) {
      agent = out->Current()->agent_id;
      hook = m.cancel_hook;
    }
    if (out.ok()) m.Changed(UnixMillisNow());
  }
  if (!out.ok() && out.status().code() == StatusCode::kNotFound) {
    auto stored = m.ReadOwn(id);
    if (!stored.ok()) return stored.status().IsNotFound() ? m.NotOwned(id, "cancel") : stored.status();
    return Error(Errc::kAlreadyFinished, "task " + id + " is already " + std::string(TaskStateName(stored->state)));
  }
  if (hook && !agent.empty()) hook(agent, id);
  return out;
}

Result<std::vector<Task>> TaskManager::DeadLetters(std::size_t limit, std::int64_t before_seq) {
  TaskQuery q;
  q.state = "dead";
  q.limit = limit;
  q.before_seq = before_seq;
  return List(q);
}

Result<Task> TaskManager::Replay(const std::string& id) {
  // One dead-letter operation at a time: a replay and a purge of the same
  // task must not interleave between reading it and changing it (a purged
  // task would come back, or a replayed one lose its row).
  std::lock_guard dlq(impl_->dlq_mu);
  auto t = impl_->ReadOwn(id);
  if (!t.ok()) return t.status().IsNotFound() ? impl_->NotOwned(id, "replay") : t.status();
  std::lock_guard lock(impl_->mu);
  if (const Task* mem = impl_->core.Find(id)) *t = *mem;
  auto out = impl_->core.Replay(std::move(*t), UnixMillisNow());
  if (out.ok()) {
    impl_->last_counted[id] = TaskState::kDead;
    impl_->Changed(UnixMillisNow());
  }
  return out;
}

Result<Task> TaskManager::Escalate(const std::string& id, const std::string& reason) {
  std::lock_guard dlq(impl_->dlq_mu);
  auto t = impl_->ReadOwn(id);
  if (!t.ok()) return t.status().IsNotFound() ? impl_->NotOwned(id, "escalate") : t.status();
  if (t->state == TaskState::kEscalated) return t;
  if (IsTerminal(t->state)) {
    return Error(Errc::kAlreadyFinished, "task " + id + " is already " + std::string(TaskStateName(t->state)));
  }
  std::lock_guard lock(impl_->mu);
  auto out = impl_->core.Escalate(id, reason, UnixMillisNow());
  if (out.ok()) impl_->Changed(UnixMillisNow());
  return out;
}

Result<Task> TaskManager::Resume(const std::string& id, const std::string& note, const std::string& input) {
  std::lock_guard dlq(impl_->dlq_mu);
  auto t = impl_->ReadOwn(id);
  if (!t.ok()) return t.status().IsNotFound() ? impl_->NotOwned(id, "resume") : t.status();
  if (!input.empty() && impl_->options.executors != nullptr) {
    if (Status s = impl_->options.executors->Validate(t->executor, input); !s.ok()) return s;
  }
  std::lock_guard lock(impl_->mu);
  if (const Task* mem = impl_->core.Find(id)) *t = *mem;
  auto out = impl_->core.Resume(std::move(*t), note, input, UnixMillisNow());
  if (out.ok()) {
    impl_->last_counted[id] = TaskState::kEscalated;
    impl_->Changed(UnixMillisNow());
  }
  return out;
}

Status TaskManager::Purge(const std::string& id) {
  std::lock_guard dlq(impl_->dlq_mu);
  auto t = impl_->ReadOwn(id);
  if (!t.ok()) return t.status().IsNotFound() ? impl_->NotOwned(id, "purge") : t.status();
  if (t->state != TaskState::kDead) {
    return Error(Errc::kNotDead, "task " + id + " is " + std::string(TaskStateName(t->state)) + ": only dead tasks are purged");
  }
  if (Status s = impl_->options.store->WriteTasks({}, {id}); !s.ok()) return s;
  std::lock_guard lock(impl_->mu);
  impl_->core.Forget(id, t->idempotency_key);
  return Status::Ok();
}

void TaskManager::Watch(const std::string& id, std::size_t after, std::chrono::milliseconds wait,
                        std::function<void(Result<Task>)> done) {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    const Task* t = m.core.Find(id);
    if (t && static_cast<std::size_t>(t->event_count) <= after && !IsTerminal(t->state) && wait.count() > 0 && !m.stopping) {
      m.watchers.push_back({id, after, SteadyClock::now() + wait, std::move(done)});
      return;
    }
  }
  done(m.Read(id));
}

std::optional<Assignment> TaskManager::Await(const WorkerSlot& slot, std::chrono::milliseconds wait) {
  Impl& m = *impl_;
  Impl::Waiter w;
  w.slot = slot;
  std::unique_lock lock(m.mu);
  if (m.stopping) return std::nullopt;
  if (auto job = m.borrowed.Next()) return job;
  m.waiting[slot.agent_id] = &w;
  m.waiting_order.push_back(slot.agent_id);
  m.DispatchLocked(UnixMillisNow());
  if (!w.got) {
    w.cv.wait_for(lock, wait, [&] { return w.got.has_value() || w.released || m.borrowed.queued() > 0; });
  }
  if (!w.got) {
    auto it = m.waiting.find(slot.agent_id);
    if (it != m.waiting.end() && it->second == &w) {
      m.waiting.erase(it);
      m.waiting_order.erase(std::find(m.waiting_order.begin(), m.waiting_order.end(), slot.agent_id));
    }
    if (!w.released && !m.stopping) {
      if (auto job = m.borrowed.Next()) return job;
    }
  }
  return std::move(w.got);
}

void TaskManager::Release(const std::string& agent_id) {
  std::lock_guard lock(impl_->mu);
  if (auto it = impl_->waiting.find(agent_id); it != impl_->waiting.end()) {
    it->second->released = true;
    it->second->cv.notify_one();
  }
}

Status TaskManager::Begin(const Assignment& a) {
  if (!a.owner.empty()) return Status::Ok();  // the owner learns from renewals and the result
  std::lock_guard lock(impl_->mu);
  Status s = impl_->core.Start(a.task_id, a.attempt, a.agent_id, UnixMillisNow());
  if (s.ok()) impl_->writer_cv.notify_one();
  return s;
}

void TaskManager::Progress(const Assignment& a, std::string_view text) {
  if (!a.owner.empty()) return;
  std::lock_guard lock(impl_->mu);
  if (impl_->core.Progress(a.task_id, a.attempt, a.agent_id, std::string(text), UnixMillisNow()).ok()) {
    impl_->writer_cv.notify_one();
  }
}

Status TaskManager::Renew(const std::string& task_id, int attempt, const std::string& agent) {
  std::lock_guard lock(impl_->mu);
  return impl_->core.Renew(task_id, attempt, agent, UnixMillisNow());
}

Status TaskManager::Complete(const Assignment& a, const AttemptOutcome& outcome) {
  Impl& m = *impl_;
  if (!a.owner.empty()) {
    std::function<void(const Assignment&, const AttemptOutcome&)> hook;
    {
      std::lock_guard lock(m.mu);
      m.borrowed.Finish(a);
      hook = m.foreign_hook;
    }
    if (hook) hook(a, outcome);
    return Status::Ok();
  }
  std::lock_guard lock(m.mu);
  const std::int64_t now = UnixMillisNow();
  auto t = m.core.Complete(a.task_id, a.attempt, a.agent_id, outcome, now);
  if (!t.ok()) return t.status();
  ++m.attempts_done;
  if (outcome.state == AttemptState::kSucceeded) ++m.attempts_ok;
  if (m.probe->enabled() && m.attempts_done % 64 == 0) {
    m.probe->Efficiency(static_cast<double>(m.attempts_ok) / static_cast<double>(m.attempts_done));
  }
  if (IsTerminal(t->state)) {
    if (auto it = m.submitted_at.find(a.task_id); it != m.submitted_at.end()) {
      if (t->state == TaskState::kSucceeded) {
        m.probe->Latency(t->executor, std::chrono::duration<double>(SteadyClock::now() - it->second).count());
      }
      m.submitted_at.erase(it);
    }
  }
  m.Changed(now);
  return Status::Ok();
}

Status TaskManager::HandBack(const Assignment& a) {
  if (!a.owner.empty()) {
    AttemptOutcome back;
    back.state = AttemptState::kHandedBack;
    return Complete(a, back);
  }
  std::lock_guard lock(impl_->mu);
  Status s = impl_->core.HandBack(a.task_id, a.attempt, a.agent_id, UnixMillisNow());
  if (s.ok()) impl_->Changed(UnixMillisNow());
  return s;
}

void TaskManager::OnCancel(std::function<void(const std::string&, const std::string&)> hook) {
  std::lock_guard lock(impl_->mu);
  impl_->cancel_hook = std::move(hook);
}

std::vector<Assignment> TaskManager::Lend(const std::string& worker, const std::string& role,
                                          const std::vector<std::string>& capabilities,
                                          const std::vector<std::string>& executors, int count) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  if (m.stopping || count <= 0) return {};
  std::vector<WorkerSlot> slot(1);
  slot[0].agent_id = "remote:" + worker;
  slot[0].node_id = worker;
  slot[0].role = role;
  slot[0].capabilities = capabilities;
  slot[0].executors = executors;
  slot[0].free = count;
  const std::int64_t now = UnixMillisNow();
  auto out = m.core.Dispatch(slot, now);
  if (!out.empty()) m.writer_cv.notify_one();
  return out;
}

Status TaskManager::RemoteComplete(const std::string& task_id, int attempt, const std::string& agent,
                                   const AttemptOutcome& outcome) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  const std::int64_t now = UnixMillisNow();
  if (outcome.state == AttemptState::kHandedBack) {
    Status s = m.core.HandBack(task_id, attempt, agent, now);
    if (s.ok()) m.Changed(now);
    return s;
  }
  auto t = m.core.Complete(task_id, attempt, agent, outcome, now);
  if (!t.ok()) return t.status();
  if (t->state == TaskState::kSucceeded) {
    if (auto it = m.submitted_at.find(task_id); it != m.submitted_at.end()) {
      m.probe->Latency(t->executor, std::chrono::duration<double>(SteadyClock::now() - it->second).count());
      m.submitted_at.erase(it);
    }
  }
  m.Changed(now);
  return Status::Ok();
}

Status TaskManager::RemoteRenew(const std::string& task_id, int attempt, const std::string& agent) {
  std::lock_guard lock(impl_->mu);
  return impl_->core.Renew(task_id, attempt, agent, UnixMillisNow());
}

void TaskManager::AcceptForeign(std::vector<Assignment> jobs) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  m.borrowed.Accept(std::move(jobs));
  // Wake waiting agents: they take borrowed work first.
  for (auto& [id, w] : m.waiting) w->cv.notify_one();
}

void TaskManager::OnForeignDone(std::function<void(const Assignment&, const AttemptOutcome&)> hook) {
  std::lock_guard lock(impl_->mu);
  impl_->foreign_hook = std::move(hook);
}

std::vector<Assignment> TaskManager::ForeignHeld() const {
  std::lock_guard lock(impl_->mu);
  return impl_->borrowed.Held();
}

std::vector<Assignment> TaskManager::TakeForeignQueued() {
  std::lock_guard lock(impl_->mu);
  return impl_->borrowed.TakeQueued();
}

std::size_t TaskManager::ReadyCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->core.ReadyCount() + impl_->borrowed.queued();
}

std::size_t TaskManager::StrandedCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->core.StrandedCount();
}

std::size_t TaskManager::InFlight() const {
  std::lock_guard lock(impl_->mu);
  return impl_->core.counts().in_flight;
}

std::size_t TaskManager::QueueDepth() const {
  std::lock_guard lock(impl_->mu);
  auto c = impl_->core.counts();
  return c.queued + c.retrying;
}

const CoreOptions& TaskManager::options() const { return impl_->core.options(); }

}  // namespace bzzz::tasks
