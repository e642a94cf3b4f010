#include "cluster/credential.h"

#include <sodium.h>

#include <cstring>
#include <mutex>

namespace bzzz::cluster {

namespace {

constexpr std::size_t kSig = 64;
constexpr std::string_view kCredentialMagic = "BZC1";
constexpr std::string_view kTokenMagic = "BZT1";
constexpr std::string_view kRevocationMagic = "BZR1";
constexpr std::string_view kTokenPrefix = "bzzz-join-1.";

void InitSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();  // no usable randomness: nothing can be signed safely
  });
}

void PutU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

void PutKey(std::string& out, const Key& k) { out.append(reinterpret_cast<const char*>(k.data()), k.size()); }

// A bounds-checked reader over a signed blob (signature excluded).
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool Magic(std::string_view m) {
    if (s_.substr(pos_, m.size()) != m) return false;
    pos_ += m.size();
    return true;
  }
  bool Raw(std::uint8_t* out, std::size_t n) {
    if (s_.size() - pos_ < n) return false;
    std::memcpy(out, s_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool U8(std::uint8_t* v) { return Raw(v, 1); }
  bool U64(std::uint64_t* v) {
    std::uint8_t b[8];
    if (!Raw(b, 8)) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= static_cast<std::uint64_t>(b[i]) << (8 * i);
    return true;
  }
  bool Short(std::string* out) {  // u8 length + bytes
    std::uint8_t n;
    if (!U8(&n) || s_.size() - pos_ < n) return false;
    out->assign(s_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool Done() const { return pos_ == s_.size(); }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

std::string Signed(std::string body, const ClusterAuthority& ca) {
  const auto sig = ca.Sign(body);
  body.append(reinterpret_cast<const char*>(sig.data()), sig.size());
  return body;
}

// Splits off and checks the signature; returns the signed body.
Result<std::string_view> Verified(std::string_view bytes, const Key& key, std::string_view what) {
  InitSodium();
  if (bytes.size() < kSig + 4) return InvalidArgument(std::string(what) + " is truncated");
  const std::string_view body = bytes.substr(0, bytes.size() - kSig);
  const auto* sig = reinterpret_cast<const unsigned char*>(bytes.data() + body.size());
  if (crypto_sign_verify_detached(sig, reinterpret_cast<const unsigned char*>(body.data()), body.size(),
                                  key.data()) != 0) {
    return InvalidArgument(std::string(what) + " is not signed by this cluster's key");
  }
  return body;
}

bool ValidRole(std::uint8_t r) { return r >= 1 && r <= 3; }

}  // namespace

std::string_view NodeRoleName(NodeRole role) {
  switch (role) {
    case NodeRole::kWorker: return "worker";
    case NodeRole::kAdminCapable: return "admin-capable";
    case NodeRole::kBootstrap: return "bootstrap";
  }
  return "unknown";
}

Result<NodeRole> ParseNodeRole(std::string_view name) {
  if (name == "worker") return NodeRole::kWorker;
  if (name == "admin-capable") return NodeRole::kAdminCapable;
  if (name == "bootstrap") return NodeRole::kBootstrap;
  return InvalidArgument("role must be worker, admin-capable or bootstrap, not '" + std::string(name) + "'");
}


Result<Key> KeyFromHex(std::string_view hex) {
  Key k{};
  std::size_t n = 0;
  if (hex.size() != 64 ||
      sodium_hex2bin(k.data(), k.size(), hex.data(), hex.size(), nullptr, &n, nullptr) != 0 || n != 32) {
    return InvalidArgument("not a 64-digit hex key");
  }
  return k;
}

std::string ClusterIdOf(const Key& cluster_key) {
  InitSodium();
  std::uint8_t d[10];
  crypto_generichash(d, sizeof d, cluster_key.data(), cluster_key.size(), nullptr, 0);
  return HexOf(d, sizeof d);
}

std::uint32_t NetworkIdOf(const Key& cluster_key) {
  InitSodium();
  static constexpr std::string_view kContext = "bzzz network id";
  std::uint8_t d[16];
  crypto_generichash(d, sizeof d, cluster_key.data(), cluster_key.size(),
                     reinterpret_cast<const unsigned char*>(kContext.data()), kContext.size());
  std::uint32_t id = static_cast<std::uint32_t>(d[0]) | static_cast<std::uint32_t>(d[1]) << 8 |
                     static_cast<std::uint32_t>(d[2]) << 16 | static_cast<std::uint32_t>(d[3]) << 24;
  return id == 0 ? 1 : id;  // 0 is the public DHT
}

std::string NodeIdOfKey(const Key& node_key) {
  InitSodium();
  std::uint8_t d[20];
  crypto_generichash(d, sizeof d, node_key.data(), node_key.size(), nullptr, 0);
  return HexOf(d, sizeof d);
}


// --- ClusterAuthority ---

ClusterAuthority ClusterAuthority::Generate() {
  InitSodium();
  ClusterAuthority ca;
  crypto_sign_keypair(ca.public_key_.data(), ca.secret_.data());
  return ca;
}

Result<ClusterAuthority> ClusterAuthority::FromSecret(std::string_view secret) {
  InitSodium();
  if (secret.size() != 64) return InvalidArgument("a cluster key is 64 bytes");
  ClusterAuthority ca;
  std::memcpy(ca.secret_.data(), secret.data(), 64);
  crypto_sign_ed25519_sk_to_pk(ca.public_key_.data(), ca.secret_.data());
  if (std::memcmp(ca.public_key_.data(), ca.secret_.data() + 32, 32) != 0) {
    return InvalidArgument("the cluster key is corrupted (key halves disagree)");
  }
  return ca;
}

std::string ClusterAuthority::secret() const { return std::string(secret_.begin(), secret_.end()); }

std::array<std::uint8_t, 64> ClusterAuthority::Sign(std::string_view message) const {
  std::array<std::uint8_t, 64> sig;
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       secret_.data());
  return sig;
}

// --- Credential ---

std::string EncodeCredential(Credential c, const ClusterAuthority& ca) {
  if (c.name.size() > 64) c.name.resize(64);
  std::string out(kCredentialMagic);
  PutKey(out, ca.public_key());
  PutKey(out, c.node_key);
  out.push_back(static_cast<char>(c.role));
  PutU64(out, c.serial);
  PutU64(out, static_cast<std::uint64_t>(c.issued_at_ms));
  PutU64(out, static_cast<std::uint64_t>(c.expires_at_ms));
  out.push_back(static_cast<char>(c.name.size()));
  out += c.name;
  return Signed(std::move(out), ca);
}

Result<Credential> DecodeCredential(std::string_view bytes, const Key& cluster_key) {
  if (bytes.size() > 512) return InvalidArgument("credential too large");
  auto body = Verified(bytes, cluster_key, "credential");
  if (!body.ok()) return body.status();
  Reader r(*body);
  Credential c;
  std::uint8_t role;
  std::uint64_t issued, expires;
  if (!r.Magic(kCredentialMagic) || !r.Raw(c.cluster_key.data(), 32) || !r.Raw(c.node_key.data(), 32) ||
      !r.U8(&role) || !r.U64(&c.serial) || !r.U64(&issued) || !r.U64(&expires) || !r.Short(&c.name) ||
      !r.Done()) {
    return InvalidArgument("credential is malformed");
  }
  if (c.name.size() > 64) return InvalidArgument("credential is malformed");  // what EncodeCredential writes
  if (c.cluster_key != cluster_key) return InvalidArgument("credential of another cluster");
  if (!ValidRole(role)) return InvalidArgument("credential names an unknown role");
  c.role = static_cast<NodeRole>(role);
  c.issued_at_ms = static_cast<std::int64_t>(issued);
  c.expires_at_ms = static_cast<std::int64_t>(expires);
  return c;
}

// --- JoinToken ---

std::string EncodeJoinToken(JoinToken t, const ClusterAuthority& ca) {
  std::string out(kTokenMagic);
  PutKey(out, ca.public_key());
  std::uint8_t id[8] = {};
  std::size_t n = 0;
  if (sodium_hex2bin(id, sizeof id, t.id.data(), t.id.size(), nullptr, &n, nullptr) != 0 || n != 8) {
    randombytes_buf(id, sizeof id);  // callers pass 16 hex digits; anything else gets a fresh id
  }
  out.append(reinterpret_cast<const char*>(id), sizeof id);
  out.push_back(static_cast<char>(t.role));
  PutU64(out, static_cast<std::uint64_t>(t.expires_at_ms));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(t.uses >> (8 * i)));
  return std::string(kTokenPrefix) + Base64Url(Signed(std::move(out), ca));
}

Result<JoinToken> DecodeJoinToken(std::string_view text) {
  if (text.size() > 400 || !text.starts_with(kTokenPrefix)) {
    return InvalidArgument("not a bzzz join token (it starts with '" + std::string(kTokenPrefix) + "')");
  }
  auto bytes = FromBase64Url(text.substr(kTokenPrefix.size()));
  if (!bytes.ok()) return InvalidArgument("join token is not base64url");
  JoinToken t;
  {
    Reader r(*bytes);
    if (!r.Magic(kTokenMagic) || !r.Raw(t.cluster_key.data(), 32)) return InvalidArgument("join token is malformed");
  }
  auto body = Verified(*bytes, t.cluster_key, "join token");
  if (!body.ok()) return body.status();
  Reader r(*body);
  Key ignored;
  std::uint8_t id[8], role, uses[4];
  std::uint64_t expires;
  if (!r.Magic(kTokenMagic) || !r.Raw(ignored.data(), 32) || !r.Raw(id, 8) || !r.U8(&role) || !r.U64(&expires) ||
      !r.Raw(uses, 4) || !r.Done() || !ValidRole(role)) {
    return InvalidArgument("join token is malformed");
  }
  t.id = HexOf(id, 8);
  t.role = static_cast<NodeRole>(role);
  t.expires_at_ms = static_cast<std::int64_t>(expires);
  t.uses = static_cast<std::uint32_t>(uses[0]) | static_cast<std::uint32_t>(uses[1]) << 8 |
           static_cast<std::uint32_t>(uses[2]) << 16 | static_cast<std::uint32_t>(uses[3]) << 24;
  return t;
}

// --- Revocation ---

std::string EncodeRevocation(Revocation v, const ClusterAuthority& ca) {
  if (v.reason.size() > 200) v.reason.resize(200);
  std::string out(kRevocationMagic);
  PutKey(out, ca.public_key());
  std::uint8_t id[20] = {};
  std::size_t n = 0;
  (void)sodium_hex2bin(id, sizeof id, v.node_id.data(), v.node_id.size(), nullptr, &n, nullptr);
  out.append(reinterpret_cast<const char*>(id), sizeof id);
  PutU64(out, static_cast<std::uint64_t>(v.revoked_at_ms));
  out.push_back(static_cast<char>(v.reason.size()));
  out += v.reason;
  return Signed(std::move(out), ca);
}

Result<Revocation> DecodeRevocation(std::string_view bytes, const Key& cluster_key) {
  if (bytes.size() > 512) return InvalidArgument("revocation too large");
  auto body = Verified(bytes, cluster_key, "revocation");
  if (!body.ok()) return body.status();
  Reader r(*body);
  Revocation v;
  std::uint8_t id[20];
  std::uint64_t at;
  if (!r.Magic(kRevocationMagic) || !r.Raw(v.cluster_key.data(), 32) || !r.Raw(id, 20) || !r.U64(&at) ||
      !r.Short(&v.reason) || !r.Done()) {
    return InvalidArgument("revocation is malformed");
  }
  if (v.reason.size() > 200) return InvalidArgument("revocation is malformed");  // what EncodeRevocation writes
  if (v.cluster_key != cluster_key) return InvalidArgument("revocation of another cluster");
  v.node_id = HexOf(id, 20);
  v.revoked_at_ms = static_cast<std::int64_t>(at);
  return v;
}

}  // namespace bzzz::cluster
