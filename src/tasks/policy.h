// The decisions of the nO loop as pure functions: which agent gets a task
// (assignment strategies), how long a failed task waits (exponential backoff
// with jitter), and how many agents a pool should have (autoscaling). Pure
// so that the simulation and unit tests can pin them down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/backoff.h"
#include "config/config.h"

namespace bzzz::tasks {

enum class Strategy { kRoundRobin, kLeastLoaded, kPerformance, kCapabilityMatch };

std::string_view StrategyName(Strategy strategy);
// "round-robin", "least-loaded", "performance", "capability-match".
std::optional<Strategy> ParseStrategy(std::string_view name);

// An agent able to take work now, as dispatch sees it.
struct WorkerSlot {
  std::string agent_id;
  std::string node_id;
  std::string role;
  std::vector<std::string> capabilities;
  std::vector<std::string> executors;  // kinds it can run; empty = every kind
  int free = 1;              // tasks it can still take
  int load = 0;              // tasks it runs now
  double performance = 0.5;  // 0..1 (success ratio weighted by speed), see AgentStats
  std::uint64_t completed = 0;
};

// What a task asks of its agent.
struct Requirements {
  std::vector<std::string> capabilities;  // every one
  std::string role;                       // "" = any
  std::string executor;                   // "" = any
};

bool Eligible(const WorkerSlot& slot, const Requirements& need);

// The index in `slots` of the agent that should take a task with `need`, or
// -1 when none is eligible (free > 0, capabilities, role, executor). `cursor` is the
// round-robin position, advanced past the pick. Ties go to the first slot at
// or after the cursor, so equal agents share work.
int PickWorker(Strategy strategy, const std::vector<WorkerSlot>& slots, const Requirements& need,
               std::size_t& cursor);

// Delay before attempt `failed + 1` after `failed` failures: base/backoff.h
// BackoffMs (base·2^(failed-1) capped at `max`, jittered into [d/2, d]).
inline std::int64_t RetryDelayMs(int failed, std::int64_t base_ms, std::int64_t max_ms, double u) {
  return BackoffMs(failed, base_ms, max_ms, u);
}

// Autoscaling of one pool (SPEC §3.6, nO keys minAgents, maxAgents,
// targetCpu, targetMemory, scaleUpCooldown, scaleDownCooldown, step).
struct ScaleInputs {
  int size = 0;               // agents that take work (not draining/stopped)
  int busy = 0;               // of those, running a task
  std::size_t queue_depth = 0;  // tasks ready to run that wait for an agent
  double cpu_percent = 0;     // of the machine, 0..100
  double memory_percent = 0;  // of the machine or the limit, 0..100
  std::int64_t now_ms = 0;
  std::int64_t last_scale_up_ms = -1;    // -1: never
  std::int64_t last_scale_down_ms = -1;
};
struct ScaleDecision {
  int delta = 0;       // agents to add (> 0) or remove (< 0)
  std::string reason;  // why, for the log and /api/v1/agents
};
// Rules, in order: outside [min, max] → back inside at once; disabled → 0;
// memory over target → shed `step` (down cooldown); work waiting, every
// agent busy, CPU and memory under target → add `step` (up cooldown); no
// work waiting and at least `step` agents idle → remove `step` (down
// cooldown). Never below min or above max.
ScaleDecision DecideScale(const ScaleInputs& in, const config::AutoscalingConfig& config);

}  // namespace bzzz::tasks
