// Cluster membership in the running node (SPEC §3.3; docs/security.md):
// how a node comes to belong to a cluster, how it admits others, and how
// revocations and renewals travel.
//
// Before P2P starts, PrepareMembership decides from <data_dir>/cluster and
// the configuration:
//   - a member (holds a credential): goes on; a join token is ignored when it
//     names the same cluster and refused when it names another;
//   - a join token: adopts the token's cluster and, once P2P runs, asks to be
//     admitted (AwaitAdmission) until the admin answers or p2p.join_timeout;
//   - neither, with bootstrap peers (or as dht-bootstrap): refuses to start,
//     with one line saying how to get a token (it never forms a second
//     cluster on a network that has one);
//   - neither, without bootstrap peers: founds a new cluster.
//
// ClusterServices then runs on every member:
//   - authorities (holders of the cluster key) answer join requests when
//     this node is the admin, or while no admin has been elected yet and it
//     founded the cluster; the answer is a credential sealed to the joiner
//     (with the cluster key for admin-capable members), and the token use
//     is announced to the other authorities;
//   - revocations are published on bzzz/internal/membership/v1 at once and
//     every 10 s by authorities; every node applies those signed by the
//     cluster key (they need no trust in the relay);
//   - a credential past two thirds of its life is renewed (self-issued on
//     authorities, asked of the admin elsewhere).
//
//   GET  /api/v1/cluster            cluster:read   this node's membership
//   GET  /api/v1/cluster/members    cluster:read   members seen, with roles, expiry, liveness
//   POST /api/v1/cluster/tokens     cluster:admin  {role, ttl, uses} -> a join token
//   POST /api/v1/cluster/revoke     cluster:admin  {node_id, reason}
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "cluster/membership.h"
#include "config/config.h"
#include "http/router.h"
#include "ops/component.h"
#include "ops/health.h"
#include "p2p/p2p.h"

namespace prometheus {
class Registry;
}

namespace bzzz::p2p {

Result<std::shared_ptr<cluster::Membership>> PrepareMembership(const config::Config& config,
                                                              const PublicKey& node_key, bool bootstrap_only);

// Blocks until this node holds a credential (at once for members).
// Unavailable after p2p.join_timeout; PermissionDenied when the admin
// refused the token (reused, expired, revoked node).
Status AwaitAdmission(P2pNode& p2p, cluster::Membership& membership, const config::Config& config);

class ClusterServices final : public ops::Component {
 public:
  // `may_admit` answers "" when this node may admit others now, else why not.
  static Result<std::shared_ptr<ClusterServices>> Start(P2pNode& p2p,
                                                        std::shared_ptr<cluster::Membership> membership,
                                                        const config::Config& config,
                                                        prometheus::Registry* metrics);
  ~ClusterServices();

  // Who answers join requests; set once the election runs (until then:
  // only a founder that knows no admin).
  void SetAdmissionGate(std::function<std::string()> may_admit);

  // A join this node answered: admitted, or refused and why (the node's
  // audit log listens). The listener runs on the P2P thread; keep it short.
  struct JoinOutcome {
    bool admitted = false;
    std::string node_id;
    std::string name;
    std::string role;      // admitted: the credential's role
    std::string token_id;  // admitted: the join token used
    std::string reason;    // refused: why
  };
  void OnJoinOutcome(std::function<void(const JoinOutcome&)> listener);

  // Component: the cluster routes; "membership" (not critical): unhealthy
  // when this node's credential has expired or was revoked, or when frames
  // of another cluster arrived in the last minute (two clusters share the
  // network); degraded when the credential is past five sixths of its life
  // (renewal is failing); the "cluster" status section.
  std::string_view Name() const override { return "cluster"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<ops::HealthCheckSpec> HealthChecks(const config::OperationsConfig& ops) override;
  std::vector<std::string> StatusSections() const override { return {"cluster"}; }
  std::string StatusJson(std::string_view section) const override;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::p2p
