#include "p2p/identity.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "base/file.h"
#include "cluster/credential.h"

namespace bzzz::p2p {

namespace fs = std::filesystem;

namespace {
void InitSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();  // no usable randomness: nothing can be signed safely
  });
}
}  // namespace

// One definition, shared with the membership checks (cluster/).
std::string NodeIdOf(const PublicKey& public_key) { return cluster::NodeIdOfKey(public_key); }

void NodeIdentity::Derive() {
  crypto_sign_ed25519_sk_to_pk(public_key_.data(), secret_key_.data());
  // Cannot fail for a key made by crypto_sign_keypair (a valid curve point).
  [[maybe_unused]] const int a = crypto_sign_ed25519_pk_to_curve25519(box_public_.data(), public_key_.data());
  [[maybe_unused]] const int b = crypto_sign_ed25519_sk_to_curve25519(box_secret_.data(), secret_key_.data());
  node_id_ = NodeIdOf(public_key_);
}

std::array<std::uint8_t, 32> NodeIdentity::DeriveKey(std::string_view purpose) const {
  char context[crypto_kdf_CONTEXTBYTES] = {};
  std::memcpy(context, purpose.data(), std::min(purpose.size(), sizeof context));
  // The master key is the Ed25519 seed (the first 32 bytes of the secret key).
  std::array<std::uint8_t, 32> key{};
  crypto_kdf_derive_from_key(key.data(), key.size(), 1, context, secret_key_.data());
  return key;
}

NodeIdentity NodeIdentity::Generate() {
  InitSodium();
  NodeIdentity id;
  PublicKey pk;
  crypto_sign_keypair(pk.data(), id.secret_key_.data());
  id.Derive();
  return id;
}

Result<NodeIdentity> NodeIdentity::LoadOrCreate(const std::string& dir) {
  InitSodium();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  const fs::path path = fs::path(dir) / "identity.key";
  NodeIdentity id;
  if (fs::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(id.secret_key_.data()), static_cast<std::streamsize>(id.secret_key_.size()));
    const bool full = in.gcount() == static_cast<std::streamsize>(id.secret_key_.size());
    char extra;
    if (!full || in.read(&extra, 1)) {
      return InvalidArgument(path.string() + " is not a 64-byte Ed25519 secret key; move it away to create a new "
                             "identity (the node id will change)");
    }
    id.Derive();
    // The stored public half must match the secret: a corrupted file is refused.
    PublicKey embedded;
    std::memcpy(embedded.data(), id.secret_key_.data() + 32, 32);
    if (embedded != id.public_key_) return InvalidArgument(path.string() + " is corrupted (key halves disagree)");
    return id;
  }
  PublicKey pk;
  crypto_sign_keypair(pk.data(), id.secret_key_.data());
  id.Derive();
  if (Status s = WriteFileAtomic(path.string(),
                                 std::string_view(reinterpret_cast<const char*>(id.secret_key_.data()),
                                                  id.secret_key_.size()),
                                 0600);
      !s.ok()) {
    return s;
  }
  return id;
}

Signature NodeIdentity::Sign(const std::uint8_t* data, std::size_t size) const {
  Signature sig;
  crypto_sign_detached(sig.data(), nullptr, data, size, secret_key_.data());
  return sig;
}

bool NodeIdentity::Verify(const PublicKey& key, const std::uint8_t* data, std::size_t size, const Signature& sig) {
  InitSodium();
  return crypto_sign_verify_detached(sig.data(), data, size, key.data()) == 0;
}

Result<std::array<std::uint8_t, 32>> NodeIdentity::SharedSecret(const PublicKey& peer) const {
  InitSodium();
  std::array<std::uint8_t, 32> peer_x{}, shared{};
  if (crypto_sign_ed25519_pk_to_curve25519(peer_x.data(), peer.data()) != 0) {
    return InvalidArgument("peer key is not a valid Ed25519 public key");
  }
  if (crypto_scalarmult(shared.data(), box_secret_.data(), peer_x.data()) != 0) {
    return InvalidArgument("peer key is of low order");
  }
  return shared;
}

Result<Bytes> NodeIdentity::SealTo(const PublicKey& recipient, const std::uint8_t* data, std::size_t size) {
  InitSodium();
  std::array<std::uint8_t, 32> box_pk;
  if (crypto_sign_ed25519_pk_to_curve25519(box_pk.data(), recipient.data()) != 0) {
    return InvalidArgument("recipient key is not a valid Ed25519 public key");
  }
  Bytes out(size + crypto_box_SEALBYTES);
  crypto_box_seal(out.data(), data, size, box_pk.data());
  return out;
}

Result<Bytes> NodeIdentity::Open(const std::uint8_t* data, std::size_t size) const {
  if (size < crypto_box_SEALBYTES) return InvalidArgument("sealed box too short");
  Bytes out(size - crypto_box_SEALBYTES);
  if (crypto_box_seal_open(out.data(), data, size, box_public_.data(), box_secret_.data()) != 0) {
    return InvalidArgument("sealed box does not open with this node's key");
  }
  return out;
}

}  // namespace bzzz::p2p
