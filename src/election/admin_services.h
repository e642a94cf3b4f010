// Admin-only services (the nO master loop, SLURP) and the fencing that keeps
// them exactly-one-per-term.
//
// AdminServices starts every registered service when this node becomes admin
// of a term, passing the term as the fencing token, and stops them when it
// stops being admin. Stop(term) always returns before any Start(newer term)
// on this node; a service is never started twice for one term.
//
// TermFence is what a store keeps next to admin-only data: every admin-only
// write carries its term, and a write from a term older than the newest one
// the store has seen is refused. An admin deposed by a partition can still
// try to write until it notices; the fence turns those writes away.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace bzzz::election {

class AdminServices {
 public:
  struct Service {
    std::string name;
    std::function<Status(std::uint64_t term)> start;  // a failure is logged; the others still start
    std::function<void(std::uint64_t term)> stop;
  };
  struct State {
    std::string name;
    bool running = false;
    std::uint64_t term = 0;  // the term it last started for
    std::string last_error;
  };

  void Register(Service service);

  // Called in order by the election (one thread at a time).
  void BecameAdmin(std::uint64_t term);
  void StoppedBeingAdmin();

  // The term the services run for, if they run.
  std::optional<std::uint64_t> RunningTerm() const;
  std::vector<State> States() const;

 private:
  mutable std::mutex mu_;
  std::vector<Service> services_;
  std::vector<State> states_;
  std::optional<std::uint64_t> running_;
  std::uint64_t last_started_ = 0;
};

class TermFence {
 public:
  // OK when `term` is the newest seen so far or newer (and then it becomes
  // the newest); FailedPrecondition for an older term.
  Status Admit(std::uint64_t term);
  std::uint64_t Newest() const { return newest_.load(); }

 private:
  std::atomic<std::uint64_t> newest_{0};
};

}  // namespace bzzz::election
