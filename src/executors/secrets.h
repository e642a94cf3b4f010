// SecretStore: secrets a task names instead of carrying (`secret://NAME`
// as the value of a command's `env` entry or an http task's header), so
// the stored task, the API and the P2P grant hold only the reference. The
// value is looked up when the attempt runs, on the node that runs it:
// first the environment variable BZZZ_SECRET_<NAME>, then the JSON object
// file agents.secrets_file ({"NAME": "value", ...}), which must not be
// readable by group or others. The file is read at each lookup, so a
// rotated secret is used by the next attempt without a restart.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace bzzz::executors {

inline constexpr std::string_view kSecretScheme = "secret://";

class SecretStore {
 public:
  explicit SecretStore(std::string file = "") : file_(std::move(file)) {}

  // `value` itself when it is not a reference. For "secret://NAME": the
  // secret, InvalidArgument for a bad NAME ([A-Za-z0-9_], 1..64), NotFound
  // when no source defines it, FailedPrecondition for a file others may read.
  Result<std::string> Resolve(const std::string& value) const;

 private:
  std::string file_;
};

// SecretSealer: secrets given in clear (an `env` value or a header that is
// not a `secret://` reference) are kept in the store sealed with a key of
// the node (XChaCha20-Poly1305 from libsodium), so bzzz.db, its backups
// and its dumps never hold them in clear:
//
//   "sealed:v1:" + base64url(nonce[24] || ciphertext || tag[16])
//
// `context` (the task id, field and name) is authenticated with the value,
// so a sealed value moved to another task or variable does not open. The
// key is derived from the node's identity key (NodeIdentity::DeriveKey), so
// only that node can open what it sealed.
class SecretSealer {
 public:
  using Key = std::array<std::uint8_t, 32>;
  explicit SecretSealer(const Key& key) : key_(key) {}

  std::string Seal(std::string_view plain, std::string_view context) const;
  // The value sealed by Seal with the same context. When it
  // was sealed with another key or changed: FailedPrecondition; malformed:
  // InvalidArgument.
  Result<std::string> Open(std::string_view sealed, std::string_view context) const;
  static bool IsSealed(std::string_view value);

 private:
  Key key_;
};

inline constexpr std::string_view kSealedPrefix = "sealed:v1:";

}  // namespace bzzz::executors
