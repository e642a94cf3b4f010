#include "keys/keyring.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/file.h"
#include "base/hex.h"
#include "base/json.h"
#include "p2p/identity.h"

namespace bzzz::keys {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kRingDomain = "bzzz-keyring-v1";

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string SigningMessage(std::string_view ring_json) {
  std::string m(kRingDomain);
  m.push_back('\0');
  m += ring_json;
  return m;
}

Result<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

bool ValidRoleName(std::string_view role) {
  if (role.empty() || role.size() > 64 || role == "any") return false;
  return std::all_of(role.begin(), role.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

const RoleVersion* RoleEntry::Find(std::uint32_t version) const {
  if (version == 0 || version > versions.size()) return nullptr;
  return &versions[version - 1];
}

std::string RingToJson(const Ring& ring) {
  json roles = json::object();
  for (const auto& [name, e] : ring.roles) {
    json versions = json::array();
    for (const auto& v : e.versions) {
      versions.push_back({{"version", v.version},
                          {"public_key", HexOf(v.public_key.data(), v.public_key.size())},
                          {"created_ms", v.created_ms}});
    }
    roles[name] = {{"versions", versions},
                   {"min_decryption_version", e.min_decryption_version},
                   {"holders", json(std::vector<std::string>(e.holders.begin(), e.holders.end()))}};
  }
  return DumpJson(json{{"revision", ring.revision},
                       {"term", ring.term},
                       {"updated_ms", ring.updated_ms},
                       {"updated_by", ring.updated_by},
                       {"roles", roles}});
}

Result<Ring> RingFromJson(std::string_view text) {
  const json j = ParseJson(text);
  if (!j.is_object() || !j.contains("roles") || !j["roles"].is_object()) return InvalidArgument("key ring: not a ring object");
  Ring ring;
  try {
    ring.revision = j.at("revision").get<std::uint64_t>();
    ring.term = j.at("term").get<std::uint64_t>();
    ring.updated_ms = j.at("updated_ms").get<std::int64_t>();
    ring.updated_by = j.at("updated_by").get<std::string>();
    for (const auto& [name, e] : j["roles"].items()) {
      if (!ValidRoleName(name)) return InvalidArgument("key ring: bad role name '" + name + "'");
      RoleEntry entry;
      for (const auto& v : e.at("versions")) {
        RoleVersion rv;
        rv.version = v.at("version").get<std::uint32_t>();
        if (rv.version != entry.versions.size() + 1) return InvalidArgument("key ring: versions of " + name + " out of order");
        if (!BytesOfHex(v.at("public_key").get<std::string>(), rv.public_key.data(), rv.public_key.size())) {
          return InvalidArgument("key ring: bad public key of " + name);
        }
        rv.created_ms = v.at("created_ms").get<std::int64_t>();
        entry.versions.push_back(rv);
      }
      if (entry.versions.empty()) return InvalidArgument("key ring: role " + name + " has no version");
      entry.min_decryption_version = e.at("min_decryption_version").get<std::uint32_t>();
      if (entry.min_decryption_version < 1 || entry.min_decryption_version > entry.versions.size()) {
        return InvalidArgument("key ring: min_decryption_version of " + name + " out of range");
      }
      for (const auto& h : e.at("holders")) entry.holders.insert(h.get<std::string>());
      ring.roles.emplace(name, std::move(entry));
    }
  } catch (const json::exception& ex) {
    return InvalidArgument(std::string("key ring: ") + ex.what());
  }
  return ring;
}

Result<std::string> SignRing(const Ring& ring, const ClusterSigner& sign) {
  const std::string body = RingToJson(ring);
  auto sig = sign(SigningMessage(body));
  if (!sig.ok()) return sig.status();
  return DumpJson(json{{"ring", body}, {"signature", HexOf(sig->data(), sig->size())}});
}

Result<Ring> VerifyRing(std::string_view signed_ring, const std::array<std::uint8_t, 32>& cluster_key) {
  const json j = ParseJson(signed_ring);
  if (!j.is_object() || !j.contains("ring") || !j["ring"].is_string() || !j.contains("signature") ||
      !j["signature"].is_string()) {
    return InvalidArgument("signed key ring: expected {ring, signature}");
  }
  const std::string body = j["ring"].get<std::string>();
  std::array<std::uint8_t, 64> sig{};
  if (!BytesOfHex(j["signature"].get<std::string>(), sig.data(), sig.size())) {
    return InvalidArgument("signed key ring: bad signature encoding");
  }
  const std::string message = SigningMessage(body);
  if (crypto_sign_ed25519_verify_detached(sig.data(), reinterpret_cast<const unsigned char*>(message.data()),
                                          message.size(), cluster_key.data()) != 0) {
    return InvalidArgument("signed key ring: the signature is not the cluster's");
  }
  return RingFromJson(body);
}

Keyring::Keyring(std::string dir, const p2p::NodeIdentity& identity, std::array<std::uint8_t, 32> cluster_key)
    : dir_(std::move(dir)), identity_(identity), cluster_key_(cluster_key), node_id_(identity.node_id()) {}

Result<std::shared_ptr<Keyring>> Keyring::Open(std::string dir, const p2p::NodeIdentity& identity,
                                                 std::array<std::uint8_t, 32> cluster_key) {
  std::shared_ptr<Keyring> k(new Keyring(std::move(dir), identity, cluster_key));
  std::lock_guard lock(k->mu_);
  if (auto s = k->LoadLocked(); !s.ok()) return s;
  return k;
}

Status Keyring::LoadLocked() {
  if (dir_.empty()) return Status::Ok();
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Unavailable("cannot create " + dir_ + ": " + ec.message());
  fs::permissions(dir_, fs::perms::owner_all, ec);
  if (auto text = ReadSmallFile(fs::path(dir_) / "ring.json"); text.ok()) {
    auto ring = VerifyRing(*text, cluster_key_);
    if (!ring.ok()) return InvalidArgument(dir_ + "/ring.json: " + ring.status().message());
    ring_ = std::move(ring).value();
    signed_ring_ = std::move(text).value();
  }
  if (auto text = ReadSmallFile(fs::path(dir_) / "role_keys.json"); text.ok()) {
    const json j = ParseJson(*text);
    if (!j.is_object()) return InvalidArgument(dir_ + "/role_keys.json is damaged; it is not replaced");
    for (const auto& [role, versions] : j.items()) {
      if (!versions.is_object()) return InvalidArgument(dir_ + "/role_keys.json: bad entry " + role);
      for (const auto& [v, hex] : versions.items()) {
        SecretKey sk{};
        std::uint32_t number = 0;
        try {
          number = static_cast<std::uint32_t>(std::stoul(v));
        } catch (...) {
          return InvalidArgument(dir_ + "/role_keys.json: bad version " + v);
        }
        if (!hex.is_string() || !BytesOfHex(hex.get<std::string>(), sk.data(), sk.size())) {
          return InvalidArgument(dir_ + "/role_keys.json: bad key of " + role + " v" + v);
        }
        secrets_[{role, number}] = sk;
      }
    }
  }
  return Status::Ok();
}

Status Keyring::SaveSecretsLocked() const {
  if (dir_.empty()) return Status::Ok();
  json j = json::object();
  for (const auto& [id, sk] : secrets_) j[id.first][std::to_string(id.second)] = HexOf(sk.data(), sk.size());
  std::string text = DumpJson(j);
  Status s = WriteFileAtomic((fs::path(dir_) / "role_keys.json").string(), text, 0600);
  sodium_memzero(text.data(), text.size());
  return s;
}

Status Keyring::SaveRingLocked() const {
  if (dir_.empty() || signed_ring_.empty()) return Status::Ok();
  return WriteFileAtomic((fs::path(dir_) / "ring.json").string(), signed_ring_, 0600);
}

Ring Keyring::ring() const {
  std::lock_guard lock(mu_);
  return ring_;
}

std::uint64_t Keyring::Generation() const {
  std::lock_guard lock(mu_);
  std::uint64_t sum = 0;
  for (const auto& [name, e] : ring_.roles) sum += e.versions.size();
  return sum;
}

std::string Keyring::signed_ring() const {
  std::lock_guard lock(mu_);
  return signed_ring_;
}

Result<bool> Keyring::Adopt(std::string_view signed_ring) {
  auto ring = VerifyRing(signed_ring, cluster_key_);
  if (!ring.ok()) return ring.status();
  std::lock_guard lock(mu_);
  if (std::tie(ring->revision, ring->term) <= std::tie(ring_.revision, ring_.term)) return false;
  // A newer ring never changes a version that exists: a key, once used for
  // writes, must stay what it was, or what it sealed could not be opened.
  for (const auto& [role, e] : ring_.roles) {
    auto it = ring->roles.find(role);
    if (it == ring->roles.end()) return InvalidArgument("key ring revision " + std::to_string(ring->revision) + " drops role " + role);
    for (const auto& v : e.versions) {
      const RoleVersion* other = it->second.Find(v.version);
      if (other == nullptr || other->public_key != v.public_key) {
        return InvalidArgument("key ring revision " + std::to_string(ring->revision) + " changes " + role + " v" +
                               std::to_string(v.version));
      }
    }
  }
  ring_ = std::move(ring).value();
  signed_ring_ = std::string(signed_ring);
  if (auto s = SaveRingLocked(); !s.ok()) return s;
  return true;
}

Status Keyring::ChangeLocked(std::uint64_t term, const ClusterSigner& sign, const std::function<Status(Ring&)>& change) {
  Ring next = ring_;
  if (auto s = change(next); !s.ok()) return s;
  next.revision = ring_.revision + 1;
  next.term = std::max(term, ring_.term);
  next.updated_ms = NowMs();
  next.updated_by = node_id_;
  auto signed_text = SignRing(next, sign);
  if (!signed_text.ok()) return signed_text.status();
  // Secrets first: a ring naming a version whose secret was lost would strand it.
  if (auto s = SaveSecretsLocked(); !s.ok()) return s;
  ring_ = std::move(next);
  signed_ring_ = std::move(signed_text).value();
  return SaveRingLocked();
}

Result<bool> Keyring::EnsureRoles(const std::vector<std::string>& roles, std::uint64_t term, const ClusterSigner& sign) {
  std::lock_guard lock(mu_);
  std::vector<std::string> missing;
  for (const auto& r : roles) {
    if (!ValidRoleName(r)) return InvalidArgument("role '" + r + "': letters, digits, '_' and '-', at most 64");
    if (!ring_.roles.count(r) && std::find(missing.begin(), missing.end(), r) == missing.end()) missing.push_back(r);
  }
  if (missing.empty()) return false;
  const auto saved = secrets_;
  Status s = ChangeLocked(term, sign, [&](Ring& next) {
    for (const auto& r : missing) {
      RoleVersion v;
      v.version = 1;
      v.created_ms = NowMs();
      SecretKey sk{};
      NewKeyPair(v.public_key, sk);
      secrets_[{r, 1}] = sk;
      next.roles[r].versions.push_back(v);
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    secrets_ = saved;
    return s;
  }
  return true;
}

Result<RoleVersion> Keyring::Rotate(const std::string& role, std::uint64_t term, const ClusterSigner& sign) {
  if (!ValidRoleName(role)) return InvalidArgument("role '" + role + "': letters, digits, '_' and '-', at most 64");
  std::lock_guard lock(mu_);
  const auto saved = secrets_;
  RoleVersion added;
  Status s = ChangeLocked(term, sign, [&](Ring& next) {
    RoleEntry& e = next.roles[role];
    added.version = static_cast<std::uint32_t>(e.versions.size() + 1);
    added.created_ms = NowMs();
    SecretKey sk{};
    NewKeyPair(added.public_key, sk);
    secrets_[{role, added.version}] = sk;
    e.versions.push_back(added);
    return Status::Ok();
  });
  if (!s.ok()) {
    secrets_ = saved;
    return s;
  }
  return added;
}

Status Keyring::SetMinDecryptionVersion(const std::string& role, std::uint32_t version, std::uint64_t term,
                                        const ClusterSigner& sign) {
  std::lock_guard lock(mu_);
  return ChangeLocked(term, sign, [&](Ring& next) -> Status {
    auto it = next.roles.find(role);
    if (it == next.roles.end()) return NotFound("no role key " + role);
    if (version < 1 || version > it->second.versions.size()) {
      return InvalidArgument("min_decryption_version of " + role + " must be 1 to " +
                             std::to_string(it->second.versions.size()) + " (its newest version)");
    }
    if (version < it->second.min_decryption_version) {
      return FailedPrecondition("min_decryption_version of " + role + " is " +
                                std::to_string(it->second.min_decryption_version) +
                                "; retired versions are not brought back");
    }
    it->second.min_decryption_version = version;
    return Status::Ok();
  });
}

Status Keyring::SetHolder(const std::string& role, const std::string& node_id, bool holds, std::uint64_t term,
                          const ClusterSigner& sign) {
  if (node_id.size() != 40 || !std::all_of(node_id.begin(), node_id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return InvalidArgument("node id: 40 lower-case hex digits");
  }
  std::lock_guard lock(mu_);
  return ChangeLocked(term, sign, [&](Ring& next) -> Status {
    auto it = next.roles.find(role);
    if (it == next.roles.end()) return NotFound("no role key " + role);
    if (holds) {
      it->second.holders.insert(node_id);
    } else if (it->second.holders.erase(node_id) == 0) {
      return NotFound(node_id + " does not hold " + role);
    }
    return Status::Ok();
  });
}

bool Keyring::Holds(const std::string& role, std::uint32_t version) const {
  std::lock_guard lock(mu_);
  return secrets_.count({role, version}) > 0;
}

std::map<std::string, std::vector<std::uint32_t>> Keyring::Held() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::vector<std::uint32_t>> out;
  for (const auto& [id, sk] : secrets_) out[id.first].push_back(id.second);
  return out;
}

std::string Keyring::GrantDigest(const std::string& node_id, bool authority) const {
  std::lock_guard lock(mu_);
  std::string text = node_id;
  for (const auto& [id, sk] : secrets_) {
    auto it = ring_.roles.find(id.first);
    if (it == ring_.roles.end()) continue;
    if (!authority && !it->second.holders.count(node_id)) continue;
    text += "|" + id.first + "/" + std::to_string(id.second);
  }
  return text;
}

Result<std::string> Keyring::GrantBundleFor(const std::string& node_id, const std::array<std::uint8_t, 32>& identity_key,
                                            bool authority) const {
  json secrets = json::object();
  std::size_t count = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, sk] : secrets_) {
      auto it = ring_.roles.find(id.first);
      if (it == ring_.roles.end()) continue;
      if (!authority && !it->second.holders.count(node_id)) continue;
      secrets[id.first][std::to_string(id.second)] = HexOf(sk.data(), sk.size());
      ++count;
    }
  }
  if (count == 0) return std::string();
  std::string payload = DumpJson(json{{"node", node_id}, {"secrets", secrets}});
  auto sealed = p2p::NodeIdentity::SealTo(identity_key, reinterpret_cast<const std::uint8_t*>(payload.data()),
                                          payload.size());
  sodium_memzero(payload.data(), payload.size());
  if (!sealed.ok()) return sealed.status();
  return std::string(sealed->begin(), sealed->end());
}

Result<int> Keyring::AcceptBundle(std::string_view sealed) {
  auto opened = identity_.Open(reinterpret_cast<const std::uint8_t*>(sealed.data()), sealed.size());
  if (!opened.ok()) return InvalidArgument("key grant does not open with this node's key");
  std::string text(opened->begin(), opened->end());
  sodium_memzero(opened->data(), opened->size());
  const json j = ParseJson(text);
  sodium_memzero(text.data(), text.size());
  if (!j.is_object() || j.value("node", "") != node_id_ || !j.contains("secrets") || !j["secrets"].is_object()) {
    return InvalidArgument("key grant is not addressed to this node");
  }
  std::lock_guard lock(mu_);
  int added = 0;
  for (const auto& [role, versions] : j["secrets"].items()) {
    auto it = ring_.roles.find(role);
    if (it == ring_.roles.end() || !versions.is_object()) continue;
    for (const auto& [v, hex] : versions.items()) {
      std::uint32_t number = 0;
      try {
        number = static_cast<std::uint32_t>(std::stoul(v));
      } catch (...) {
        continue;
      }
      const RoleVersion* known = it->second.Find(number);
      SecretKey sk{};
      if (known == nullptr || !hex.is_string() || !BytesOfHex(hex.get<std::string>(), sk.data(), sk.size())) continue;
      // Only the secret of the ring's public key is a key of this version.
      if (PublicOf(sk) != known->public_key) continue;
      if (secrets_.emplace(std::make_pair(role, number), sk).second) ++added;
    }
  }
  if (added > 0) {
    if (auto s = SaveSecretsLocked(); !s.ok()) return s;
  }
  return added;
}

Recipient Keyring::NodeRecipient() const {
  Recipient r;
  r.kind = WrapKind::kNode;
  r.name = node_id_;
  // An identity key is a valid Ed25519 key (it signs every frame), so the
  // conversion cannot fail.
  [[maybe_unused]] const int converted =
      crypto_sign_ed25519_pk_to_curve25519(r.public_key.data(), identity_.public_key().data());
  return r;
}

Result<std::string> Keyring::Seal(std::string_view key, std::string_view plaintext,
                                  const std::vector<std::string>& readers) const {
  std::vector<Recipient> recipients;
  {
    std::lock_guard lock(mu_);
    for (const auto& role : readers) {
      auto it = ring_.roles.find(role);
      if (it == ring_.roles.end() || it->second.Latest() == nullptr) {
        return FailedPrecondition("no key for role " + role + " yet (the admin creates role keys; see bzzz keys list)");
      }
      const RoleVersion& v = *it->second.Latest();
      recipients.push_back({WrapKind::kRole, role, v.version, v.public_key});
    }
  }
  recipients.push_back(NodeRecipient());
  return keys::Seal(key, plaintext, recipients);
}

Result<OpenOutcome> Keyring::Open(std::string_view key, std::string_view stored,
                                  const std::function<bool(const std::string& role)>& may_read) const {
  auto envelope = ParseEnvelope(stored);
  if (!envelope.ok()) return Unavailable(envelope.status().message());
  std::vector<std::string> readable;    // roles the reader holds
  std::vector<std::string> retired;     // ... whose version is retired
  std::vector<std::string> not_held;    // ... whose key this node lacks
  for (const auto& w : envelope->wraps) {
    if (w.kind != WrapKind::kRole || !may_read(w.name)) continue;
    readable.push_back(w.name);
    SecretKey sk{};
    PublicKey pk{};
    {
      std::lock_guard lock(mu_);
      auto role = ring_.roles.find(w.name);
      if (role != ring_.roles.end() && w.version < role->second.min_decryption_version) {
        retired.push_back(w.name + " v" + std::to_string(w.version));
        continue;
      }
      auto it = secrets_.find({w.name, w.version});
      const RoleVersion* known = role != ring_.roles.end() ? role->second.Find(w.version) : nullptr;
      if (it == secrets_.end() || known == nullptr) {
        not_held.push_back(w.name + " v" + std::to_string(w.version));
        continue;
      }
      sk = it->second;
      pk = known->public_key;  // the ring's (a secret is held only when it matches it): no scalar multiplication
    }
    auto dk = UnwrapDataKey(w, pk, sk);
    sodium_memzero(sk.data(), sk.size());
    if (!dk) return Unavailable("the wrapped key for " + w.name + " v" + std::to_string(w.version) + " does not open");
    auto plain = OpenPayload(key, *envelope, *dk);
    sodium_memzero(dk->data(), dk->size());
    if (!plain.ok()) return plain.status();
    return OpenOutcome{std::move(plain).value(), w.name, w.version};
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (readable.empty()) {
    return Status(StatusCode::kPermissionDenied,
                  "the caller holds none of the roles that may read this (" + list(ReadersOf(stored)) + ")");
  }
  if (!retired.empty() && not_held.empty()) {
    return Status(StatusCode::kPermissionDenied,
                  "sealed only with retired key versions (" + list(retired) +
                      " are below min_decryption_version; re-wrap before retiring)");
  }
  return Status(StatusCode::kPermissionDenied,
                "this node holds no key that opens it for the caller (needs " + list(not_held) +
                    (retired.empty() ? "" : "; retired: " + list(retired)) + "); read it through a node granted the role");
}

Result<std::optional<std::string>> Keyring::Rewrap(std::string_view key, std::string_view stored,
                                                   const std::vector<std::string>& readers_if_clear) const {
  if (!LooksSealed(stored)) {
    auto sealed = Seal(key, stored, readers_if_clear);
    if (!sealed.ok()) return sealed.status();
    return std::optional<std::string>(std::move(sealed).value());
  }
  auto envelope = ParseEnvelope(stored);
  if (!envelope.ok()) return envelope.status();
  const Recipient self = NodeRecipient();
  const Wrap* own = nullptr;
  bool current = true;
  {
    std::lock_guard lock(mu_);
    for (const auto& w : envelope->wraps) {
      if (w.kind == WrapKind::kNode) {
        if (w.name == node_id_) own = &w;
        continue;
      }
      auto it = ring_.roles.find(w.name);
      if (it != ring_.roles.end() && it->second.Latest() && it->second.Latest()->version != w.version) current = false;
    }
  }
  if (current) return std::optional<std::string>();
  if (own == nullptr) return FailedPrecondition("not sealed by this node (it re-wraps only what it wrote)");
  auto opened = identity_.Open(reinterpret_cast<const std::uint8_t*>(own->sealed.data()), own->sealed.size());
  if (!opened.ok() || opened->size() != sizeof(DataKey)) return Unavailable("this node's wrap does not open");
  DataKey dk{};
  std::copy(opened->begin(), opened->end(), dk.begin());
  sodium_memzero(opened->data(), opened->size());
  Envelope next = *envelope;
  {
    std::lock_guard lock(mu_);
    for (auto& w : next.wraps) {
      if (w.kind != WrapKind::kRole) continue;
      auto it = ring_.roles.find(w.name);
      if (it == ring_.roles.end() || it->second.Latest() == nullptr) continue;
      const RoleVersion& latest = *it->second.Latest();
      if (latest.version == w.version) continue;
      w = WrapDataKey(dk, {WrapKind::kRole, w.name, latest.version, latest.public_key});
    }
  }
  sodium_memzero(dk.data(), dk.size());
  return std::optional<std::string>(EncodeEnvelope(next));
}

std::vector<std::string> Keyring::ReadersOf(std::string_view stored) {
  std::vector<std::string> out;
  auto e = ParseEnvelope(stored);
  if (!e.ok()) return out;
  for (const auto& w : e->wraps) {
    if (w.kind == WrapKind::kRole) out.push_back(w.name);
  }
  return out;
}

}  // namespace bzzz::keys
