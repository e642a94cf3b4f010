#include "tasks/core.h"

#include <algorithm>
#include <climits>

#include "base/invariant.h"
#include "tasks/errc.h"

namespace bzzz::tasks {

namespace {

bool ValidName(const std::string& s) {
  if (s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
}

}  // namespace

TaskCore::TaskCore(CoreOptions options, std::uint64_t seed) : options_(std::move(options)), rng_(seed) {}

Task* TaskCore::Get(const std::string& id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : &it->second;
}

const Task* TaskCore::Find(const std::string& id) const {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : &it->second;
}

void TaskCore::Touch(Task& t, std::int64_t now_ms) {
  t.updated_ms = now_ms;
  if (dirty_.insert(t.id).second) dirty_order_.push_back(t.id);
}

void TaskCore::Enqueue(Task& t) { ready_.insert({{-t.priority, t.seq}, t.id}); }
void TaskCore::Unqueue(const Task& t) { ready_.erase({{-t.priority, t.seq}, t.id}); }

void TaskCore::Index(Task& t) {
  if (!t.idempotency_key.empty()) keys_[t.idempotency_key] = t.id;
  switch (t.state) {
    case TaskState::kQueued: Enqueue(t); break;
    case TaskState::kRetried:
    case TaskState::kFailed: retrying_.insert({t.not_before_ms, t.id}); break;
    case TaskState::kAssigned:
    case TaskState::kRunning: in_flight_.insert(t.id); break;
    default: finished_.insert(t.id); break;
  }
}

void TaskCore::Recover(std::vector<Task> open, std::int64_t max_seq, std::int64_t now_ms) {
  tasks_.clear();
  ready_.clear();
  retrying_.clear();
  in_flight_.clear();
  keys_.clear();
  finished_.clear();
  dirty_.clear();
  dirty_order_.clear();
  seq_ = max_seq;
  for (Task& t : open) {
    seq_ = std::max(seq_, t.seq);
    auto [it, inserted] = tasks_.emplace(t.id, std::move(t));
    if (!inserted) continue;
    Task& task = it->second;
    if (task.state == TaskState::kFailed) task.state = TaskState::kRetried;  // decided, not yet written
    Index(task);
    if (task.state == TaskState::kAssigned || task.state == TaskState::kRunning) {
      in_flight_.erase(task.id);
      if (Attempt* a = task.Current()) {
        a->state = AttemptState::kLost;
        a->finished_ms = now_ms;
        a->error = "the owner restarted while the attempt was in flight";
        task.error = a->error;
        task.AddEvent(now_ms, "lost", a->error, a->number);
      }
      task.assigned_agent.clear();
      task.lease_expiry_ms = 0;
      AfterFailure(task, now_ms);
    }
  }
}

std::size_t TaskCore::Adopt(std::vector<Task> tasks, const std::string& from, std::int64_t now_ms) {
  std::size_t adopted = 0;
  for (Task& incoming : tasks) {
    if (tasks_.count(incoming.id)) continue;
    if (!incoming.idempotency_key.empty() &&
        (keys_.count(incoming.idempotency_key) || recent_keys_.count(incoming.idempotency_key))) {
      incoming.idempotency_key.clear();
    }
    incoming.seq = ++seq_;
    incoming.owner_node = options_.node_id;
    auto [it, inserted] = tasks_.emplace(incoming.id, std::move(incoming));
    if (!inserted) continue;
    Task& task = it->second;
    if (task.state == TaskState::kFailed) task.state = TaskState::kRetried;  // decided, not yet written
    task.AddEvent(now_ms, "taken_over", "from " + from + ", whose lease on its tasks expired");
    Index(task);
    if (task.state == TaskState::kAssigned || task.state == TaskState::kRunning) {
      in_flight_.erase(task.id);
      if (Attempt* a = task.Current()) {
        a->state = AttemptState::kLost;
        a->finished_ms = now_ms;
        a->error = "the owner " + from + " stopped renewing its lease while the attempt was in flight";
        task.error = a->error;
        task.AddEvent(now_ms, "lost", a->error, a->number);
      }
      task.assigned_agent.clear();
      task.lease_expiry_ms = 0;
      AfterFailure(task, now_ms);
    }
    Touch(task, now_ms);
    ++adopted;
  }
  return adopted;
}

std::optional<std::string> TaskCore::RecentKey(const std::string& key) const {
  if (auto it = keys_.find(key); it != keys_.end()) return it->second;
  if (auto it = recent_keys_.find(key); it != recent_keys_.end()) return it->second.first;
  return std::nullopt;
}

Result<SubmitOutcome> TaskCore::Submit(const SubmitRequest& r, std::int64_t now_ms) {
  if (!r.idempotency_key.empty()) {
    if (auto it = keys_.find(r.idempotency_key); it != keys_.end()) {
      if (const Task* t = Find(it->second)) return SubmitOutcome{*t, false, false, {}};
    }
    if (auto it = recent_keys_.find(r.idempotency_key); it != recent_keys_.end()) {
      Task stub;
      stub.id = it->second.first;
      return SubmitOutcome{std::move(stub), false, true, {}};
    }
  }
  if (r.idempotency_key.size() > 256) return InvalidArgument("idempotency_key: longer than 256 bytes");
  if (r.max_attempts && (*r.max_attempts < 1 || *r.max_attempts > 1000)) {
    return InvalidArgument("max_attempts: must be 1..1000");
  }
  if (r.timeout_ms && (*r.timeout_ms < 1 || *r.timeout_ms > 24LL * 3600 * 1000)) {
    return InvalidArgument("timeout_ms: must be 1..86400000");
  }
  if (r.priority < -1000 || r.priority > 1000) return InvalidArgument("priority: must be -1000..1000");
  if (!r.project.empty() && !ValidName(r.project)) return InvalidArgument("project: only [A-Za-z0-9_-], at most 128");
  if (!r.name.empty() && !ValidName(r.name)) return InvalidArgument("name: only [A-Za-z0-9_-], at most 128");
  if (r.capabilities.size() > 32) return InvalidArgument("capabilities: at most 32");
  for (const auto& c : r.capabilities) {
    if (c.empty() || c.size() > 64) return InvalidArgument("capabilities: each 1..64 bytes");
  }
  const Counts c = counts();
  if (c.open >= options_.max_open_tasks) {
    return Error(Errc::kQueueFull, "task queue full (" + std::to_string(c.open) + " open tasks, tasks.max_queue_depth " +
                             std::to_string(options_.max_open_tasks) + ")");
  }
  Task t;
  t.id = NewTaskId(now_ms, rng_());
  while (tasks_.count(t.id)) t.id = NewTaskId(now_ms, rng_());
  t.idempotency_key = r.idempotency_key;
  t.executor = r.executor;
  t.input = r.input;
  t.priority = r.priority;
  t.capabilities = r.capabilities;
  t.role = r.role;
  t.submitter = r.submitter;
  t.timeout_ms = r.timeout_ms.value_or(options_.default_timeout_ms);
  t.max_attempts = r.max_attempts.value_or(options_.default_max_attempts);
  t.project = r.project;
  t.name = r.name;
  t.state = TaskState::kQueued;
  t.owner_node = options_.node_id;
  t.hmmm_room = "bzzz/meta/issue/" + t.id;
  t.created_ms = now_ms;
  t.seq = ++seq_;
  t.AddEvent(now_ms, "created", "queued on " + options_.node_id);
  auto [it, _] = tasks_.emplace(t.id, std::move(t));
  Task& task = it->second;
  Index(task);
  Touch(task, now_ms);
  return SubmitOutcome{task, true, false, {}};
}

std::vector<Assignment> TaskCore::Dispatch(std::vector<WorkerSlot>& slots, std::int64_t now_ms) {
  std::vector<Assignment> out;
  int free = 0;
  for (const auto& s : slots) free += std::max(0, s.free);
  if (ready_.empty()) stranded_ = 0;
  if (free == 0 || ready_.empty()) return out;
  std::vector<ReadyKey> taken;
  std::size_t skipped = 0;
  for (auto it = ready_.begin(); it != ready_.end() && free > 0 && skipped < 256; ++it) {
    Task& t = tasks_.at(it->second);
    const int pick = PickWorker(options_.strategy, slots, Requirements{t.capabilities, t.role, t.executor}, rr_cursor_);
    if (pick < 0) {
      ++skipped;  // nobody can run it now; a later task may fit another agent
      continue;
    }
    WorkerSlot& slot = slots[static_cast<std::size_t>(pick)];
    --slot.free;
    ++slot.load;
    --free;
    taken.push_back(*it);
    Attempt a;
    a.number = static_cast<int>(t.attempts.size()) + 1;
    a.agent_id = slot.agent_id;
    a.node_id = slot.node_id;
    a.state = AttemptState::kAssigned;
    a.assigned_ms = now_ms;
    a.lease_expiry_ms = now_ms + options_.lease_ms;
    t.attempts.push_back(a);
    t.state = TaskState::kAssigned;
    t.assigned_agent = slot.agent_id;
    t.lease_expiry_ms = a.lease_expiry_ms;
    t.AddEvent(now_ms, "assigned", slot.agent_id + " on " + slot.node_id, a.number);
    in_flight_.insert(t.id);
    Touch(t, now_ms);
    out.push_back(Assignment{t.id, a.number, slot.agent_id, t.executor, t.input, t.timeout_ms, a.lease_expiry_ms, ""});
  }
  for (const auto& k : taken) ready_.erase(k);
  stranded_ = skipped;
  return out;
}

Status TaskCore::Start(const std::string& id, int attempt, const std::string& agent, std::int64_t now_ms) {
  Task* t = Get(id);
  Attempt* a = t ? t->Current() : nullptr;
  if (!a || a->number != attempt || a->agent_id != agent) return Error(Errc::kStaleAttempt, "stale attempt");
  if (a->state == AttemptState::kRunning) return Status::Ok();
  a->state = AttemptState::kRunning;
  a->started_ms = now_ms;
  t->state = TaskState::kRunning;
  t->AddEvent(now_ms, "running", agent, attempt);
  Touch(*t, now_ms);
  return Status::Ok();
}

Status TaskCore::Progress(const std::string& id, int attempt, const std::string& agent, std::string text,
                          std::int64_t now_ms) {
  Task* t = Get(id);
  Attempt* a = t ? t->Current() : nullptr;
  if (!a || a->number != attempt || a->agent_id != agent) return Error(Errc::kStaleAttempt, "stale attempt");
  if (text.size() > 512) text.resize(512);
  t->AddEvent(now_ms, "progress", std::move(text), attempt);
  Touch(*t, now_ms);
  return Status::Ok();
}

Status TaskCore::Renew(const std::string& id, int attempt, const std::string& agent, std::int64_t now_ms) {
  Task* t = Get(id);
  Attempt* a = t ? t->Current() : nullptr;
  if (!a || a->number != attempt || a->agent_id != agent) return Error(Errc::kStaleAttempt, "stale attempt");
  a->lease_expiry_ms = now_ms + options_.lease_ms;
  t->lease_expiry_ms = a->lease_expiry_ms;  // not written: a restart loses in-flight attempts anyway
  return Status::Ok();
}

void TaskCore::Finish(Task& t, TaskState state, std::int64_t now_ms) {
  t.state = state;
  t.finished_ms = now_ms;
  t.assigned_agent.clear();
  t.lease_expiry_ms = 0;
  Unqueue(t);
  retrying_.erase({t.not_before_ms, t.id});
  in_flight_.erase(t.id);
  finished_.insert(t.id);
  t.AddEvent(now_ms, std::string(TaskStateName(state)), state == TaskState::kSucceeded ? "" : t.error);
  Touch(t, now_ms);
}

void TaskCore::AfterFailure(Task& t, std::int64_t now_ms) {
  in_flight_.erase(t.id);
  t.assigned_agent.clear();
  t.lease_expiry_ms = 0;
  if (t.cancel_requested) {
    if (t.error.empty()) t.error = "cancelled";
    Finish(t, TaskState::kCancelled, now_ms);
    return;
  }
  if (t.escalate_requested) {
    t.error = "escalated to a human (HMMM): " + t.error;
    Finish(t, TaskState::kEscalated, now_ms);
    return;
  }
  const int failed = t.FailedAttempts();
  if (failed >= t.max_attempts) {
    t.error = "attempts exhausted (" + std::to_string(failed) + " of " + std::to_string(t.max_attempts) +
              "): " + t.error;
    Finish(t, TaskState::kDead, now_ms);
    return;
  }
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  const std::int64_t delay = RetryDelayMs(failed, options_.backoff_base_ms, options_.backoff_max_ms, u);
  t.state = TaskState::kRetried;
  t.not_before_ms = now_ms + delay;
  retrying_.insert({t.not_before_ms, t.id});
  t.AddEvent(now_ms, "retried", "attempt " + std::to_string(failed + 1) + " of " + std::to_string(t.max_attempts) +
                                    " in " + std::to_string(delay) + " ms");
  Touch(t, now_ms);
}

Result<Task> TaskCore::Complete(const std::string& id, int attempt, const std::string& agent,
                                const AttemptOutcome& outcome, std::int64_t now_ms) {
  Task* t = Get(id);
  Attempt* a = t ? t->Current() : nullptr;
  if (!a || a->number != attempt || a->agent_id != agent) {
    return Error(Errc::kStaleAttempt, "stale attempt " + std::to_string(attempt) + " of " + id + ": not current");
  }
  a->finished_ms = now_ms;
  if (a->started_ms == 0) a->started_ms = now_ms;
  switch (outcome.state) {
    case AttemptState::kSucceeded:
      // A task succeeds at most once: the attempt reported is the current
      // one of a task that has not finished.
      BZZZ_INVARIANT(t->SuccessfulAttempts() == 0 && !IsTerminal(t->state),
                     "task " + id + " would succeed twice (attempt " + std::to_string(attempt) + ")");
      a->state = AttemptState::kSucceeded;
      a->result = outcome.result;
      t->result = outcome.result;
      t->error.clear();
      Finish(*t, TaskState::kSucceeded, now_ms);
      return *t;
    case AttemptState::kCancelled:
      a->state = AttemptState::kCancelled;
      a->error = outcome.error.empty() ? "cancelled" : outcome.error;
      t->error = a->error;
      t->cancel_requested = true;
      AfterFailure(*t, now_ms);
      return *t;
    case AttemptState::kTimedOut:
    case AttemptState::kFailed:
    case AttemptState::kLost:
      a->state = outcome.state;
      a->error = outcome.error;
      t->error = outcome.error;
      t->state = TaskState::kFailed;
      t->AddEvent(now_ms, std::string(AttemptStateName(outcome.state)), outcome.error, attempt);
      AfterFailure(*t, now_ms);
      return *t;
    default: return InvalidArgument("an attempt cannot end as " + std::string(AttemptStateName(outcome.state)));
  }
}

Status TaskCore::HandBack(const std::string& id, int attempt, const std::string& agent, std::int64_t now_ms) {
  Task* t = Get(id);
  Attempt* a = t ? t->Current() : nullptr;
  if (!a || a->number != attempt || a->agent_id != agent) return Error(Errc::kStaleAttempt, "stale attempt");
  a->state = AttemptState::kHandedBack;
  a->finished_ms = now_ms;
  in_flight_.erase(t->id);
  t->assigned_agent.clear();
  t->lease_expiry_ms = 0;
  t->AddEvent(now_ms, "handed_back", agent + " stopped before finishing", attempt);
  if (t->cancel_requested) {
    t->error = "cancelled";
    Finish(*t, TaskState::kCancelled, now_ms);
    return Status::Ok();
  }
  if (t->escalate_requested) {
    t->error = "escalated to a human (HMMM)";
    Finish(*t, TaskState::kEscalated, now_ms);
    return Status::Ok();
  }
  t->state = TaskState::kQueued;
  Enqueue(*t);
  Touch(*t, now_ms);
  return Status::Ok();
}

Result<Task> TaskCore::Cancel(const std::string& id, std::int64_t now_ms) {
  Task* t = Get(id);
  if (!t) return NotFound("no task " + id + " held here");
  if (IsTerminal(t->state)) return Error(Errc::kAlreadyFinished, "task " + id + " is already " + std::string(TaskStateName(t->state)));
  t->cancel_requested = true;
  t->error = "cancelled";
  if (t->Current() == nullptr) {
    Finish(*t, TaskState::kCancelled, now_ms);
  } else {
    t->AddEvent(now_ms, "cancel_requested", "the running attempt is being stopped");
    Touch(*t, now_ms);
  }
  return *t;
}

Result<Task> TaskCore::Replay(Task dead, std::int64_t now_ms) {
  if (dead.state != TaskState::kDead) {
    return Error(Errc::kNotDead, "task " + dead.id + " is " + std::string(TaskStateName(dead.state)) + ", not dead");
  }
  const std::string detail = "from the dead-letter queue: " + std::to_string(dead.max_attempts) + " new attempts";
  return Requeue(std::move(dead), "replayed", detail, now_ms);
}

Task& TaskCore::Requeue(Task t, std::string event, std::string detail, std::int64_t now_ms) {
  if (tasks_.count(t.id)) finished_.erase(t.id), tasks_.erase(t.id);
  t.state = TaskState::kQueued;
  t.attempt_base = static_cast<int>(t.attempts.size());
  t.error.clear();
  t.finished_ms = 0;
  t.not_before_ms = 0;
  t.cancel_requested = false;
  t.escalate_requested = false;
  t.AddEvent(now_ms, std::move(event), std::move(detail));
  auto [it, _] = tasks_.emplace(t.id, std::move(t));
  Index(it->second);
  Touch(it->second, now_ms);
  return it->second;
}

Result<Task> TaskCore::Escalate(const std::string& id, const std::string& reason, std::int64_t now_ms) {
  Task* t = Get(id);
  if (!t) return NotFound("no task " + id + " held here");
  if (t->state == TaskState::kEscalated) return *t;
  if (IsTerminal(t->state)) return Error(Errc::kAlreadyFinished, "task " + id + " is already " + std::string(TaskStateName(t->state)));
  if (t->escalate_requested) return *t;
  t->error = "escalated to a human (HMMM): " + reason;
  if (t->Current() == nullptr) {
    Finish(*t, TaskState::kEscalated, now_ms);
  } else {
    t->escalate_requested = true;
    t->AddEvent(now_ms, "escalation_requested", reason + "; the running attempt may finish, no retry follows");
    Touch(*t, now_ms);
  }
  return *t;
}

Result<Task> TaskCore::Resume(Task t, const std::string& note, const std::string& input, std::int64_t now_ms) {
  if (t.state != TaskState::kEscalated) {
    return Error(Errc::kNotDead, "task " + t.id + " is " + std::string(TaskStateName(t.state)) + ", not escalated");
  }
  const std::string detail = (input.empty() ? "" : "with a new input; ") + note;
  if (!input.empty()) t.input = input;
  return Requeue(std::move(t), "resumed", detail, now_ms);
}

std::size_t TaskCore::Tick(std::int64_t now_ms) {
  std::size_t changed = 0;
  std::vector<std::string> expired;
  for (const auto& id : in_flight_) {
    const Task& t = tasks_.at(id);
    const Attempt* a = t.Current();
    if (!a) continue;
    const bool lease_gone = a->lease_expiry_ms <= now_ms;
    const bool overran = a->state == AttemptState::kRunning &&
                         a->started_ms + t.timeout_ms + options_.timeout_grace_ms <= now_ms;
    if (lease_gone || overran) expired.push_back(id);
  }
  for (const auto& id : expired) {
    Task& t = tasks_.at(id);
    Attempt* a = t.Current();
    const bool lease_gone = a->lease_expiry_ms <= now_ms;
    a->state = lease_gone ? AttemptState::kLost : AttemptState::kTimedOut;
    a->finished_ms = now_ms;
    a->error = lease_gone ? "lease expired: " + a->agent_id + " stopped renewing"
                          : "ran past timeout_ms " + std::to_string(t.timeout_ms);
    t.error = a->error;
    t.state = TaskState::kFailed;
    t.AddEvent(now_ms, std::string(AttemptStateName(a->state)), a->error, a->number);
    AfterFailure(t, now_ms);
    ++changed;
  }
  while (!retrying_.empty() && retrying_.begin()->first <= now_ms) {
    const std::string id = retrying_.begin()->second;
    retrying_.erase(retrying_.begin());
    Task& t = tasks_.at(id);
    t.state = TaskState::kQueued;
    t.AddEvent(now_ms, "queued", "retry due");
    Enqueue(t);
    Touch(t, now_ms);
    ++changed;
  }
  while (!recent_order_.empty() && recent_order_.front().first + options_.idempotency_window_ms <= now_ms) {
    const auto& [at, key] = recent_order_.front();
    if (auto it = recent_keys_.find(key); it != recent_keys_.end() && it->second.second == at) recent_keys_.erase(it);
    recent_order_.pop_front();
  }
  return changed;
}

void TaskCore::Evict(const std::vector<std::string>& written, std::int64_t now_ms) {
  for (const auto& id : written) {
    if (dirty_.count(id) || !finished_.count(id)) continue;
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;
    const Task& t = it->second;
    if (!t.idempotency_key.empty()) {
      keys_.erase(t.idempotency_key);
      recent_keys_[t.idempotency_key] = {t.id, now_ms};
      recent_order_.emplace_back(now_ms, t.idempotency_key);
    }
    finished_.erase(id);
    tasks_.erase(it);
  }
}

void TaskCore::Forget(const std::string& id, const std::string& key) {
  if (!key.empty()) {
    if (auto it = keys_.find(key); it != keys_.end() && it->second == id) keys_.erase(it);
    if (auto it = recent_keys_.find(key); it != recent_keys_.end() && it->second.first == id) recent_keys_.erase(it);
  }
  if (auto it = tasks_.find(id); it != tasks_.end() && IsTerminal(it->second.state) && !dirty_.count(id)) {
    finished_.erase(id);
    tasks_.erase(it);
  }
}

std::vector<Task> TaskCore::TakeDirty() {
  std::vector<Task> out;
  out.reserve(dirty_order_.size());
  for (const auto& id : dirty_order_) {
    if (const Task* t = Find(id)) out.push_back(*t);
  }
  dirty_.clear();
  dirty_order_.clear();
  return out;
}

std::vector<Task> TaskCore::Snapshot() const {
  std::vector<Task> out;
  out.reserve(tasks_.size());
  for (const auto& [id, t] : tasks_) out.push_back(t);
  return out;
}

TaskCore::Counts TaskCore::counts() const {
  Counts c;
  c.queued = ready_.size();
  c.retrying = retrying_.size();
  c.in_flight = in_flight_.size();
  c.open = c.queued + c.retrying + c.in_flight;
  c.in_memory = tasks_.size();
  return c;
}

std::int64_t TaskCore::NextDeadline() const {
  std::int64_t next = INT64_MAX;
  if (!retrying_.empty()) next = retrying_.begin()->first;
  for (const auto& id : in_flight_) {
    const Task& t = tasks_.at(id);
    if (const Attempt* a = t.Current()) {
      next = std::min(next, a->lease_expiry_ms);
      if (a->state == AttemptState::kRunning) {
        next = std::min(next, a->started_ms + t.timeout_ms + options_.timeout_grace_ms);
      }
    }
  }
  return next;
}

}  // namespace bzzz::tasks
