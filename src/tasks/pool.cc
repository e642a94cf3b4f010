#include "tasks/pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/machine.h"
#include "base/threads.h"
#include "executors/executor.h"
#include "security/redact.h"
#include "tasks/policy.h"
#include "tasks/probe.h"

namespace bzzz::tasks {

namespace {

constexpr SubsystemLog kLog{"tasks"};

using SteadyClock = std::chrono::steady_clock;

}  // namespace

std::string_view AgentStateName(AgentState state) {
  switch (state) {
    case AgentState::kIdle: return "idle";
    case AgentState::kBusy: return "busy";
    case AgentState::kError: return "error";
    case AgentState::kDraining: return "draining";
    case AgentState::kStopped: return "stopped";
  }
  return "unknown";
}

double PerformanceScore(std::uint64_t succeeded, std::uint64_t completed, double total_seconds) {
  if (completed == 0) return 0.5;
  const double success = (static_cast<double>(succeeded) + 1) / (static_cast<double>(completed) + 2);
  const double speed = 1.0 / (1.0 + total_seconds / static_cast<double>(completed));
  return 0.7 * success + 0.3 * speed;
}

class AgentPool::Impl {
 public:
  struct Agent {
    AgentInfo info;           // guarded by Impl::mu
    std::optional<Assignment> current;  // guarded by Impl::mu
    std::atomic<bool> stop{false};
    std::atomic<bool> cancel{false};
    bool handing_back = false;  // guarded by Impl::mu: cancelled by drain, not by the user
    std::thread thread;
    std::mutex join_mu;  // the supervisor (retired agents) and Drain may both join it
    void Join() {
      std::lock_guard lock(join_mu);
      if (thread.joinable()) thread.join();
    }
  };

  PoolOptions options;
  mutable std::mutex mu;
  std::condition_variable cv;  // supervisor wake-ups and error backoffs
  std::vector<std::shared_ptr<Agent>> agents;
  std::vector<std::shared_ptr<Agent>> retiring;  // stopping; joined by the supervisor
  int next_number = 1;
  bool draining = false;
  bool stopped = false;
  std::thread supervisor;
  std::int64_t last_up_ms = -1, last_down_ms = -1;
  std::string last_decision;
  std::int64_t last_decision_ms = 0;
  CpuSampler cpu;  // base/machine.h: the cgroup's quota when there is one

  std::unique_ptr<PoolProbe> probe;

  // Requires mu.
  void AddAgent() {
    auto a = std::make_shared<Agent>();
    a->info.id = options.node_id.substr(0, 8) + "-a" + std::to_string(next_number++);
    a->info.role = options.role;
    a->info.capabilities = options.capabilities;
    a->info.model = options.model;
    a->info.state = AgentState::kIdle;
    a->info.last_heartbeat_ms = UnixMillisNow();
    probe->AgentScore(a->info.id, 0.5);
    a->thread = NamedThread(("agent-" + std::to_string(next_number - 1)).c_str(), [this, a] { Run(*a); });
    agents.push_back(std::move(a));
  }

  // Stops `n` agents, idle ones first. Requires mu.
  void RemoveAgents(int n) {
    for (int k = 0; k < n && !agents.empty(); ++k) {
      auto it = std::find_if(agents.begin(), agents.end(), [](const auto& a) { return a->info.state == AgentState::kIdle; });
      if (it == agents.end()) it = agents.end() - 1;
      (*it)->stop = true;
      options.manager->Release((*it)->info.id);
      retiring.push_back(*it);
      agents.erase(it);
    }
    cv.notify_all();
  }

  void Run(Agent& a) {
    int errors = 0;
    while (!a.stop.load()) {
      WorkerSlot slot;
      {
        std::lock_guard lock(mu);
        a.info.state = AgentState::kIdle;
        a.info.current_task.clear();
        slot.agent_id = a.info.id;
        slot.node_id = options.node_id;
        slot.role = a.info.role;
        slot.capabilities = a.info.capabilities;
        slot.performance = a.info.performance;
        slot.completed = a.info.completed;
      }
      auto got = options.manager->Await(slot, std::chrono::milliseconds(250));
      if (!got) continue;
      Assignment job = std::move(*got);
      {
        std::lock_guard lock(mu);
        a.current = job;
        a.info.state = AgentState::kBusy;
        a.info.current_task = job.task_id;
        a.cancel = false;
        a.handing_back = false;
      }
      if (!options.manager->Begin(job).ok()) continue;  // the lease is already gone
      const auto t0 = SteadyClock::now();
      executors::ExecResult result;
      bool crashed = false;
      executors::Executor* exec = options.executors ? options.executors->Find(job.executor) : nullptr;
      if (!exec) {
        result = executors::ExecResult::Failure("no executor \"" + job.executor + "\" on this node");
      } else {
        executors::ExecContext ctx;
        ctx.task_id = job.task_id;
        ctx.attempt = job.attempt;
        ctx.input = job.input;
        ctx.deadline = t0 + std::chrono::milliseconds(job.timeout_ms);
        ctx.cancel = &a.cancel;
        TaskManager* manager = options.manager;
        // SHHH: what an executor says leaves the agent redacted.
        ctx.progress = [manager, &job](std::string_view line) {
          manager->Progress(job, security::Redact(line, security::RedactionSite::kTaskOutput));
        };
        if (options.ask_help && job.owner.empty()) {
          ctx.ask_help = [this, &job](const executors::HelpRequest& r) { return options.ask_help(job, r); };
        }
        try {
          result = exec->Execute(ctx);
        } catch (const std::exception& e) {
          crashed = true;
          result = executors::ExecResult::Failure(std::string("executor crashed: ") + e.what());
        }
      }
      const double seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
      bool hand_back;
      {
        std::lock_guard lock(mu);
        hand_back = a.handing_back && result.outcome == executors::ExecResult::Outcome::kCancelled;
        a.current.reset();
      }
      Status reported;
      if (hand_back) {
        reported = options.manager->HandBack(job);
      } else {
        AttemptOutcome outcome;
        switch (result.outcome) {
          case executors::ExecResult::Outcome::kSucceeded: outcome.state = AttemptState::kSucceeded; break;
          case executors::ExecResult::Outcome::kFailed: outcome.state = AttemptState::kFailed; break;
          case executors::ExecResult::Outcome::kTimedOut: outcome.state = AttemptState::kTimedOut; break;
          case executors::ExecResult::Outcome::kCancelled: outcome.state = AttemptState::kCancelled; break;
        }
        outcome.result = security::RedactJson(result.result, security::RedactionSite::kTaskOutput);
        outcome.error = security::Redact(result.error, security::RedactionSite::kTaskOutput);
        reported = options.manager->Complete(job, outcome);
      }
      if (!reported.ok() && reported.code() != StatusCode::kFailedPrecondition) {
        kLog.warn("agent {}: reporting {} attempt {}: {}", a.info.id, job.task_id, job.attempt, reported.ToString());
      }
      std::unique_lock lock(mu);
      a.info.completed += hand_back ? 0 : 1;
      if (!hand_back) {
        (result.outcome == executors::ExecResult::Outcome::kSucceeded ? a.info.succeeded : a.info.failed) += 1;
        a.info.total_seconds += seconds;
      }
      a.info.performance = PerformanceScore(a.info.succeeded, a.info.completed, a.info.total_seconds);
      probe->AgentScore(a.info.id, a.info.performance);
      if (crashed) {
        // Restart with backoff: the agent sits in `error` for about 1 s, 2 s,
        // ... 30 s (jittered into the upper half of each step).
        ++errors;
        ++a.info.restarts;
        a.info.state = AgentState::kError;
        a.info.last_error = result.error;
        const auto backoff = std::chrono::milliseconds(BackoffMs(errors, 1000, 30000, 0.5 + UniformJitter() / 2));
        kLog.warn("agent {}: {}; restarting in {} ms", a.info.id, result.error, backoff.count());
        cv.wait_for(lock, backoff, [&] { return a.stop.load(); });
      } else {
        errors = 0;
      }
    }
    std::lock_guard lock(mu);
    a.info.state = AgentState::kStopped;
  }

  PoolSummary SummaryLocked() const {
    PoolSummary s;
    for (const auto& a : agents) {
      ++s.size;
      switch (a->info.state) {
        case AgentState::kBusy: ++s.active; break;
        case AgentState::kIdle: ++s.idle; break;
        case AgentState::kError: ++s.failed; break;
        case AgentState::kDraining: ++s.draining; break;
        case AgentState::kStopped: break;
      }
    }
    s.healthy_ratio = s.size ? static_cast<double>(s.size - s.failed) / s.size : 1.0;
    s.last_decision = last_decision;
    s.last_decision_ms = last_decision_ms;
    return s;
  }

  void Publish(const PoolSummary& s) { probe->Summary(s); }

  void JoinRetired(std::unique_lock<std::mutex>& lock) {
    std::vector<std::shared_ptr<Agent>> done;
    for (auto it = retiring.begin(); it != retiring.end();) {
      if ((*it)->info.state == AgentState::kStopped) {
        done.push_back(*it);
        it = retiring.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    for (auto& a : done) {
      a->Join();
      probe->AgentGone(a->info.id);
    }
    lock.lock();
  }

  void Supervise() {
    std::unique_lock lock(mu);
    auto next_scale = SteadyClock::now() + options.autoscale_interval;
    while (!stopped) {
      cv.wait_for(lock, options.heartbeat);
      if (stopped) break;
      const std::int64_t now = UnixMillisNow();
      std::vector<Assignment> renew;
      for (auto& a : agents) {
        a->info.last_heartbeat_ms = now;
        if (a->current) renew.push_back(*a->current);
      }
      JoinRetired(lock);
      if (!draining && SteadyClock::now() >= next_scale) {
        next_scale = SteadyClock::now() + options.autoscale_interval;
        PoolSummary s = SummaryLocked();
        ScaleInputs in;
        in.size = s.size;
        in.busy = s.active;
        in.queue_depth = options.manager->QueueDepth();
        lock.unlock();
        in.cpu_percent = options.cpu_percent ? options.cpu_percent() : 100.0 * cpu.Sample();
        in.memory_percent = options.memory_percent ? options.memory_percent() : 100.0 * MemoryUsedRatio();
        lock.lock();
        in.now_ms = now;
        in.last_scale_up_ms = last_up_ms;
        in.last_scale_down_ms = last_down_ms;
        const ScaleDecision d = DecideScale(in, options.autoscaling);
        if (d.delta != 0 && !draining && !stopped) {
          if (d.delta > 0) {
            for (int i = 0; i < d.delta; ++i) AddAgent();
            last_up_ms = now;
          } else {
            RemoveAgents(-d.delta);
            last_down_ms = now;
          }
          last_decision = (d.delta > 0 ? "+" : "") + std::to_string(d.delta) + ": " + d.reason;
          last_decision_ms = now;
          kLog.info("agents: scaled by {} to {} ({})", d.delta, agents.size(), d.reason);
        }
      }
      Publish(SummaryLocked());
      lock.unlock();
      for (const auto& job : renew) (void)options.manager->Renew(job.task_id, job.attempt, job.agent_id);
      lock.lock();
    }
  }
};

AgentPool::AgentPool(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentPool::~AgentPool() { Drain(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<AgentPool>> AgentPool::Start(PoolOptions options, prometheus::Registry* registry) {
  if (!options.manager) return InvalidArgument("agents: no task manager");
  auto impl = std::make_shared<Impl>();
  impl->options = std::move(options);
  impl->probe = std::make_unique<PoolProbe>(registry);
  {
    std::lock_guard lock(impl->mu);
    // Starting counts as a scaling event: the cooldowns run from here.
    impl->last_up_ms = impl->last_down_ms = UnixMillisNow();
    for (int i = 0; i < impl->options.initial_agents; ++i) impl->AddAgent();
    impl->Publish(impl->SummaryLocked());
  }
  Impl* raw = impl.get();
  impl->supervisor = NamedThread("agent-pool", [raw] { raw->Supervise(); });
  auto pool = std::unique_ptr<AgentPool>(new AgentPool(impl));
  std::weak_ptr<Impl> weak = impl;
  impl->options.manager->OnCancel([weak](const std::string& agent_id, const std::string& task_id) {
    auto p = weak.lock();
    if (!p) return;
    std::lock_guard lock(p->mu);
    for (auto& a : p->agents) {
      if (a->info.id == agent_id && a->current && a->current->task_id == task_id) a->cancel = true;
    }
  });
  return pool;
}

Result<PoolSummary> AgentPool::Scale(int target, const std::string& reason) {
  Impl& p = *impl_;
  const auto& as = p.options.autoscaling;
  if (target < as.min_agents || target > as.max_agents) {
    return InvalidArgument("agents: must be " + std::to_string(as.min_agents) + ".." + std::to_string(as.max_agents) +
                           " (agents.autoscaling.min_agents..max_agents)");
  }
  std::lock_guard lock(p.mu);
  if (p.draining) return Conflict("the agent pool is draining");
  const int size = static_cast<int>(p.agents.size());
  if (target > size) {
    for (int i = size; i < target; ++i) p.AddAgent();
    p.last_up_ms = UnixMillisNow();
  } else if (target < size) {
    p.RemoveAgents(size - target);
    p.last_down_ms = UnixMillisNow();
  }
  if (target != size) {
    p.last_decision = "set to " + std::to_string(target) + ": " + reason;
    p.last_decision_ms = UnixMillisNow();
    kLog.info("agents: scaled from {} to {} ({})", size, target, reason);
  }
  PoolSummary s = p.SummaryLocked();
  p.Publish(s);
  return s;
}

void AgentPool::Drain(std::chrono::milliseconds grace) {
  Impl& p = *impl_;
  std::vector<std::shared_ptr<Impl::Agent>> all;
  {
    std::lock_guard lock(p.mu);
    if (p.stopped) return;
    p.draining = true;
    for (auto& a : p.agents) {
      a->stop = true;
      if (a->info.state == AgentState::kIdle) a->info.state = AgentState::kDraining;
      p.options.manager->Release(a->info.id);
    }
    all = p.agents;
    all.insert(all.end(), p.retiring.begin(), p.retiring.end());
  }
  p.cv.notify_all();
  const auto deadline = SteadyClock::now() + grace;
  for (;;) {
    bool running = false;
    {
      std::lock_guard lock(p.mu);
      for (auto& a : all) running |= a->current.has_value();
      if (!running || SteadyClock::now() >= deadline) {
        // Cancel what still runs; the agents hand it back.
        for (auto& a : all) {
          if (a->current) {
            a->handing_back = true;
            a->cancel = true;
          }
        }
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& a : all) a->Join();
  {
    std::lock_guard lock(p.mu);
    p.stopped = true;
    p.agents.clear();
    p.retiring.clear();
    p.Publish(p.SummaryLocked());
  }
  p.cv.notify_all();
  if (p.supervisor.joinable()) p.supervisor.join();
}

std::vector<AgentInfo> AgentPool::Agents() const {
  std::lock_guard lock(impl_->mu);
  std::vector<AgentInfo> out;
  for (const auto& a : impl_->agents) out.push_back(a->info);
  return out;
}

PoolSummary AgentPool::Summary() const {
  std::lock_guard lock(impl_->mu);
  return impl_->SummaryLocked();
}

int AgentPool::FreeAgents() const {
  std::lock_guard lock(impl_->mu);
  int n = 0;
  for (const auto& a : impl_->agents) n += a->info.state == AgentState::kIdle;
  return n;
}

}  // namespace bzzz::tasks
