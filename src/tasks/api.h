// Tasks, the agent pool and the dead-letter queue over HTTP (SPEC §3.6),
// on top of tasks::TaskManager and tasks::AgentPool.
//
// clang-format off
//   POST   /api/v1/tasks                 tasks:write  submit (201; 200 for a known idempotency key; 429 + Retry-After)
//   GET    /api/v1/tasks                 tasks:read   ?state=&executor=&project=&limit=&before=
//   GET    /api/v1/tasks/stats           tasks:read   {by_state, queue_depth, in_flight, ...}
//   GET    /api/v1/tasks/:id             tasks:read   the task with its attempts and events
//   GET    /api/v1/tasks/:id/events      tasks:read   ?after=N&wait_ms=M: long poll for events after the N-th
//   POST   /api/v1/tasks/:id/cancel      tasks:write
//   GET    /api/v1/dlq                   dlq:read     dead tasks
//   POST   /api/v1/dlq/:id/replay        dlq:write    queued again with a fresh attempt budget
//   DELETE /api/v1/dlq/:id               dlq:write    purged (204)
//   GET    /api/v1/agents                agents:read  the pool: summary and every agent
//   POST   /api/v1/agents/scale          agents:write {"agents": N} or {"delta": ±k}
// clang-format on
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "config/config.h"
#include "executors/executor.h"
#include "http/router.h"
#include "ops/component.h"
#include "ops/health.h"
#include "tasks/repository.h"
#include "tasks/task.h"

namespace prometheus {
class Registry;
}
namespace bzzz::p2p {
class P2pNode;
}
namespace bzzz::cache {
class Cache;
}
namespace bzzz::executors {
class SecretSealer;
}
namespace bzzz::election {
class AdminServices;
}

namespace bzzz::tasks {

class TaskServices final : public ops::Component {
 public:
  // Recovers the tasks of a previous run and starts the agents. With `p2p`
  // the node takes part in the cluster protocol (tasks/cluster.h); with
  // `admin` the nO master loop runs while this node is admin; with `sealer`
  // the secrets of task inputs are sealed in the store; with `cache` reads of
  // finished tasks go through the node's read cache.
  static Result<std::shared_ptr<TaskServices>> Start(std::shared_ptr<TaskRepository> store,
                                                     const config::Config& config, const std::string& node_id,
                                                     prometheus::Registry* metrics, p2p::P2pNode* p2p = nullptr,
                                                     election::AdminServices* admin = nullptr,
                                                     std::function<bool(const std::string&, std::uint64_t)> admin_of = {},
                                                     std::shared_ptr<const executors::SecretSealer> sealer = nullptr,
                                                     std::shared_ptr<cache::Cache> cache = nullptr);
  ~TaskServices();

  // Component: the routes above; agent-pool (unhealthy with no agent able
  // to work while tasks wait, degraded when fewer than half the agents are
  // healthy); the "tasks" status section; the shutdown steps
  // "agents.drain" (Drain) and "tasks.flush" (Stop).
  std::string_view Name() const override { return "tasks"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"tasks"}; }
  std::string StatusJson(std::string_view section = "tasks") const override;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;
  // Agents running and free, for the node's presence.
  void Load(int* running, int* capacity) const;
  // Task attempts this node's agents finished successfully (the election's
  // task experience).
  std::uint64_t SucceededAttempts() const;

  // For HMMM (the node wires them to the rooms of tasks): whether this node
  // owns task `id` (NotFound, or FailedPrecondition naming the owner);
  // escalate it (automation stops; idempotent); resume it after an
  // operator's answer, with `input` (JSON) instead of its own when not
  // empty. A task that is not escalated has nothing to resume (OK), but
  // takes no new input (FailedPrecondition). CheckResume says whether
  // Resume would succeed, changing nothing.
  Status CheckOwned(const std::string& id) const;
  Status Escalate(const std::string& id, const std::string& reason);
  Status CheckResume(const std::string& id, const std::string& input) const;
  Status Resume(const std::string& id, const std::string& note, const std::string& input);

  // Where a stuck task of this node asks for help (the node wires it to
  // HMMM): called on the agent's thread with the task, the asking agent and
  // the request; blocks until the answers are in. Until it is set, tasks
  // get no help.
  using HelpDesk = std::function<Result<std::vector<executors::HelpAnswer>>(
      const Task& task, const std::string& agent_id, const executors::HelpRequest& request)>;
  void SetHelpDesk(HelpDesk desk);
  // Called with every task of this node that became succeeded, dead or
  // cancelled, once that is committed (SLURP's task outcomes); must not
  // block. Until it is set, nothing is called.
  void SetFinishedListener(std::function<void(const Task&)> listener);
  // Any task this node can read (its own; every node's in a shared store).
  Result<Task> Get(const std::string& id) const;

  // Shutdown step "agents.drain": stop taking work; running tasks get
  // `grace`, then are handed back (durably queued again).
  void Drain(std::chrono::milliseconds grace);
  // Shutdown step "tasks.flush": writes what is pending and stops.
  void Stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::tasks
