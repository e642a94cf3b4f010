// Exponential backoff with jitter: the one formula for every retry of the
// node (task attempts, the task writer, agent restarts).
#pragma once

#include <chrono>
#include <cstdint>

namespace bzzz {

// The delay after `failures` consecutive failures (at least 1):
// base·2^(failures-1) capped at `max`, jittered uniformly into [d/2, d]
// with `u` in [0, 1] ("equal jitter": never below half the step, so
// retries spread out without collapsing to 0).
std::int64_t BackoffMs(int failures, std::int64_t base_ms, std::int64_t max_ms, double u);

// A uniform draw in [0, 1) from a per-thread generator, for `u` above.
double UniformJitter();

// Counts failures and answers the next delay; Reset() after a success.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max) : base_(base), max_(max) {}
  std::chrono::milliseconds Next() {
    ++failures_;
    return std::chrono::milliseconds(BackoffMs(failures_, base_.count(), max_.count(), UniformJitter()));
  }
  void Reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  std::chrono::milliseconds base_, max_;
  int failures_ = 0;
};

}  // namespace bzzz
