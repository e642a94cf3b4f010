// The record store's surface in the running node: HTTP routes, the
// dht-health check and the "dht" status section, on top of RecordStore and
// the P2P node's DHT.
//
//   POST   /api/v1/dht/test            dht:write   put, get, announce, discover with timings
//   GET    /api/v1/dht/replication     dht:read    per record (?name=) or summary
//   DELETE /api/v1/dht/cache           dht:admin   empty <data_dir>/dht/cache
//
// dht-health puts a content-addressed value into the DHT and gets it back,
// within the check's timeout.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "dht/record_store.h"
#include "http/router.h"
#include "ops/component.h"
#include "ops/health.h"
#include "p2p/p2p.h"

namespace bzzz::dht {

class DhtServices final : public ops::Component {
 public:
  // `records` may be null (a node without a record store): the routes then
  // answer 503 and the "dht" section is empty.
  static std::shared_ptr<DhtServices> Create(p2p::P2pNode& p2p, RecordStore* records, const config::Config& config);
  ~DhtServices();

  // Component: the routes above, dht-health, the "dht" status section.
  std::string_view Name() const override { return "dht"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"dht"}; }
  std::string StatusJson(std::string_view section) const override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::dht
