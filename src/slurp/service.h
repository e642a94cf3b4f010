// SlurpService: SLURP in the running node (SPEC §3.8, docs/slurp.md).
//
// - Ingest, on every node: POST /api/v1/slurp/events (Idempotency-Key: the
//   same key answers the same event, 200 instead of 202; the same key with
//   another body is 409), task outcomes (TaskFinished: every final state
//   of this node's tasks) and HMMM decisions and resolutions (RoomDecided).
//   An event is in the store before 202; a full queue answers 429 with
//   Retry-After. With SQLite only the admin takes API events (a follower
//   answers 503 naming the admin); with a shared PostgreSQL any node does.
// - Processing, on the admin only: the election's AdminServices start it
//   for a term and stop it when the term ends; a Processor
//   (slurp/processor.h) drains the store's queue under the term fence.
// - slurp-health: on the admin, healthy while the queue drains (degraded
//   when the oldest event waits more than a minute, unhealthy when the
//   processor is fenced or cannot start); healthy "not applicable" on a
//   follower. Metrics in slurp/probe.h; the "slurp" status section.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "config/config.h"
#include "ops/component.h"
#include "slurp/processor.h"
#include "slurp/repository.h"

namespace prometheus {
class Registry;
}

namespace bzzz::slurp {

class SlurpService : public ops::Component {
 public:
  struct Options {
    config::Config config;
    std::string node_id;
    std::shared_ptr<SlurpRepository> store;
    ucxl::ContextStore* context = nullptr;  // where records go; null: events wait (unhealthy on the admin)
    Sources sources;
    prometheus::Registry* metrics = nullptr;
    // The admin as this node knows it ("" when none) and its term.
    std::function<std::string(std::uint64_t* term)> admin;
    std::function<std::int64_t()> now;  // Unix ms; null: the real clock
    std::chrono::milliseconds retry_base{1000};
  };

  static Result<std::shared_ptr<SlurpService>> Start(Options options);
  ~SlurpService() override;
  void Stop();

  // For AdminServices: process the queue for `term` / stop doing so.
  Status StartTerm(std::uint64_t term);
  void StopTerm(std::uint64_t term);

  // An API event: `key` "" gets a random one. Returns the stored event and
  // whether it is new. InvalidArgument (body), Conflict (key reused with
  // another body), ResourceExhausted (queue full), Unavailable (not taken
  // here: SQLite and not the admin).
  Result<std::pair<EventRow, bool>> Submit(const std::string& key, const std::string& body, const std::string& by);
  // Hooks; they never block (a bounded intake, written by a thread; a full
  // intake drops and counts).
  void TaskFinished(const TaskFacts& task);
  void RoomDecided(const std::string& room, const std::string& decision_id, const std::string& project,
                   const std::string& task_id);

  // Dead letters: queue event `seq` again (NotFound; FailedPrecondition
  // when it is not dead) and wake the processor.
  Status Replay(std::int64_t seq);
  SlurpRepository& store() const;
  ucxl::ContextStore* context() const;

  // ops::Component
  std::string_view Name() const override { return "slurp"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"slurp"}; }
  std::string StatusJson(std::string_view section) const override;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;

  struct Impl;

 private:
  SlurpService() = default;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::slurp
