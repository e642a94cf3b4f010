// KeyServices: distributes the keyring through the DHT and serves its API
// (SPEC §3.10; docs/keys.md).
//
// DHT records (every one a signed record of the record store, dht/):
//   keys/ring             the ring signed by the cluster key; every authority
//                         republishes the newest it has; every node reads all
//                         writers' copies and adopts the newest that verifies
//   keys/grant/<node id>  the role secrets that node may hold, sealed to its
//                         identity key; written by the admin only
//
// Every `poll_interval` a node reads the ring and its own grant. The admin
// also creates the keys of the configured roles, and seals a grant for every
// member it sees whose entitlement changed. Key changes (rotate,
// min_decryption_version, grants) are made by the admin; other nodes answer
// 409 naming it.
//
// Routes:
//   GET  /api/v1/keys          keys:read   the ring, what this node holds, re-wrap progress
//   POST /api/v1/keys/rotate   keys:admin  {"role"}: a new version (201)
//   POST /api/v1/keys/config   keys:admin  {"role", "min_decryption_version"}
//   POST /api/v1/keys/grant    keys:admin  {"role", "node_id", "holds": true|false}
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "keys/keyring.h"
#include "ops/component.h"

namespace prometheus {
class Registry;
}
namespace bzzz::p2p {
class P2pNode;
}
namespace bzzz::cluster {
class Membership;
}
namespace bzzz::dht {
class RecordStore;
}

namespace bzzz::keys {

struct KeyServicesOptions {
  std::vector<std::string> roles;  // role keys the admin creates (authority levels, RBAC and configured roles)
  std::chrono::milliseconds poll_interval{1000};
  // Without an admin source, an authority acts as the admin (a single node,
  // tests). A node with an election sets false: no key changes until the
  // election names an admin (SetAdminSource), so that authorities starting
  // together never create two rings.
  bool solo = true;
};

class KeyServices final : public ops::Component {
 public:
  // `records` null: this node only (no distribution).
  static Result<std::shared_ptr<KeyServices>> Start(std::shared_ptr<Keyring> keyring, p2p::P2pNode& p2p,
                                                    std::shared_ptr<cluster::Membership> membership,
                                                    dht::RecordStore* records, KeyServicesOptions options,
                                                    prometheus::Registry* metrics);
  ~KeyServices() override;
  void Stop();

  // Who is admin now (its node id, "" when none) and in which term.
  void SetAdminSource(std::function<std::string(std::uint64_t* term)> admin);
  // A JSON object describing the re-wrap job (ucxl), shown by GET /api/v1/keys.
  void SetRewrapProgress(std::function<std::string()> progress);
  // One distribution round now (also runs every poll_interval).
  void PollOnce();
  // Rounds until the ring or the held secrets change, at most `timeout`;
  // true when something changed (a write waiting for its role's first key,
  // a read waiting for this node's grant).
  bool Refresh(std::chrono::milliseconds timeout);

  const std::shared_ptr<Keyring>& keyring() const { return keyring_; }

  std::string_view Name() const override { return "keys"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<std::string> StatusSections() const override { return {"keys"}; }
  std::string StatusJson(std::string_view section) const override;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;

  class Impl;

 private:
  explicit KeyServices(std::shared_ptr<Keyring> keyring) : keyring_(std::move(keyring)) {}
  std::shared_ptr<Keyring> keyring_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::keys
