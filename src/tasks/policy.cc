#include "tasks/policy.h"

#include <algorithm>
#include <cmath>

namespace bzzz::tasks {

std::string_view StrategyName(Strategy strategy) {
  switch (strategy) {
    case Strategy::kRoundRobin: return "round-robin";
    case Strategy::kLeastLoaded: return "least-loaded";
    case Strategy::kPerformance: return "performance";
    case Strategy::kCapabilityMatch: return "capability-match";
  }
  return "least-loaded";
}

std::optional<Strategy> ParseStrategy(std::string_view name) {
  for (Strategy s : {Strategy::kRoundRobin, Strategy::kLeastLoaded, Strategy::kPerformance,
                     Strategy::kCapabilityMatch}) {
    if (StrategyName(s) == name) return s;
  }
  return std::nullopt;
}

bool Eligible(const WorkerSlot& slot, const Requirements& need) {
  if (slot.free <= 0) return false;
  if (!need.role.empty() && need.role != slot.role) return false;
  if (!need.executor.empty() && !slot.executors.empty() &&
      std::find(slot.executors.begin(), slot.executors.end(), need.executor) == slot.executors.end()) {
    return false;
  }
  for (const auto& cap : need.capabilities) {
    if (std::find(slot.capabilities.begin(), slot.capabilities.end(), cap) == slot.capabilities.end()) return false;
  }
  return true;
}

int PickWorker(Strategy strategy, const std::vector<WorkerSlot>& slots, const Requirements& need,
               std::size_t& cursor) {
  const std::size_t n = slots.size();
  if (n == 0) return -1;
  int best = -1;
  // Visit from the cursor on, so that among equals the first after it wins.
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (cursor + k) % n;
    const WorkerSlot& s = slots[i];
    if (!Eligible(s, need)) continue;
    if (best < 0) {
      best = static_cast<int>(i);
      if (strategy == Strategy::kRoundRobin) break;
      continue;
    }
    const WorkerSlot& b = slots[static_cast<std::size_t>(best)];
    bool better = false;
    switch (strategy) {
      case Strategy::kRoundRobin: break;
      case Strategy::kLeastLoaded: better = s.load < b.load; break;
      case Strategy::kPerformance:
        better = s.performance > b.performance + 1e-9 ||
                 (std::abs(s.performance - b.performance) <= 1e-9 && s.load < b.load);
        break;
      case Strategy::kCapabilityMatch: {
        // The most specialised agent that fits keeps the generalists free.
        const std::size_t extra_s = s.capabilities.size(), extra_b = b.capabilities.size();
        better = extra_s < extra_b || (extra_s == extra_b && s.load < b.load);
        break;
      }
    }
    if (better) best = static_cast<int>(i);
  }
  if (best >= 0) cursor = static_cast<std::size_t>(best) + 1;
  return best;
}

ScaleDecision DecideScale(const ScaleInputs& in, const config::AutoscalingConfig& c) {
  if (in.size < c.min_agents) return {c.min_agents - in.size, "below minAgents"};
  if (in.size > c.max_agents) return {c.max_agents - in.size, "above maxAgents"};
  if (!c.enabled) return {};
  const auto cooled = [&](std::int64_t last, std::chrono::milliseconds cooldown) {
    return last < 0 || in.now_ms - last >= cooldown.count();
  };
  const int idle = in.size - in.busy;
  if (in.memory_percent > c.target_memory && in.size > c.min_agents && cooled(in.last_scale_down_ms, c.scale_down_cooldown)) {
    return {-std::min(c.step, in.size - c.min_agents), "memory above targetMemory"};
  }
  if (in.queue_depth > 0 && idle <= 0 && in.size < c.max_agents && in.cpu_percent < c.target_cpu &&
      in.memory_percent < c.target_memory && cooled(in.last_scale_up_ms, c.scale_up_cooldown)) {
    return {std::min(c.step, c.max_agents - in.size), "work waiting and every agent busy"};
  }
  if (in.queue_depth == 0 && idle >= c.step && in.size > c.min_agents && cooled(in.last_scale_down_ms, c.scale_down_cooldown)) {
    return {-std::min(c.step, in.size - c.min_agents), "agents idle and no work waiting"};
  }
  return {};
}

}  // namespace bzzz::tasks
