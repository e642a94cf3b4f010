// ShutdownCoordinator: one graceful shutdown path for SIGTERM, SIGINT and
// POST /admin/shutdown.
//
// Handlers run once, in ascending priority, each bounded by its own
// timeout; a handler that fails or times out is recorded and the sequence
// goes on. The order of SPEC §3.2 is expressed by the priorities the
// components register with (see the kPriority* constants). A second
// request while a shutdown is under way is refused (the HTTP layer answers
// 409). All methods are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace bzzz::ops {

// Priorities of the standard steps; lower runs first.
inline constexpr int kPriorityStopAccepting = 10;
inline constexpr int kPriorityDrainRequests = 20;
inline constexpr int kPriorityStopAgents = 30;
inline constexpr int kPriorityLeaveElection = 40;
inline constexpr int kPriorityStopServices = 50;
inline constexpr int kPriorityFlushStores = 60;
inline constexpr int kPriorityFlushLogs = 90;

enum class HandlerState { kPending, kRunning, kDone, kFailed, kTimedOut };
std::string_view HandlerStateName(HandlerState state);

struct ShutdownHandlerInfo {
  std::string name;
  int priority = 0;
  std::chrono::milliseconds timeout{0};
  HandlerState state = HandlerState::kPending;
  std::chrono::milliseconds duration{0};
  std::string error;
};

struct ShutdownStatus {
  bool requested = false;
  bool finished = false;
  std::string reason;  // "signal SIGTERM", "api (principal admin)"
  std::optional<std::chrono::system_clock::time_point> requested_at;
};

class ShutdownCoordinator {
 public:
  ShutdownCoordinator();
  ~ShutdownCoordinator();
  ShutdownCoordinator(const ShutdownCoordinator&) = delete;
  ShutdownCoordinator& operator=(const ShutdownCoordinator&) = delete;

  // Registers a step. Handlers with equal priority run in registration order.
  // Fails with Conflict once a shutdown has started.
  Status AddHandler(std::string name, int priority, std::chrono::milliseconds timeout,
                    std::function<Status()> fn);

  // Starts the sequence on its own thread. Conflict if already requested.
  Status Request(std::string reason);

  // Blocks until the sequence has finished.
  void Wait();
  // Blocks up to `timeout`; true when finished.
  bool WaitFor(std::chrono::milliseconds timeout);

  ShutdownStatus GetStatus() const;
  std::vector<ShutdownHandlerInfo> Handlers() const;
  // Steps that overran their timeout and have not returned. Each step runs
  // on a thread of its own, owned by the coordinator: destroying the
  // coordinator waits for them, and while one runs the objects it uses must
  // not be torn down (Node::Run exits the process instead).
  std::size_t StepsStillRunning() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::ops
