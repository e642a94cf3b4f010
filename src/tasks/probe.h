// Metrics of the tasks subsystem (SPEC §3.6, §4). Only these classes know
// their names.
//
// TaskProbe (the task manager):
//   no_tasks_total{state,executor}           tasks entering each state, counted as written;
//                                            every state of every executor known at start at 0
//   no_task_latency_seconds{executor}        acceptance to success
//   no_task_queue_depth                      ready or waiting to retry
//   no_loop_iteration_duration_seconds       one dispatch iteration
//   no_loop_efficiency_ratio                 attempts that succeeded over attempts finished
//   no_task_store_write_failures_total       failed group-commit writes (retried)
//   no_task_submissions_rejected_total       submissions answered 429
//   bzzz_tasks_takeovers_total               owners whose tasks this node took over (shared store)
//   bzzz_tasks_taken_over_total              unfinished tasks it took over
//   bzzz_tasks_fenced_total                  times this node found its own tasks taken over
// PoolProbe (the agent pool):
//   no_agent_pool_size, _active, _idle, _failed, no_agent_pool_healthy_ratio
//   no_agent_performance_score{agent}        one series per live agent
// Thread-safe; no-ops without a registry.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace bzzz::tasks {

struct PoolSummary;

class TaskProbe {
 public:
  TaskProbe(prometheus::Registry* registry, const std::vector<std::string>& executors);
  ~TaskProbe();

  void Transition(const std::string& state, const std::string& executor);
  void Latency(const std::string& executor, double seconds);
  void LoopIteration(double seconds);
  void QueueDepth(std::size_t depth);
  void Efficiency(double ratio);
  void WriteFailure();
  void Rejected();
  void TakeOver(std::size_t tasks);
  void Fenced();
  bool enabled() const { return state_ != nullptr; }

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class PoolProbe {
 public:
  explicit PoolProbe(prometheus::Registry* registry);
  ~PoolProbe();

  void Summary(const PoolSummary& summary);
  void AgentScore(const std::string& agent, double score);
  void AgentGone(const std::string& agent);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::tasks
