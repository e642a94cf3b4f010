// Keyring: the cluster's role keys and what this node holds of them
// (SPEC §3.10; docs/keys.md).
//
// - The *ring* is public: for every role, its key versions (X25519 public
//   keys, numbered 1, 2, ...), the newest used for new writes, the
//   `min_decryption_version` below which no node decrypts any more, and the
//   worker nodes granted the role. An authority (a node holding the cluster
//   key; in practice the admin, see KeyServices) changes it and signs it
//   with the cluster key; every node adopts a ring that verifies and whose
//   revision is newer. Nobody else can add a key version.
// - The *secrets* (the private halves) are held only by the nodes that may
//   hold the role: every authority, and the workers the ring lists. They
//   travel sealed to the holder's identity key (grant bundles) and are kept
//   in <dir>/role_keys.json, mode 0600. A secret is accepted only when it
//   matches the ring's public key of its version, so a forged bundle can
//   neither plant a key nor swap one.
// - Records are sealed (keys/envelope.h) for the newest version of each
//   reader role plus this node; opened with a role secret this node holds,
//   for a reader who holds the role; re-wrapped to the newest versions with
//   this node's own wrap, without exposing the plaintext to anyone.
//
// Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "keys/envelope.h"

namespace bzzz::p2p {
class NodeIdentity;
}

namespace bzzz::keys {

struct RoleVersion {
  std::uint32_t version = 0;
  PublicKey public_key{};
  std::int64_t created_ms = 0;
  bool operator==(const RoleVersion&) const = default;
};

struct RoleEntry {
  std::vector<RoleVersion> versions;  // 1, 2, ... in order
  std::uint32_t min_decryption_version = 1;
  std::set<std::string> holders;  // worker node ids granted the role (authorities hold every role)
  const RoleVersion* Latest() const { return versions.empty() ? nullptr : &versions.back(); }
  const RoleVersion* Find(std::uint32_t version) const;
  bool operator==(const RoleEntry&) const = default;
};

struct Ring {
  std::uint64_t revision = 0;  // +1 on every change
  std::uint64_t term = 0;      // the election term of the admin that made it
  std::int64_t updated_ms = 0;
  std::string updated_by;      // node id
  std::map<std::string, RoleEntry> roles;
  bool operator==(const Ring&) const = default;
};

std::string RingToJson(const Ring& ring);
Result<Ring> RingFromJson(std::string_view text);

// Role names: what a UCXL address's role part allows.
bool ValidRoleName(std::string_view role);

// Signs a ring as the cluster: {"ring": "<json>", "signature": "<hex>"}.
using ClusterSigner = std::function<Result<std::array<std::uint8_t, 64>>(std::string_view message)>;
Result<std::string> SignRing(const Ring& ring, const ClusterSigner& sign);
// Verifies against the cluster's public key; InvalidArgument when forged.
Result<Ring> VerifyRing(std::string_view signed_ring, const std::array<std::uint8_t, 32>& cluster_key);

// Why a record could not be opened for a reader (PermissionDenied
// messages name it); see Keyring::Open.
struct OpenOutcome {
  std::string plaintext;
  std::string role;            // the role whose key opened it
  std::uint32_t version = 0;   // and its version
};

class Keyring {
 public:
  // `dir` "" keeps everything in memory (tests). `identity` must outlive it.
  static Result<std::shared_ptr<Keyring>> Open(std::string dir, const p2p::NodeIdentity& identity,
                                                 std::array<std::uint8_t, 32> cluster_key);

  Ring ring() const;
  // The sum of every role's newest version number: it grows with every
  // rotation (and new role) and with nothing else, so it says when sealed
  // records need a re-wrap (grants and retirements do not).
  std::uint64_t Generation() const;
  std::string signed_ring() const;  // "" before the first ring
  const std::string& node_id() const { return node_id_; }

  // Adopts a signed ring when it verifies and is newer (revision, then
  // term). True when adopted. A ring never removes a secret this node holds.
  Result<bool> Adopt(std::string_view signed_ring);

  // --- changes, by an authority: each signs and adopts a new revision ---
  // Creates version 1 of every role in `roles` that has none. True when
  // anything changed.
  Result<bool> EnsureRoles(const std::vector<std::string>& roles, std::uint64_t term, const ClusterSigner& sign);
  // Adds a version (the role is created when new); it is used for new
  // writes at once and every older version stays readable.
  Result<RoleVersion> Rotate(const std::string& role, std::uint64_t term, const ClusterSigner& sign);
  // Retires the versions below `version` (at most the newest).
  Status SetMinDecryptionVersion(const std::string& role, std::uint32_t version, std::uint64_t term,
                                 const ClusterSigner& sign);
  // Grants (or withdraws) a role to a worker node. Withdrawing stops new
  // grants; what the node already holds stays with it until a rotation.
  Status SetHolder(const std::string& role, const std::string& node_id, bool holds, std::uint64_t term,
                   const ClusterSigner& sign);

  // --- secrets ---
  bool Holds(const std::string& role, std::uint32_t version) const;
  std::map<std::string, std::vector<std::uint32_t>> Held() const;
  // The secrets `node_id` may hold (all of them for an authority, else
  // those of the roles it is granted), sealed to its identity key; "" when
  // there are none.
  Result<std::string> GrantBundleFor(const std::string& node_id, const std::array<std::uint8_t, 32>& identity_key,
                                     bool authority) const;
  // Opens a bundle sealed to this node and keeps every secret that matches
  // the ring; returns how many were new.
  Result<int> AcceptBundle(std::string_view sealed);
  // A digest of the secrets a bundle for (node, authority) would carry, to
  // republish a bundle only when it changes.
  std::string GrantDigest(const std::string& node_id, bool authority) const;

  // --- records ---
  // Seals for the newest version of each reader role (and this node).
  // FailedPrecondition when a role has no key yet.
  Result<std::string> Seal(std::string_view key, std::string_view plaintext, const std::vector<std::string>& readers) const;
  // Opens with a role that `may_read` accepts, this node holds and is not
  // retired. PermissionDenied (naming why) when there is none; Unavailable
  // when the record does not authenticate.
  Result<OpenOutcome> Open(std::string_view key, std::string_view stored,
                           const std::function<bool(const std::string& role)>& may_read) const;
  // The stored bytes re-wrapped for the newest version of each of their
  // roles, through this node's own wrap; nullopt when already current, or
  // when this node did not seal it (FailedPrecondition). Content stored in
  // the clear is sealed for `readers_if_clear`.
  Result<std::optional<std::string>> Rewrap(std::string_view key, std::string_view stored,
                                            const std::vector<std::string>& readers_if_clear) const;
  // The roles a sealed record is wrapped for (empty when not sealed).
  static std::vector<std::string> ReadersOf(std::string_view stored);

 private:
  Keyring(std::string dir, const p2p::NodeIdentity& identity, std::array<std::uint8_t, 32> cluster_key);
  Status LoadLocked();
  Status SaveSecretsLocked() const;
  Status SaveRingLocked() const;
  // Applies `change` to a copy of the ring, signs, adopts and persists it.
  Status ChangeLocked(std::uint64_t term, const ClusterSigner& sign, const std::function<Status(Ring&)>& change);
  Recipient NodeRecipient() const;

  const std::string dir_;
  const p2p::NodeIdentity& identity_;
  const std::array<std::uint8_t, 32> cluster_key_;
  const std::string node_id_;
  mutable std::mutex mu_;
  Ring ring_;
  std::string signed_ring_;
  std::map<std::pair<std::string, std::uint32_t>, SecretKey> secrets_;
};

}  // namespace bzzz::keys
