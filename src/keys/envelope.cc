#include "keys/envelope.h"

#include <sodium.h>

#include <cstring>

namespace bzzz::keys {

namespace {

constexpr std::size_t kSealedKeyBytes = crypto_box_SEALBYTES + sizeof(DataKey);  // 80
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;  // 24
constexpr std::size_t kMaxWraps = 64;
constexpr std::size_t kMaxName = 64;

std::string AssociatedData(std::string_view key) {
  std::string ad(kEnvelopeMagic);
  ad += key;
  return ad;
}

void PutU32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

}  // namespace

bool LooksSealed(std::string_view stored) { return stored.substr(0, kEnvelopeMagic.size()) == kEnvelopeMagic; }

void NewKeyPair(PublicKey& public_key, SecretKey& secret_key) {
  crypto_box_keypair(public_key.data(), secret_key.data());
}

PublicKey PublicOf(const SecretKey& secret_key) {
  PublicKey pk{};
  crypto_scalarmult_base(pk.data(), secret_key.data());
  return pk;
}

Wrap WrapDataKey(const DataKey& data_key, const Recipient& recipient) {
  Wrap w;
  w.kind = recipient.kind;
  w.name = recipient.name;
  w.version = recipient.version;
  w.sealed.resize(kSealedKeyBytes);
  crypto_box_seal(reinterpret_cast<unsigned char*>(w.sealed.data()), data_key.data(), data_key.size(),
                  recipient.public_key.data());
  return w;
}

std::optional<DataKey> UnwrapDataKey(const Wrap& wrap, const PublicKey& public_key, const SecretKey& secret_key) {
  if (wrap.sealed.size() != kSealedKeyBytes) return std::nullopt;
  DataKey dk{};
  if (crypto_box_seal_open(dk.data(), reinterpret_cast<const unsigned char*>(wrap.sealed.data()), wrap.sealed.size(),
                           public_key.data(), secret_key.data()) != 0) {
    return std::nullopt;
  }
  return dk;
}

std::string EncodeEnvelope(const Envelope& e) {
  std::string out(kEnvelopeMagic);
  out.push_back(static_cast<char>(e.wraps.size()));
  for (const auto& w : e.wraps) {
    out.push_back(static_cast<char>(w.kind));
    out.push_back(static_cast<char>(w.name.size()));
    out += w.name;
    PutU32(out, w.version);
    out += w.sealed;
  }
  out += e.nonce;
  out += e.ciphertext;
  return out;
}

Result<Envelope> ParseEnvelope(std::string_view s) {
  auto bad = [](std::string what) { return InvalidArgument("sealed record: " + what); };
  if (!LooksSealed(s)) return bad("not sealed (no BZE1 header)");
  std::size_t at = kEnvelopeMagic.size();
  auto need = [&](std::size_t n) { return s.size() - at >= n; };
  if (!need(1)) return bad("truncated header");
  const std::size_t count = static_cast<unsigned char>(s[at++]);
  if (count == 0 || count > kMaxWraps) return bad("needs 1 to 64 wrapped keys");
  Envelope e;
  e.wraps.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (!need(2)) return bad("truncated wrap");
    Wrap w;
    const auto kind = static_cast<unsigned char>(s[at++]);
    if (kind != static_cast<unsigned char>(WrapKind::kRole) && kind != static_cast<unsigned char>(WrapKind::kNode)) {
      return bad("unknown wrap kind " + std::to_string(kind));
    }
    w.kind = static_cast<WrapKind>(kind);
    const std::size_t len = static_cast<unsigned char>(s[at++]);
    if (len == 0 || len > kMaxName || !need(len + 4 + kSealedKeyBytes)) return bad("truncated or oversized wrap");
    w.name = std::string(s.substr(at, len));
    at += len;
    for (int b = 0; b < 4; ++b) w.version = (w.version << 8) | static_cast<unsigned char>(s[at++]);
    w.sealed = std::string(s.substr(at, kSealedKeyBytes));
    at += kSealedKeyBytes;
    e.wraps.push_back(std::move(w));
  }
  if (!need(kNonceBytes + crypto_aead_xchacha20poly1305_ietf_ABYTES)) return bad("truncated payload");
  e.nonce = std::string(s.substr(at, kNonceBytes));
  at += kNonceBytes;
  e.ciphertext = std::string(s.substr(at));
  return e;
}

Result<std::string> Seal(std::string_view key, std::string_view plaintext, const std::vector<Recipient>& recipients) {
  if (recipients.empty()) return InvalidArgument("sealing needs at least one recipient");
  if (recipients.size() > kMaxWraps) return InvalidArgument("at most 64 recipients");
  DataKey dk{};
  crypto_aead_xchacha20poly1305_ietf_keygen(dk.data());
  Envelope e;
  for (const auto& r : recipients) {
    if (r.name.empty() || r.name.size() > kMaxName) return InvalidArgument("recipient name of 1 to 64 bytes");
    e.wraps.push_back(WrapDataKey(dk, r));
  }
  e.nonce.resize(kNonceBytes);
  randombytes_buf(e.nonce.data(), e.nonce.size());
  const std::string ad = AssociatedData(key);
  e.ciphertext.resize(plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      reinterpret_cast<unsigned char*>(e.ciphertext.data()), &written,
      reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
      reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr,
      reinterpret_cast<const unsigned char*>(e.nonce.data()), dk.data());
  e.ciphertext.resize(written);
  sodium_memzero(dk.data(), dk.size());
  return EncodeEnvelope(e);
}

Result<std::string> OpenPayload(std::string_view key, const Envelope& e, const DataKey& data_key) {
  if (e.ciphertext.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES || e.nonce.size() != kNonceBytes) {
    return Unavailable("sealed record: truncated payload");
  }
  const std::string ad = AssociatedData(key);
  std::string plain(e.ciphertext.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(plain.data()), &written, nullptr,
          reinterpret_cast<const unsigned char*>(e.ciphertext.data()), e.ciphertext.size(),
          reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
          reinterpret_cast<const unsigned char*>(e.nonce.data()), data_key.data()) != 0) {
    return Unavailable("sealed record does not authenticate (altered, or sealed for another address)");
  }
  plain.resize(written);
  return plain;
}

}  // namespace bzzz::keys
