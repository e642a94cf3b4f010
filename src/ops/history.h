// The node's own recent history, for the web console (docs/console.md):
// a sample of key figures every interval (health, peers, admin, agents,
// task and request rates, memory, CPU), each health check's changes, each
// change of admin and of the agent pool's size, kept in memory and bounded. No Prometheus is needed to see the
// last half hour of a node.
//
// A sampler thread takes the samples; Watch answers a long poll as soon as
// a sample newer than the caller's exists. Everything here is cheap enough
// to run on a loaded node: one registry collection per interval and an
// admin lookup every 250 ms.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ops/health.h"

namespace prometheus {
class Registry;
}

namespace bzzz::ops {

struct HistorySources {
  std::shared_ptr<HealthRegistry> health;   // required
  prometheus::Registry* metrics = nullptr;  // may be null: rates are then unknown (null)
  // The admin's node id ("" when none) and its term; may be empty (no election).
  std::function<std::string(std::uint64_t* term)> admin;
  std::string node_id;
  std::chrono::system_clock::time_point started_at;
  // Called on the sampler thread with each new sample; may be empty.
  std::function<void(const struct HistorySample&)> on_sample;
};

struct HistoryOptions {
  std::chrono::milliseconds interval{2000};
  std::size_t samples = 900;
  std::size_t changes = 100;  // health, leadership and scaling changes kept, each
};

// One sample. A figure that cannot be known (no metrics registry, the
// first sample of a rate) is empty.
struct HistorySample {
  std::uint64_t seq = 0;
  std::int64_t t_ms = 0;
  std::string health;  // the rollup: "healthy", "degraded", "unhealthy", "unknown"
  double score = 0;
  std::string admin_id;
  std::uint64_t term = 0;
  std::optional<double> peers, links, agents, queue_depth, in_flight, succeeded_per_s, failed_per_s, requests_per_s,
      pubsub_per_s, resident_bytes, cpu_percent;
};

class History {
 public:
  // Starts the sampler (the first sample after one interval).
  static std::shared_ptr<History> Start(HistorySources sources, HistoryOptions options);
  ~History();
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // The console's answer (docs/api.md, GET /api/v1/console/history): the
  // samples newer than `after` (every kept sample when `after` is 0 or
  // older than the oldest), and the full lists of changes. Serialized JSON.
  std::string Json(std::uint64_t after) const;

  // Calls `done` with Json(after) once a sample newer than `after` exists,
  // when `wait` has passed, or when the history stops; at once when one
  // exists already, when `after` is above the newest (a number from before
  // a restart of the node) or when `wait` is zero. `done` may run on the sampler thread.
  void Watch(std::uint64_t after, std::chrono::milliseconds wait, std::function<void(std::string)> done);

  // The newest sample's number (0 before the first).
  std::uint64_t Latest() const;

  // Stops the sampler and answers every waiting Watch. Idempotent.
  void Stop();

 private:
  History() = default;
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::ops
