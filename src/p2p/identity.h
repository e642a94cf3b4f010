// NodeIdentity: the node's Ed25519 keypair (libsodium), persisted in the
// data directory, and the node id derived from it.
//
//   <data_dir>/p2p/identity.key   64-byte Ed25519 secret key, mode 0600
//
// node id = hex(BLAKE2b-160(public key)): 40 hex digits, stable across
// restarts for as long as the key file is kept. The same key signs every
// frame the node sends, and (converted to X25519) opens the sealed boxes of
// its inbox.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace bzzz::p2p {

using Bytes = std::vector<std::uint8_t>;
using PublicKey = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;

// hex(BLAKE2b-160(public_key)).
std::string NodeIdOf(const PublicKey& public_key);

class NodeIdentity {
 public:
  // Reads <dir>/identity.key, or creates it (and `dir`) when absent. A file
  // of the wrong size is an error, not silently replaced.
  static Result<NodeIdentity> LoadOrCreate(const std::string& dir);
  // A fresh identity that is not persisted (tests, benchmarks).
  static NodeIdentity Generate();

  const PublicKey& public_key() const { return public_key_; }
  const std::string& node_id() const { return node_id_; }

  Signature Sign(const std::uint8_t* data, std::size_t size) const;
  static bool Verify(const PublicKey& key, const std::uint8_t* data, std::size_t size, const Signature& sig);

  // The X25519 secret this identity shares with `peer` (both keys converted
  // from Ed25519): the same on both sides, known to nobody else. For link
  // keys, always mixed with fresh nonces. InvalidArgument for a key that is
  // not a valid point or is of low order.
  Result<std::array<std::uint8_t, 32>> SharedSecret(const PublicKey& peer) const;

  // Anonymous encryption to a node's public key (X25519 sealed box).
  static Result<Bytes> SealTo(const PublicKey& recipient, const std::uint8_t* data, std::size_t size);
  // Opens a sealed box addressed to this identity.
  Result<Bytes> Open(const std::uint8_t* data, std::size_t size) const;

  // A 32-byte key for `purpose` (exactly 8 characters, libsodium's KDF
  // context), derived from the secret key: stable for as long as the key
  // file is kept, and different for each purpose.
  std::array<std::uint8_t, 32> DeriveKey(std::string_view purpose) const;

 private:
  NodeIdentity() = default;
  void Derive();

  std::array<std::uint8_t, 64> secret_key_{};
  PublicKey public_key_{};
  std::array<std::uint8_t, 32> box_public_{};
  std::array<std::uint8_t, 32> box_secret_{};
  std::string node_id_;
};

}  // namespace bzzz::p2p
