// In-process clusters of real P2P nodes on 127.0.0.1 for the p2p and dht
// tests: each node has its own OpenDHT runner, UDP port and identity.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/membership.h"
#include "p2p/p2p.h"

namespace bzzz::testing {

// Settings that make a loopback cluster converge in well under a second.
inline config::P2pConfig FastP2pConfig() {
  config::P2pConfig c;
  c.listen = "127.0.0.1:0";
  c.presence_interval = std::chrono::milliseconds(200);
  c.peer_expiry = std::chrono::milliseconds(1500);
  c.max_peer_requests_per_sec = -1;  // every node shares 127.0.0.1
  c.max_requests_per_sec = -1;
  return c;
}

inline config::DhtConfig FastDhtConfig() {
  config::DhtConfig c;
  c.provider_refresh = std::chrono::milliseconds(500);
  c.provider_ttl = std::chrono::milliseconds(2000);
  c.record_ttl = std::chrono::milliseconds(60000);
  c.operation_timeout = std::chrono::milliseconds(3000);
  return c;
}

// The cluster key of every in-process test cluster.
inline const cluster::ClusterAuthority& TestClusterKey() {
  static const cluster::ClusterAuthority ca = cluster::ClusterAuthority::Generate();
  return ca;
}

// An in-memory membership of `ca`'s cluster for `identity`, with a
// credential valid for `valid_for` (negative: already expired).
inline std::shared_ptr<cluster::Membership> MemberOf(const cluster::ClusterAuthority& ca,
                                                     const p2p::NodeIdentity& identity,
                                                     cluster::NodeRole role = cluster::NodeRole::kAdminCapable,
                                                     std::chrono::milliseconds valid_for = std::chrono::hours(1)) {
  auto m = cluster::Membership::Open("").value();
  (void)m->Adopt(ca.public_key());
  cluster::Credential c;
  c.node_key = identity.public_key();
  c.role = role;
  c.serial = 1;
  c.issued_at_ms = cluster::NowMs() - 1000;
  c.expires_at_ms = cluster::NowMs() + valid_for.count();
  c.name = "test";
  (void)m->Admit(cluster::EncodeCredential(c, ca), "", identity.public_key());
  return m;
}

// Starts a node bootstrapped to `seeds` ("127.0.0.1:PORT"), a member of the
// test cluster unless `membership` says otherwise.
inline std::unique_ptr<p2p::P2pNode> StartP2pNode(const std::string& name, const std::vector<std::string>& seeds,
                                                  const std::string& data_dir = "",
                                                  config::P2pConfig cfg = FastP2pConfig(),
                                                  std::shared_ptr<cluster::Membership> membership = nullptr,
                                                  bool no_membership = false) {
  p2p::Options o;
  o.config = cfg;
  o.config.bootstrap = seeds;
  o.dht = FastDhtConfig();
  o.data_dir = data_dir;
  o.node_name = name;
  o.presence.agent_id = name + "-agent";
  o.presence.role = "developer";
  o.presence.capabilities = {"code"};
  auto identity = data_dir.empty() ? p2p::NodeIdentity::Generate()
                                   : p2p::NodeIdentity::LoadOrCreate(data_dir + "/p2p").value();
  o.membership = membership ? membership : no_membership ? nullptr : MemberOf(TestClusterKey(), identity);
  auto node = p2p::P2pNode::Start(std::move(o), std::move(identity), nullptr);
  return node.ok() ? std::move(node).value() : nullptr;
}

}  // namespace bzzz::testing
