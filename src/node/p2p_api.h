// The node's P2P and DHT surface: HTTP routes, health checks and the
// probe responder, on top of p2p::P2pNode and dht::RecordStore.
//
//   GET    /api/v1/peers               p2p:read    live peers and the DHT table
//   DELETE /api/v1/p2p/peers           p2p:admin   clear the peer store
//   POST   /api/v1/p2p/test-message    p2p:write   probe every known peer over pubsub
//   POST   /api/v1/dht/test            dht:write   put, get, announce, discover with timings
//   GET    /api/v1/dht/replication     dht:read    per record (?name=) or summary
//   DELETE /api/v1/dht/cache           dht:admin   empty <data_dir>/dht/cache
//
// Health checks: pubsub-health (publish to the node's own health topic and
// receive it back through the DHT) and dht-health (put and get a
// content-addressed value), both with timeouts.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "config/config.h"
#include "dht/record_store.h"
#include "http/router.h"
#include "ops/component.h"
#include "ops/health.h"
#include "p2p/p2p.h"

namespace bzzz::node {

class P2pServices final : public ops::Component {
 public:
  // Subscribes the probe responder and the health topic.
  static Result<std::shared_ptr<P2pServices>> Start(p2p::P2pNode& p2p, dht::RecordStore* records,
                                                    const config::Config& config);
  ~P2pServices();

  // Component: the routes above, pubsub-health and dht-health, the "p2p"
  // and "dht" status sections.
  std::string_view Name() const override { return "p2p"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"p2p", "dht"}; }
  std::string StatusJson(std::string_view section) const override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::node
