// Envelope encryption of one stored record (SPEC §3.10 "role-based
// encryption"; docs/keys.md has the byte layout).
//
// A record is sealed with a fresh 32-byte data key (XChaCha20-Poly1305,
// libsodium's AEAD, the content key as associated data so that a sealed
// record cannot be moved to another address). The data key is then wrapped
// (an X25519 sealed box) for each reader:
//
//   - a role key version ("developer" v3): the public half of the role key,
//     whose secret half only the nodes granted the role hold;
//   - the writer node's own identity key, so that the writer can re-wrap
//     what it wrote when a role key is rotated without holding the role
//     (it knew the plaintext anyway). It is never used to answer a reader.
//
// The header names every wrap (kind, name, version), so a reader knows which
// key it needs before trying, and a re-wrap replaces wraps without touching
// the ciphertext. Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace bzzz::keys {

using PublicKey = std::array<std::uint8_t, 32>;
using SecretKey = std::array<std::uint8_t, 32>;
using DataKey = std::array<std::uint8_t, 32>;

enum class WrapKind : std::uint8_t { kRole = 1, kNode = 2 };

struct Wrap {
  WrapKind kind = WrapKind::kRole;
  std::string name;            // role name, or the writer's node id
  std::uint32_t version = 0;   // role key version (0 for a node wrap)
  std::string sealed;          // the data key sealed to that key (80 bytes)
};

struct Envelope {
  std::vector<Wrap> wraps;
  std::string nonce;       // 24 bytes
  std::string ciphertext;  // plaintext size + 16
};

// Magic of a sealed record; content that does not start with it was stored
// in the clear (before encryption was enabled).
inline constexpr std::string_view kEnvelopeMagic = "BZE1";
bool LooksSealed(std::string_view stored);

// A reader's key: the public half to wrap for, and (to open) the secret half.
struct Recipient {
  WrapKind kind = WrapKind::kRole;
  std::string name;
  std::uint32_t version = 0;
  PublicKey public_key{};  // X25519
};

// Seals `plaintext` for every recipient (at least one). `key` is the
// content key, bound as associated data.
Result<std::string> Seal(std::string_view key, std::string_view plaintext, const std::vector<Recipient>& recipients);

// Parses the layout (never throws); InvalidArgument on anything malformed.
Result<Envelope> ParseEnvelope(std::string_view stored);
std::string EncodeEnvelope(const Envelope& envelope);

// Opens a sealed data key with an X25519 key pair; nullopt when it does not open.
std::optional<DataKey> UnwrapDataKey(const Wrap& wrap, const PublicKey& public_key, const SecretKey& secret_key);
// Wraps a data key for one recipient.
Wrap WrapDataKey(const DataKey& data_key, const Recipient& recipient);

// Decrypts the payload with the data key; Unavailable when it fails to
// authenticate (tampered, or sealed for another address).
Result<std::string> OpenPayload(std::string_view key, const Envelope& envelope, const DataKey& data_key);

// X25519 helpers.
void NewKeyPair(PublicKey& public_key, SecretKey& secret_key);
PublicKey PublicOf(const SecretKey& secret_key);

}  // namespace bzzz::keys
