// LogLimiter: at most `burst` lines per `window` for one kind of event, so
// that a flood (a client guessing tokens, a thousand tasks timing out)
// cannot drown the log; the lines held back are counted and reported with
// the next line that is let through. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace bzzz {

class LogLimiter {
 public:
  LogLimiter(int burst, std::chrono::milliseconds window) : burst_(burst), window_(window) {}

  // Whether to write this line; `suppressed` is set to how many lines were
  // held back since the last one written.
  bool Allow(std::uint64_t* suppressed) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    if (now - window_start_ >= window_) {
      window_start_ = now;
      used_ = 0;
    }
    if (used_ >= burst_) {
      ++held_;
      return false;
    }
    ++used_;
    *suppressed = held_;
    held_ = 0;
    return true;
  }

 private:
  const int burst_;
  const std::chrono::milliseconds window_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_start_{};
  int used_ = 0;
  std::uint64_t held_ = 0;
};

}  // namespace bzzz
