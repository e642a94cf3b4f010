#include "tasks/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <utility>

#include "tasks/pool.h"
#include "tasks/task.h"

namespace bzzz::tasks {

struct TaskProbe::State {
  prometheus::Gauge* queue_depth = nullptr;
  prometheus::Histogram* loop_duration = nullptr;
  prometheus::Gauge* efficiency = nullptr;
  prometheus::Family<prometheus::Counter>* transitions = nullptr;
  prometheus::Family<prometheus::Histogram>* latency = nullptr;
  prometheus::Counter* write_failures = nullptr;
  prometheus::Counter* rejected = nullptr;
  prometheus::Counter *takeovers = nullptr, *taken_over = nullptr, *fenced = nullptr;
  std::mutex mu;  // guards the two maps (Family::Add is thread-safe; the maps are ours)
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> counters;  // (state, executor)
  std::map<std::string, prometheus::Histogram*> histograms;                      // executor

  prometheus::Counter& Series(const std::string& state, const std::string& executor) {
    std::lock_guard lock(mu);
    auto key = std::make_pair(state, executor);
    auto it = counters.find(key);
    if (it == counters.end()) {
      it = counters.emplace(key, &transitions->Add({{"state", state}, {"executor", executor}})).first;
    }
    return *it->second;
  }
  prometheus::Histogram& Histogram(const std::string& executor) {
    std::lock_guard lock(mu);
    auto it = histograms.find(executor);
    if (it == histograms.end()) {
      it = histograms
               .emplace(executor, &latency->Add({{"executor", executor}},
                                                prometheus::Histogram::BucketBoundaries{
                                                    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005,
                                                    0.01,   0.025,   0.05,   0.1,     0.25,  0.5,    1,
                                                    2.5,    5,       10,     30,      60,    300}))
               .first;
    }
    return *it->second;
  }
};

TaskProbe::TaskProbe(prometheus::Registry* registry, const std::vector<std::string>& executors) {
  if (registry == nullptr) return;
  state_ = std::make_unique<State>();
  State& m = *state_;
  m.queue_depth = &prometheus::BuildGauge()
                       .Name("no_task_queue_depth")
                       .Help("Tasks waiting to run on this node (ready or waiting to retry)")
                       .Register(*registry)
                       .Add({});
  m.loop_duration =
      &prometheus::BuildHistogram()
           .Name("no_loop_iteration_duration_seconds")
           .Help("Duration of one dispatch iteration of the nO loop")
           .Register(*registry)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
                                                            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1});
  m.efficiency =
      &prometheus::BuildGauge()
           .Name("no_loop_efficiency_ratio")
           .Help(
               "Share of the attempts this node's agents finished that succeeded (work not wasted on "
               "failures)")
           .Register(*registry)
           .Add({});
  m.efficiency->Set(1);
  m.transitions = &prometheus::BuildCounter()
                       .Name("no_tasks_total")
                       .Help(
                           "Tasks entering each state (created, queued, running, succeeded, retried, dead, "
                           "cancelled), by executor")
                       .Register(*registry);
  m.latency = &prometheus::BuildHistogram()
                   .Name("no_task_latency_seconds")
                   .Help("Time from submission to success, by executor")
                   .Register(*registry);
  m.write_failures = &prometheus::BuildCounter()
                          .Name("no_task_store_write_failures_total")
                          .Help("Failed group-commit writes of tasks (retried)")
                          .Register(*registry)
                          .Add({});
  m.takeovers = &prometheus::BuildCounter()
                     .Name("bzzz_tasks_takeovers_total")
                     .Help("Owners whose lease expired and whose unfinished tasks this node took over")
                     .Register(*registry)
                     .Add({});
  m.taken_over = &prometheus::BuildCounter()
                      .Name("bzzz_tasks_taken_over_total")
                      .Help("Unfinished tasks this node took over from owners whose lease expired")
                      .Register(*registry)
                      .Add({});
  m.fenced = &prometheus::BuildCounter()
                  .Name("bzzz_tasks_fenced_total")
                  .Help("Times this node found that another node had taken over its tasks (it rebuilt from the store)")
                  .Register(*registry)
                  .Add({});
  m.rejected = &prometheus::BuildCounter()
                    .Name("no_task_submissions_rejected_total")
                    .Help("Submissions refused with 429 (backpressure)")
                    .Register(*registry)
                    .Add({});
  // Every series of the executors known at start exists at zero, so that
  // rate() and increase() see the first event (a first dead task).
  for (const auto& executor : executors) {
    m.Series("created", executor);
    for (TaskState state : {TaskState::kQueued, TaskState::kAssigned, TaskState::kRunning,
                            TaskState::kSucceeded, TaskState::kFailed, TaskState::kRetried, TaskState::kDead,
                            TaskState::kCancelled, TaskState::kEscalated}) {
      m.Series(std::string(TaskStateName(state)), executor);
    }
    m.Histogram(executor);
  }
}

TaskProbe::~TaskProbe() = default;

void TaskProbe::Transition(const std::string& state, const std::string& executor) {
  if (state_) state_->Series(state, executor).Increment();
}
void TaskProbe::Latency(const std::string& executor, double seconds) {
  if (state_) state_->Histogram(executor).Observe(seconds);
}
void TaskProbe::LoopIteration(double seconds) {
  if (state_) state_->loop_duration->Observe(seconds);
}
void TaskProbe::QueueDepth(std::size_t depth) {
  if (state_) state_->queue_depth->Set(static_cast<double>(depth));
}
void TaskProbe::Efficiency(double ratio) {
  if (state_) state_->efficiency->Set(ratio);
}
void TaskProbe::WriteFailure() {
  if (state_) state_->write_failures->Increment();
}
void TaskProbe::Rejected() {
  if (state_) state_->rejected->Increment();
}
void TaskProbe::TakeOver(std::size_t tasks) {
  if (!state_) return;
  state_->takeovers->Increment();
  state_->taken_over->Increment(static_cast<double>(tasks));
}
void TaskProbe::Fenced() {
  if (state_) state_->fenced->Increment();
}

struct PoolProbe::State {
  prometheus::Gauge *size = nullptr, *active = nullptr, *idle = nullptr, *failed = nullptr,
                    *healthy = nullptr;
  prometheus::Family<prometheus::Gauge>* scores = nullptr;
  std::mutex mu;
  std::map<std::string, prometheus::Gauge*> agents;  // guarded by mu
};

PoolProbe::PoolProbe(prometheus::Registry* registry) {
  if (registry == nullptr) return;
  state_ = std::make_unique<State>();
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry).Add({});
  };
  state_->size = gauge("no_agent_pool_size", "Agents in this node's pool that take work");
  state_->active = gauge("no_agent_pool_active", "Agents running a task");
  state_->idle = gauge("no_agent_pool_idle", "Agents waiting for work");
  state_->failed = gauge("no_agent_pool_failed", "Agents in error state (restarting after a backoff)");
  state_->healthy =
      gauge("no_agent_pool_healthy_ratio", "Share of agents not in error state (1 for an empty pool)");
  state_->scores = &prometheus::BuildGauge()
                        .Name("no_agent_performance_score")
                        .Help("Per-agent score: 0.7 success ratio + 0.3 speed (see docs/tasks.md)")
                        .Register(*registry);
}

PoolProbe::~PoolProbe() = default;

void PoolProbe::Summary(const PoolSummary& s) {
  if (!state_) return;
  state_->size->Set(s.size);
  state_->active->Set(s.active);
  state_->idle->Set(s.idle);
  state_->failed->Set(s.failed);
  state_->healthy->Set(s.healthy_ratio);
}

void PoolProbe::AgentScore(const std::string& agent, double score) {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  auto it = state_->agents.find(agent);
  if (it == state_->agents.end())
    it = state_->agents.emplace(agent, &state_->scores->Add({{"agent", agent}})).first;
  it->second->Set(score);
}

void PoolProbe::AgentGone(const std::string& agent) {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  auto it = state_->agents.find(agent);
  if (it == state_->agents.end()) return;
  state_->scores->Remove(it->second);
  state_->agents.erase(it);
}

}  // namespace bzzz::tasks
