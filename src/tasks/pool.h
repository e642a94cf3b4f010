// AgentPool: the agents of one node (SPEC §3.6). Each agent is a thread
// that offers itself to the TaskManager, runs what it is given with its
// executor and reports the outcome.
//
// - States: idle (waiting for work), busy, error (its executor crashed; it
//   restarts after a backoff of 1 s doubling to 30 s), draining, stopped.
// - Heartbeats: the pool's supervisor stamps every agent each
//   agents.heartbeat_interval and renews the leases of busy ones.
// - Autoscaling: every autoscale interval the supervisor applies
//   DecideScale (policy.h) to the pool's size, busy agents, the queue depth
//   and the machine's CPU and memory use.
// - Drain (shutdown): agents stop taking work; running tasks get a grace
//   period, then are cancelled and handed back (queued again, durable, not
//   counted as failures) so that nothing is lost.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "executors/executor.h"
#include "tasks/manager.h"

namespace prometheus {
class Registry;
}
namespace bzzz::executors {
class ExecutorRegistry;
}

namespace bzzz::tasks {

enum class AgentState { kIdle, kBusy, kError, kDraining, kStopped };
std::string_view AgentStateName(AgentState state);

struct AgentInfo {
  std::string id;
  std::string role;
  std::vector<std::string> capabilities;
  std::string model;
  AgentState state = AgentState::kIdle;
  std::int64_t last_heartbeat_ms = 0;
  std::string current_task;
  std::uint64_t completed = 0;  // attempts finished
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t restarts = 0;
  double total_seconds = 0;
  double performance = 0.5;     // PerformanceScore
  std::string last_error;
};

// 0.7 × success ratio (Laplace-smoothed) + 0.3 × speed, speed = 1/(1 + mean
// seconds per attempt). 0.5 for an agent without history.
double PerformanceScore(std::uint64_t succeeded, std::uint64_t completed, double total_seconds);

struct PoolSummary {
  int size = 0;      // agents that take work
  int active = 0;    // busy
  int idle = 0;
  int failed = 0;    // in error state
  int draining = 0;
  double healthy_ratio = 1;  // (size - failed) / size, 1 for an empty pool
  std::string last_decision;
  std::int64_t last_decision_ms = 0;
};

struct PoolOptions {
  std::string node_id;
  std::string role;
  std::vector<std::string> capabilities;
  std::string model;
  int initial_agents = 2;
  config::AutoscalingConfig autoscaling;
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds autoscale_interval{1000};
  const executors::ExecutorRegistry* executors = nullptr;
  TaskManager* manager = nullptr;
  // Machine load, 0..100; default: /proc/stat and /proc/meminfo.
  std::function<double()> cpu_percent;
  std::function<double()> memory_percent;
  // Help for a stuck task of this node (HMMM): given to the executor as
  // ExecContext::ask_help. Work lent by another node gets none (its room
  // belongs to its owner). Null: no help.
  std::function<Result<std::vector<executors::HelpAnswer>>(const Assignment&, const executors::HelpRequest&)> ask_help;
};

class AgentPool {
 public:
  static Result<std::unique_ptr<AgentPool>> Start(PoolOptions options, prometheus::Registry* metrics);
  ~AgentPool();  // Drain(0)

  // Sets the number of agents (manual scaling). InvalidArgument outside
  // [min_agents, max_agents]; Conflict while draining.
  Result<PoolSummary> Scale(int target, const std::string& reason);

  // Stops taking work, waits up to `grace` for running tasks, then cancels
  // and hands back the rest, and stops every agent. Idempotent.
  void Drain(std::chrono::milliseconds grace);

  std::vector<AgentInfo> Agents() const;
  PoolSummary Summary() const;
  // Free slots for the node's presence.
  int FreeAgents() const;

  class Impl;

 private:
  explicit AgentPool(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::tasks
