#include "ops/health.h"

#include "base/threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "ops/probe.h"

namespace bzzz::ops {

using SteadyClock = std::chrono::steady_clock;

std::string_view HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kHealthy: return "healthy";
    case HealthStatus::kDegraded: return "degraded";
    case HealthStatus::kUnhealthy: return "unhealthy";
    case HealthStatus::kUnknown: return "unknown";
  }
  return "unknown";
}

double HealthScore(HealthStatus status) {
  switch (status) {
    case HealthStatus::kHealthy: return 1.0;
    case HealthStatus::kDegraded: return 0.5;
    default: return 0.0;
  }
}

CheckOutcome CheckOutcome::Healthy(std::string message, std::string details_json) {
  return {HealthStatus::kHealthy, std::move(message), std::move(details_json)};
}
CheckOutcome CheckOutcome::Degraded(std::string message, std::string details_json) {
  return {HealthStatus::kDegraded, std::move(message), std::move(details_json)};
}
CheckOutcome CheckOutcome::Unhealthy(std::string message, std::string details_json) {
  return {HealthStatus::kUnhealthy, std::move(message), std::move(details_json)};
}

HealthStatus Rollup(const std::vector<CheckState>& checks) {
  bool degraded = false;
  for (const auto& c : checks) {
    // A check that has not produced a result yet counts as unhealthy: nothing
    // vouches for the component.
    const bool bad = c.status == HealthStatus::kUnhealthy || c.status == HealthStatus::kUnknown;
    if (bad && c.critical) return HealthStatus::kUnhealthy;
    if (bad || c.status == HealthStatus::kDegraded) degraded = true;
  }
  return degraded ? HealthStatus::kDegraded : HealthStatus::kHealthy;
}

// One execution of a check. Owned by its entry while running and by the
// thread that runs it.
struct Run {
  SteadyClock::time_point started;
  SteadyClock::time_point deadline;
  bool done = false;
  bool timed_out = false;
};

struct Entry {
  HealthCheckSpec spec;
  CheckState state;
  SteadyClock::time_point next_due;
  std::shared_ptr<Run> current;  // set while a run is in progress (or hung)
};

class HealthRegistry::Impl : public std::enable_shared_from_this<HealthRegistry::Impl> {
 public:
  explicit Impl(prometheus::Registry* metrics) : probe_(metrics) {}

  Status Register(HealthCheckSpec spec) {
    if (spec.name.empty()) return InvalidArgument("health check needs a name");
    if (!spec.fn) return InvalidArgument("health check '" + spec.name + "' needs a function");
    if (spec.interval.count() <= 0 || spec.timeout.count() <= 0) {
      return InvalidArgument("health check '" + spec.name + "' needs a positive interval and timeout");
    }
    std::lock_guard lock(mu_);
    if (entries_.count(spec.name)) return {StatusCode::kAlreadyExists, "health check '" + spec.name + "' exists"};
    Entry entry;
    entry.state.name = spec.name;
    entry.state.critical = spec.critical;
    entry.state.interval = spec.interval;
    entry.state.timeout = spec.timeout;
    entry.next_due = SteadyClock::now();  // run at the next scheduler pass
    const std::string name = spec.name;
    entry.spec = std::move(spec);
    entries_.emplace(name, std::move(entry));
    probe_.CheckRegistered(name);
    PublishRollupLocked();
    cv_.notify_all();
    return Status::Ok();
  }

  // Starts a run of `entry` unless one is in progress. Caller holds mu_.
  std::shared_ptr<Run> StartLocked(Entry& entry) {
    if (entry.current) return entry.current;
    auto run = std::make_shared<Run>();
    run->started = SteadyClock::now();
    run->deadline = run->started + entry.spec.timeout;
    entry.current = run;
    ++active_runs_;
    threads_.Spawn([self = shared_from_this(), name = entry.spec.name, fn = entry.spec.fn, run] {
      CheckOutcome outcome;
      bool errored = false;
      try {
        outcome = fn();
      } catch (const std::exception& e) {
        outcome = CheckOutcome::Unhealthy(std::string("check failed: ") + e.what());
        errored = true;
      } catch (...) {
        outcome = CheckOutcome::Unhealthy("check failed with an unknown exception");
        errored = true;
      }
      self->Finished(name, run, std::move(outcome), errored);
    });
    return run;
  }

  void Finished(const std::string& name, const std::shared_ptr<Run>& run, CheckOutcome outcome, bool errored) {
    std::lock_guard lock(mu_);
    run->done = true;
    auto it = entries_.find(name);
    if (it != entries_.end()) {
      Entry& entry = it->second;
      if (!run->timed_out) {
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - run->started);
        RecordLocked(entry, std::move(outcome), took, errored);
      }
      if (entry.current == run) entry.current.reset();
    }
    --active_runs_;
    cv_.notify_all();
  }

  // Marks a run that passed its deadline. Caller holds mu_.
  void ExpireLocked(Entry& entry, const std::shared_ptr<Run>& run) {
    if (run->done || run->timed_out) return;
    run->timed_out = true;
    RecordLocked(entry,
                 CheckOutcome::Unhealthy("timed out after " + std::to_string(entry.spec.timeout.count()) + " ms"),
                 entry.spec.timeout, true);
  }

  void RecordLocked(Entry& entry, CheckOutcome outcome, std::chrono::milliseconds took, bool errored) {
    CheckState& s = entry.state;
    s.status = outcome.status;
    s.message = std::move(outcome.message);
    s.details_json = outcome.details_json.empty() ? "{}" : std::move(outcome.details_json);
    s.duration = took;
    s.last_run = std::chrono::system_clock::now();
    ++s.runs;
    const bool passed = s.status == HealthStatus::kHealthy;
    if (!passed) ++s.failures;
    probe_.CheckRan(s.name, passed, HealthScore(s.status), errored);
    PublishRollupLocked();
  }

  void PublishRollupLocked() {
    std::vector<CheckState> states;
    states.reserve(entries_.size());
    for (const auto& [_, e] : entries_) states.push_back(e.state);
    const HealthStatus overall = Rollup(states);
    overall_.store(overall, std::memory_order_relaxed);
    probe_.SystemScore(HealthScore(overall));
  }

  HealthStatus Overall() const { return overall_.load(std::memory_order_relaxed); }

  // Waits for the runs, expiring the ones past their deadline. Caller holds lock.
  void AwaitLocked(std::unique_lock<std::mutex>& lock, const std::vector<std::pair<std::string, std::shared_ptr<Run>>>& runs) {
    for (const auto& [name, run] : runs) {
      cv_.wait_until(lock, run->deadline, [r = run.get()] { return r->done || r->timed_out; });
      if (!run->done && !run->timed_out) {
        auto it = entries_.find(name);
        if (it != entries_.end()) ExpireLocked(it->second, run);
      }
    }
  }

  Result<CheckState> RunNow(std::string_view name) {
    std::unique_lock lock(mu_);
    auto it = entries_.find(std::string(name));
    if (it == entries_.end()) return NotFound("no health check named '" + std::string(name) + "'");
    auto run = StartLocked(it->second);
    AwaitLocked(lock, {{it->first, run}});
    return it->second.state;
  }

  std::vector<CheckState> RunAll() {
    std::unique_lock lock(mu_);
    std::vector<std::pair<std::string, std::shared_ptr<Run>>> runs;
    for (auto& [name, entry] : entries_) runs.emplace_back(name, StartLocked(entry));
    AwaitLocked(lock, runs);
    return SnapshotLocked();
  }

  std::vector<CheckState> SnapshotLocked() const {
    std::vector<CheckState> out;
    out.reserve(entries_.size());
    for (const auto& [_, e] : entries_) out.push_back(e.state);
    return out;  // std::map keeps names sorted
  }

  std::vector<CheckState> Snapshot() const {
    std::lock_guard lock(mu_);
    return SnapshotLocked();
  }

  void Start() {
    {
      std::lock_guard lock(mu_);
      if (started_) return;
      started_ = true;
    }
    RunAll();
    {
      std::lock_guard lock(mu_);
      const auto now = SteadyClock::now();
      for (auto& [_, e] : entries_) e.next_due = now + e.spec.interval;
    }
    scheduler_ = NamedThread("health-checks", [this] { Schedule(); });
  }

  void Schedule() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      const auto now = SteadyClock::now();
      auto wake = now + std::chrono::seconds(60);
      for (auto& [_, e] : entries_) {
        if (e.current && !e.current->done && !e.current->timed_out) {
          if (now >= e.current->deadline) {
            ExpireLocked(e, e.current);
          } else {
            wake = std::min(wake, e.current->deadline);
          }
        }
        if (now >= e.next_due) {
          e.next_due = now + e.spec.interval;
          StartLocked(e);
        }
        wake = std::min(wake, e.next_due);
      }
      cv_.wait_until(lock, wake);
    }
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (scheduler_.joinable()) scheduler_.join();
    // Give running checks a moment; hung ones keep this object alive (they
    // hold a reference to it) and are joined when they return.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(2), [&] { return active_runs_ == 0; });
  }

  bool Has(std::string_view name) const {
    std::lock_guard lock(mu_);
    return entries_.count(std::string(name)) > 0;
  }

 private:
  HealthProbe probe_;
  std::atomic<HealthStatus> overall_{HealthStatus::kHealthy};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
  int active_runs_ = 0;
  bool started_ = false;
  bool stopping_ = false;
  std::thread scheduler_;
  OwnedThreads threads_;  // check runs; last, so joined before the rest goes
};

HealthRegistry::HealthRegistry(prometheus::Registry* metrics) : impl_(std::make_shared<Impl>(metrics)) {}
HealthRegistry::~HealthRegistry() { impl_->Stop(); }
Status HealthRegistry::Register(HealthCheckSpec spec) { return impl_->Register(std::move(spec)); }
void HealthRegistry::Start() { impl_->Start(); }
void HealthRegistry::Stop() { impl_->Stop(); }
std::vector<CheckState> HealthRegistry::Snapshot() const { return impl_->Snapshot(); }
Result<CheckState> HealthRegistry::RunNow(std::string_view name) { return impl_->RunNow(name); }
std::vector<CheckState> HealthRegistry::RunAllNow() { return impl_->RunAll(); }
bool HealthRegistry::Has(std::string_view name) const { return impl_->Has(name); }
HealthStatus HealthRegistry::Overall() const { return impl_->Overall(); }

std::chrono::milliseconds CheckWait(std::chrono::milliseconds timeout) {
  return timeout - std::min(timeout / 10, std::chrono::milliseconds(100));
}

}  // namespace bzzz::ops
