// The P2P layer's surface in the running node: HTTP routes, the
// pubsub-health check, the probe responder and the "p2p" status section,
// on top of P2pNode.
//
//   GET    /api/v1/peers               p2p:read    live peers and the DHT table
//   DELETE /api/v1/p2p/peers           p2p:admin   clear the peer store
//   POST   /api/v1/p2p/test-message    p2p:write   probe every known peer over pubsub
//
// The probe protocol: a "probe" {nonce} published on bzzz/internal/probe/v1
// is answered by every member with a direct "probe-ack" {nonce, node_id};
// test-message reports who answered and the round trips.
//
// pubsub-health publishes a nonce to the node's own health topic
// (bzzz/internal/health/<node_id>) and waits for it to come back through
// the DHT.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "http/router.h"
#include "ops/component.h"
#include "ops/health.h"
#include "p2p/p2p.h"

namespace bzzz::p2p {

class P2pServices final : public ops::Component {
 public:
  // Subscribes the probe responder and the health topic.
  static Result<std::shared_ptr<P2pServices>> Start(P2pNode& p2p, const config::Config& config);
  ~P2pServices();

  // Component: the routes above, pubsub-health, the "p2p" status section.
  std::string_view Name() const override { return "p2p"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"p2p"}; }
  std::string StatusJson(std::string_view section) const override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::p2p
