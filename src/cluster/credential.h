// Cluster membership credentials (SPEC §3.3 "Membership"; docs/security.md).
//
// A cluster is its Ed25519 *cluster key*, the admission authority. Its
// public half names the cluster everywhere: the cluster id and the OpenDHT
// network id derive from it, so no two clusters share them by default and
// neither is a public constant. The secret half signs three kinds of
// statements, each a small binary blob (layouts in docs/security.md):
//
//   Credential  "BZC1": a member's certificate, binding its node identity key
//               to a role (worker, admin-capable, bootstrap-only), a serial
//               and an expiry. Every P2P frame carries its sender's
//               credential; receivers and DHT storage nodes verify it.
//   JoinToken   "BZT1": permission for one or more new nodes to be admitted
//               with a role until an expiry; written as text
//               "bzzz-join-1.<base64url>" for the command line.
//   Revocation  "BZR1": the end of one node's membership (all its
//               credentials), from a moment on.
//
// Every decode verifies the signature and the layout and never throws; time
// checks (expiry) are the caller's, with its own clock. Pure functions: safe
// from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/base64.h"
#include "base/hex.h"
#include "base/status.h"

namespace bzzz::cluster {

using Key = std::array<std::uint8_t, 32>;

enum class NodeRole : std::uint8_t { kWorker = 1, kAdminCapable = 2, kBootstrap = 3 };
std::string_view NodeRoleName(NodeRole role);  // "worker", "admin-capable", "bootstrap"
Result<NodeRole> ParseNodeRole(std::string_view name);

// hex(BLAKE2b-80(cluster key)): 20 hex digits, shown to operators.
std::string ClusterIdOf(const Key& cluster_key);
// The OpenDHT network id of the cluster: 32 bits of a hash of the key, never 0.
std::uint32_t NetworkIdOf(const Key& cluster_key);
// hex(BLAKE2b-160(key)): the bzzz node id of an identity key.
std::string NodeIdOfKey(const Key& node_key);

using bzzz::HexOf;  // base/hex.h
Result<Key> KeyFromHex(std::string_view hex);
using bzzz::Base64Url;  // base/base64.h
using bzzz::FromBase64Url;

// The secret half of the cluster key: held by the founder and by every
// admin-capable member (they admit nodes and renew credentials).
class ClusterAuthority {
 public:
  static ClusterAuthority Generate();
  // From the 64-byte libsodium secret key; InvalidArgument when it is not one.
  static Result<ClusterAuthority> FromSecret(std::string_view secret);
  const Key& public_key() const { return public_key_; }
  std::string secret() const;  // 64 bytes: keep it 0600
  std::array<std::uint8_t, 64> Sign(std::string_view message) const;

 private:
  std::array<std::uint8_t, 64> secret_{};
  Key public_key_{};
};

struct Credential {
  Key cluster_key{};
  Key node_key{};
  NodeRole role = NodeRole::kWorker;
  std::uint64_t serial = 0;
  std::int64_t issued_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::string name;  // the node's name when issued (informative, at most 64 bytes)
};
// Serializes and signs with `ca` (whose public key becomes cluster_key).
std::string EncodeCredential(Credential credential, const ClusterAuthority& ca);
// Verifies layout and signature, and that it names `cluster_key`.
Result<Credential> DecodeCredential(std::string_view bytes, const Key& cluster_key);

struct JoinToken {
  Key cluster_key{};
  std::string id;  // 16 hex digits, unique per token
  NodeRole role = NodeRole::kWorker;
  std::int64_t expires_at_ms = 0;
  std::uint32_t uses = 1;  // how many nodes may join with it
};
// "bzzz-join-1." + base64url(payload + signature).
std::string EncodeJoinToken(JoinToken token, const ClusterAuthority& ca);
// Verifies the signature against the key the token names; the caller checks
// that this is its cluster (or adopts it, when joining) and the expiry.
Result<JoinToken> DecodeJoinToken(std::string_view text);

struct Revocation {
  Key cluster_key{};
  std::string node_id;  // 40 hex digits
  std::int64_t revoked_at_ms = 0;
  std::string reason;  // at most 200 bytes
};
std::string EncodeRevocation(Revocation revocation, const ClusterAuthority& ca);
Result<Revocation> DecodeRevocation(std::string_view bytes, const Key& cluster_key);

}  // namespace bzzz::cluster
