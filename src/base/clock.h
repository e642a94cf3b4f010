// Wall-clock and monotonic time, injectable so that protocols and schedulers
// can be driven by a simulated clock in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace bzzz {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

// Source of time. The default instance reads the real clocks; tests install
// their own. Implementations must be safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() const = 0;
  virtual SteadyTime Monotonic() const = 0;

  // The process-wide real clock.
  static const Clock& Real();
};

// "2026-11-23T10:38:06.123Z" (UTC, millisecond precision).
std::string FormatIso8601(SystemTime t);

// Seconds since the Unix epoch, as a double.
double ToUnixSeconds(SystemTime t);

// Milliseconds since the Unix epoch, now (the real clock).
std::int64_t UnixMillisNow();

// Milliseconds on the real monotonic clock (for state machines that take a
// `now_ms` and measure intervals).
std::int64_t MonotonicMillisNow();

// Milliseconds elapsed since `start` on the real monotonic clock, with
// fractions (latencies in reports).
double MillisSince(SteadyTime start);

}  // namespace bzzz
