// What the task simulations (task_sim_test.cc, cluster_sim_test.cc) expect
// of a finished task, by what it was meant to do.
#pragma once

#include <cstdlib>
#include <string>

#include "tasks/task.h"

namespace bzzz::tasks::sim {

// An integer from the environment (scenario counts), else `fallback`.
inline int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// A simulated task's input: what its executor will do.
enum class Kind { kOk, kFail, kFlaky };  // flaky: fails, then succeeds

// "" when `t`, acknowledged and not cancelled, ended as `kind` allows: a
// success with exactly one successful attempt (never for kFail); or dead
// after exactly max_attempts counted failures since its last replay, and
// for kOk only from crashes, lost leases and timeouts, never its executor.
inline std::string FinishedProblem(const Task& t, Kind kind) {
  int counted = 0, executor_failures = 0;
  for (std::size_t i = static_cast<std::size_t>(t.attempt_base); i < t.attempts.size(); ++i) {
    counted += CountsAsFailure(t.attempts[i].state);
    executor_failures += t.attempts[i].state == AttemptState::kFailed;
  }
  switch (t.state) {
    case TaskState::kSucceeded:
      if (t.SuccessfulAttempts() != 1) return t.id + " succeeded without exactly one successful attempt";
      if (kind == Kind::kFail) return t.id + " was meant to fail but succeeded";
      return "";
    case TaskState::kDead:
      if (counted != t.max_attempts) {
        return t.id + " dead after " + std::to_string(counted) + " counted failures, max_attempts " +
               std::to_string(t.max_attempts);
      }
      if (kind == Kind::kOk && executor_failures > 0) return t.id + " meant to succeed failed by its executor";
      return "";
    default:
      return t.id + " ended " + std::string(TaskStateName(t.state));
  }
}

}  // namespace bzzz::tasks::sim
