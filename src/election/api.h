// The election in the running node: ElectionService on the P2P transport
// (signed pubsub on bzzz/election/v1), the candidate score's inputs
// (election/score.h), the HTTP routes, the election-health check and the
// /admin/status section.
//
//   GET  /api/election/status      election:read   SPEC §2 fields, plus the electorate
//   POST /api/election/trigger     election:admin  hand over / stand now; answers with old and new admin
//   POST /api/election/electorate  election:admin  {"add": id} or {"remove": id}, on the admin
//
// Admin-only services (the master loop, SLURP) register with
// admin_services(): they start with the term as fencing token when this node
// becomes admin and stop when it stops being admin.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "config/config.h"
#include "election/admin_services.h"
#include "http/router.h"
#include "ops/component.h"
#include "ops/health.h"
#include "p2p/p2p.h"

namespace prometheus {
class Registry;
}

namespace bzzz::election {

class ElectionNode final : public ops::Component {
 public:
  static Result<std::shared_ptr<ElectionNode>> Start(p2p::P2pNode& p2p, const config::Config& config,
                                                     prometheus::Registry* metrics);
  ~ElectionNode();

  AdminServices& admin_services();

  // Component: the election routes, "election-health", the "election"
  // status section, and the "election.leave" shutdown step (an admin hands
  // over and waits, bounded, for its successor's first heartbeat).
  std::string_view Name() const override { return "election"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"election"}; }
  std::string StatusJson(std::string_view section = "election") const override;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;
  // The admin this node knows ("" when none) and the term it leads.
  std::string Admin(std::uint64_t* term = nullptr) const;
  // Whether `node_id` is the admin of `term` by this node's election state
  // (not by what a message claims): the check on every admin-only message.
  bool AdminOf(const std::string& node_id, std::uint64_t term) const;
  // Where the candidate score's task experience comes from (election/score.h):
  // task attempts this node's agents finished successfully.
  void SetExperienceSource(std::function<std::uint64_t()> succeeded_attempts);


  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::election
