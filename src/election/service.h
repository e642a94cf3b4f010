// ElectionService: the election state machine running for real: a mutex
// around it, a timer thread that ticks it at its deadlines, durable state in
// a file, metrics, and a callback thread that starts and stops the
// admin-only services (AdminServices) in order, off the election's lock.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "election/admin_services.h"
#include "election/election.h"

namespace prometheus {
class Registry;
}

namespace bzzz::election {

struct ServiceOptions {
  Options election;        // node id, capability, timers; the seed is drawn if 0
  std::string state_path;  // <data_dir>/election/state.json; "" keeps the state in memory
  // Called on the timer thread about once per hello interval, outside the
  // lock, with the size of the electorate; returns the candidate score in
  // [0, 1]. Null: 0.5.
  std::function<double(std::size_t electorate_size)> score;
};

class ElectionService {
 public:
  // Loads the saved state (a damaged file is an error: the node must not
  // forget a vote) and starts the threads. `transport` must outlive the
  // service; `metrics` and `services` may be null.
  static Result<std::unique_ptr<ElectionService>> Start(ServiceOptions options, Transport* transport,
                                                        prometheus::Registry* metrics,
                                                        AdminServices* services);
  ~ElectionService();  // Stop()
  ElectionService(const ElectionService&) = delete;
  ElectionService& operator=(const ElectionService&) = delete;

  // Stops the threads (after the admin services have been stopped). Idempotent.
  void Stop();

  // A message from the transport; any thread.
  void Deliver(const Message& message);

  Snapshot GetSnapshot() const;
  Status Trigger(bool force);
  // Waits until the admin or the term differs from the given ones; returns
  // the snapshot then, or at `timeout`.
  Snapshot WaitForChange(const std::string& admin, std::uint64_t term,
                         std::chrono::milliseconds timeout) const;
  // Graceful shutdown: steps down, names a successor, waits up to `wait` for
  // its heartbeat, and never stands again. Returns the successor ("" if none).
  std::string Resign(std::chrono::milliseconds wait);
  Status AddMember(const std::string& node_id);
  Status RemoveMember(const std::string& node_id);

  const Options& options() const;

  class Impl;

 private:
  explicit ElectionService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bzzz::election
