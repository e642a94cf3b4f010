// Membership: this node's place in its cluster, and the check every P2P
// frame passes (SPEC §3.3; docs/security.md has the protocol).
//
// Kept in <data_dir>/cluster/:
//   membership.json  the cluster key (public), this node's credential,
//                    whether it founded the cluster, the revocations it
//                    knows, and (on authorities) the uses of join tokens
//   cluster.key      the cluster's 64-byte secret key, mode 0600: only on
//                    the founder and admin-capable members (authorities)
//
// A node is in one of three states: without a cluster (fresh), joining (it
// knows the cluster key from a join token but holds no credential yet), or
// admitted. Only an admitted node sends frames; every node refuses frames
// whose sender has no valid, unexpired, unrevoked credential of its cluster.
//
// All methods are thread-safe. Every change is written to disk (atomically:
// temp file, fsync, rename) before it is reported as done.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cluster/credential.h"

namespace bzzz::cluster {

std::int64_t NowMs();

// Why a frame's sender is refused ("" when it is a member in good standing).
struct Verdict {
  std::string refused;  // "no_credential", "foreign_cluster", "bad_credential", "key_mismatch", "expired", "revoked"
  NodeRole role = NodeRole::kWorker;
  bool ok() const { return refused.empty(); }
};

// One credential this node has seen (for `bzzz cluster members`).
struct MemberInfo {
  std::string node_id;
  std::string name;
  NodeRole role = NodeRole::kWorker;
  std::uint64_t serial = 0;
  std::int64_t issued_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  bool revoked = false;
};

class Membership {
 public:
  // Reads `dir` (created when absent); "" keeps everything in memory (tests).
  // A damaged file is an error that names it, never silently replaced.
  static Result<std::shared_ptr<Membership>> Open(const std::string& dir);

  // --- this node ---
  bool HasCluster() const;
  bool Admitted() const;  // holds a credential
  bool IsAuthority() const;  // holds the cluster's secret key
  bool Founder() const;
  Key cluster_key() const;
  std::string cluster_id() const;  // "" without a cluster
  std::string credential() const;  // "" until admitted
  std::optional<Credential> own() const;

  // Founds a new cluster: a fresh cluster key, and this node's credential.
  // FailedPrecondition when this node already has a cluster.
  Status Found(const Key& node_key, NodeRole role, std::string_view name, std::chrono::milliseconds validity);
  // Joining: the cluster of a join token (before admission). Conflict when
  // this node already belongs to another cluster.
  Status Adopt(const Key& cluster_key);
  // Admission (or renewal): stores this node's credential and, for an
  // admin-capable member, the cluster's secret key. The credential must be
  // of this cluster and for `node_key`.
  Status Admit(std::string_view credential, std::string_view cluster_secret, const Key& node_key);

  // --- checking senders ---
  // Verdict on a frame's credential and its signer's key, at `now_ms`.
  // Decoded credentials are cached (bounded), so a frame costs a lookup.
  Verdict Check(std::string_view credential, const Key& sender, std::int64_t now_ms) const;

  // --- the admission authority (FailedPrecondition elsewhere) ---
  Result<std::string> CreateToken(NodeRole role, std::chrono::milliseconds ttl, std::uint32_t uses) const;
  // Admits `node_key` with `token_text` at `now_ms`: checks the token (this
  // cluster, unexpired, uses left, the node not revoked), records the use
  // and issues a credential. Asking again with the same token for the same
  // node answers the same way without using the token again.
  struct Admission {
    std::string credential;
    JoinToken token;
    bool repeated = false;
  };
  Result<Admission> AdmitWithToken(std::string_view token_text, const Key& node_key, std::string_view name,
                                   std::chrono::milliseconds validity, std::int64_t now_ms);
  // Issues a fresh credential for a member in good standing (renewal).
  Result<std::string> Renew(const Credential& current, std::chrono::milliseconds validity, std::int64_t now_ms);
  // A token use that another authority reported (its admission broadcast).
  void RecordTokenUse(const std::string& token_id, const std::string& node_id);
  // Signs and applies a revocation of `node_id`.
  Result<std::string> Revoke(const std::string& node_id, std::string_view reason, std::int64_t now_ms);

  // --- revocations (signed by the cluster key; anyone may relay them) ---
  // Verifies and applies; true when it was new. InvalidArgument when forged.
  Result<bool> ApplyRevocation(std::string_view encoded);
  bool IsRevoked(const std::string& node_id) const;
  std::vector<std::string> EncodedRevocations() const;
  std::vector<Revocation> Revocations() const;

  // Signs `message` with the cluster key (authorities only; other nodes get
  // FailedPrecondition): statements of the cluster beyond credentials, such
  // as the role key ring (keys/keyring.h). Callers put a domain prefix first.
  Result<std::array<std::uint8_t, 64>> SignAsCluster(std::string_view message) const;

  // Members whose credentials this node has checked, plus itself.
  std::vector<MemberInfo> Members() const;

 private:
  explicit Membership(std::string dir) : dir_(std::move(dir)) {}
  Status LoadLocked();
  Status SaveLocked() const;

  const std::string dir_;
  mutable std::mutex mu_;
  std::optional<Key> cluster_key_;
  std::string credential_;
  std::optional<Credential> own_;
  bool founder_ = false;
  std::optional<ClusterAuthority> authority_;
  std::map<std::string, std::string> revocations_;  // node id -> encoded revocation
  std::map<std::string, std::set<std::string>> token_uses_;  // token id -> node ids admitted with it
  // Verified credentials by their bytes (bounded); members seen, by node id.
  mutable std::map<std::string, Credential, std::less<>> cache_;
  mutable std::map<std::string, Credential> seen_;
};

}  // namespace bzzz::cluster
