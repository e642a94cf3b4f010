#include "cluster/membership.h"
#include "base/file.h"
#include "base/json.h"
#include "base/random.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace bzzz::cluster {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kCacheLimit = 4096;

Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

Result<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Unavailable("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::uint64_t RandomSerial() { return RandomNonZeroU64(); }

std::string RandomTokenId() { return RandomHex(8); }

}  // namespace

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::shared_ptr<Membership>> Membership::Open(const std::string& dir) {
  if (sodium_init() < 0) return Internal("libsodium failed to initialise");
  std::shared_ptr<Membership> m(new Membership(dir));
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    std::lock_guard lock(m->mu_);
    if (auto s = m->LoadLocked(); !s.ok()) return s;
  }
  return m;
}

Status Membership::LoadLocked() {
  const fs::path file = fs::path(dir_) / "membership.json";
  std::error_code ec;
  if (!fs::exists(file, ec)) return Status::Ok();
  auto text = ReadFile(file);
  if (!text.ok()) return text.status();
  const json j = ParseJson(*text);
  auto damaged = [&](const std::string& why) {
    return InvalidArgument(file.string() + " is damaged (" + why +
                           "); restore it from a backup, or move the cluster/ directory away and join again");
  };
  if (!j.is_object() || !j.contains("cluster_key") || !j["cluster_key"].is_string()) return damaged("no cluster key");
  auto key = KeyFromHex(j["cluster_key"].get<std::string>());
  if (!key.ok()) return damaged("bad cluster key");
  cluster_key_ = *key;
  founder_ = j.value("founder", false);
  if (j.contains("credential") && j["credential"].is_string() && !j["credential"].get<std::string>().empty()) {
    auto raw = FromBase64Url(j["credential"].get<std::string>());
    if (!raw.ok()) return damaged("bad credential");
    auto cred = DecodeCredential(*raw, *cluster_key_);
    if (!cred.ok()) return damaged(cred.status().message());
    credential_ = *raw;
    own_ = *cred;
  }
  if (j.contains("revocations") && j["revocations"].is_array()) {
    for (const auto& r : j["revocations"]) {
      if (!r.is_string()) return damaged("bad revocation");
      auto raw = FromBase64Url(r.get<std::string>());
      if (!raw.ok()) return damaged("bad revocation");
      auto v = DecodeRevocation(*raw, *cluster_key_);
      if (!v.ok()) return damaged(v.status().message());
      revocations_[v->node_id] = *raw;
    }
  }
  if (j.contains("token_uses") && j["token_uses"].is_object()) {
    for (const auto& [id, nodes] : j["token_uses"].items()) {
      if (!nodes.is_array()) return damaged("bad token uses");
      for (const auto& n : nodes) {
        if (!n.is_string()) return damaged("bad token uses");
        token_uses_[id].insert(n.get<std::string>());
      }
    }
  }
  const fs::path key_file = fs::path(dir_) / "cluster.key";
  if (fs::exists(key_file, ec)) {
    auto secret = ReadFile(key_file);
    if (!secret.ok()) return secret.status();
    auto ca = ClusterAuthority::FromSecret(*secret);
    // Without its key an authority is still a member: moving the file away
    // keeps the node in the cluster, without the power to admit others.
    const std::string recovery =
        "; restore it from a backup, or move it away to run on as a member that cannot admit nodes";
    if (!ca.ok()) return InvalidArgument(key_file.string() + " is damaged (" + ca.status().message() + ")" + recovery);
    if (ca->public_key() != *cluster_key_) {
      return InvalidArgument(key_file.string() + " is not this cluster's key" + recovery);
    }
    authority_ = std::move(*ca);
  }
  return Status::Ok();
}

Status Membership::SaveLocked() const {
  if (dir_.empty() || !cluster_key_) return Status::Ok();
  json revs = json::array();
  for (const auto& [id, raw] : revocations_) revs.push_back(Base64Url(raw));
  json uses = json::object();
  for (const auto& [id, nodes] : token_uses_) uses[id] = nodes;
  const json j = {{"cluster_id", ClusterIdOf(*cluster_key_)},
                  {"cluster_key", HexOf(cluster_key_->data(), 32)},
                  {"founder", founder_},
                  {"credential", Base64Url(credential_)},
                  {"revocations", revs},
                  {"token_uses", uses}};
  if (authority_) {
    const fs::path key_file = fs::path(dir_) / "cluster.key";
    std::error_code ec;
    if (!fs::exists(key_file, ec)) {
      if (auto s = WriteFileAtomic(key_file.string(), authority_->secret(), 0600); !s.ok()) return s;
    }
  }
  return WriteFileAtomic((fs::path(dir_) / "membership.json").string(), j.dump(2) + "\n", 0600);
}

bool Membership::HasCluster() const {
  std::lock_guard lock(mu_);
  return cluster_key_.has_value();
}
bool Membership::Admitted() const {
  std::lock_guard lock(mu_);
  return own_.has_value();
}
bool Membership::IsAuthority() const {
  std::lock_guard lock(mu_);
  return authority_.has_value();
}
bool Membership::Founder() const {
  std::lock_guard lock(mu_);
  return founder_;
}
Key Membership::cluster_key() const {
  std::lock_guard lock(mu_);
  return cluster_key_.value_or(Key{});
}
std::string Membership::cluster_id() const {
  std::lock_guard lock(mu_);
  return cluster_key_ ? ClusterIdOf(*cluster_key_) : "";
}
std::string Membership::credential() const {
  std::lock_guard lock(mu_);
  return credential_;
}
std::optional<Credential> Membership::own() const {
  std::lock_guard lock(mu_);
  return own_;
}

Status Membership::Found(const Key& node_key, NodeRole role, std::string_view name,
                         std::chrono::milliseconds validity) {
  std::lock_guard lock(mu_);
  if (cluster_key_) return FailedPrecondition("this node already belongs to cluster " + ClusterIdOf(*cluster_key_));
  ClusterAuthority ca = ClusterAuthority::Generate();
  Credential c;
  c.node_key = node_key;
  c.role = role;
  c.serial = RandomSerial();
  c.issued_at_ms = NowMs();
  c.expires_at_ms = c.issued_at_ms + validity.count();
  c.name = std::string(name);
  const std::string encoded = EncodeCredential(c, ca);
  cluster_key_ = ca.public_key();
  c.cluster_key = ca.public_key();
  credential_ = encoded;
  own_ = c;
  founder_ = true;
  authority_ = std::move(ca);
  return SaveLocked();
}

Status Membership::Adopt(const Key& cluster_key) {
  std::lock_guard lock(mu_);
  if (cluster_key_) {
    if (*cluster_key_ == cluster_key) return Status::Ok();
    return Conflict("this node belongs to cluster " + ClusterIdOf(*cluster_key_) + ", the join token is for " +
                    ClusterIdOf(cluster_key));
  }
  cluster_key_ = cluster_key;
  return SaveLocked();
}

Status Membership::Admit(std::string_view credential, std::string_view cluster_secret, const Key& node_key) {
  std::lock_guard lock(mu_);
  if (!cluster_key_) return FailedPrecondition("no cluster adopted");
  auto c = DecodeCredential(credential, *cluster_key_);
  if (!c.ok()) return c.status();
  if (c->node_key != node_key) return InvalidArgument("the credential is for another node's key");
  if (!cluster_secret.empty() && !authority_) {
    auto ca = ClusterAuthority::FromSecret(cluster_secret);
    if (!ca.ok()) return ca.status();
    if (ca->public_key() != *cluster_key_) return InvalidArgument("the cluster key sent is not this cluster's");
    authority_ = std::move(*ca);
  }
  credential_ = std::string(credential);
  own_ = *c;
  return SaveLocked();
}

Verdict Membership::Check(std::string_view credential, const Key& sender, std::int64_t now_ms) const {
  Verdict v;
  if (credential.empty()) {
    v.refused = "no_credential";
    return v;
  }
  std::lock_guard lock(mu_);
  if (!cluster_key_) {
    v.refused = "no_cluster";
    return v;
  }
  auto it = cache_.find(credential);
  if (it == cache_.end()) {
    auto c = DecodeCredential(credential, *cluster_key_);
    if (!c.ok()) {
      v.refused = c.status().message() == "credential of another cluster" ? "foreign_cluster" : "bad_credential";
      // A credential signed by another key fails its signature first: tell
      // the two apart by the key it names.
      if (v.refused == "bad_credential" && credential.size() > 36 &&
          std::memcmp(credential.data() + 4, cluster_key_->data(), 32) != 0) {
        v.refused = "foreign_cluster";
      }
      return v;
    }
    if (cache_.size() >= kCacheLimit) cache_.erase(cache_.begin());
    it = cache_.emplace(std::string(credential), *c).first;
    seen_[NodeIdOfKey(c->node_key)] = *c;
  }
  const Credential& c = it->second;
  if (c.node_key != sender) {
    v.refused = "key_mismatch";  // a credential replayed by another key
    return v;
  }
  if (c.expires_at_ms <= now_ms) {
    v.refused = "expired";
    return v;
  }
  if (revocations_.contains(NodeIdOfKey(c.node_key))) {
    v.refused = "revoked";
    return v;
  }
  v.role = c.role;
  return v;
}

Result<std::string> Membership::CreateToken(NodeRole role, std::chrono::milliseconds ttl, std::uint32_t uses) const {
  std::lock_guard lock(mu_);
  if (!authority_) return FailedPrecondition("this node does not hold the cluster key (ask an admin-capable member)");
  if (uses == 0) return InvalidArgument("a token allows at least one use");
  if (ttl.count() <= 0) return InvalidArgument("a token's ttl must be positive");
  JoinToken t;
  t.id = RandomTokenId();
  t.role = role;
  t.expires_at_ms = NowMs() + ttl.count();
  t.uses = uses;
  return EncodeJoinToken(t, *authority_);
}

Result<Membership::Admission> Membership::AdmitWithToken(std::string_view token_text, const Key& node_key,
                                                         std::string_view name, std::chrono::milliseconds validity,
                                                         std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (!authority_) return FailedPrecondition("this node does not hold the cluster key");
  auto token = DecodeJoinToken(token_text);
  if (!token.ok()) return token.status();
  if (token->cluster_key != *cluster_key_) return PermissionDenied("join token of another cluster");
  const std::string node_id = NodeIdOfKey(node_key);
  if (revocations_.contains(node_id)) return PermissionDenied("node " + node_id + " has been revoked");
  auto& used = token_uses_[token->id];
  const bool repeated = used.contains(node_id);
  if (!repeated) {
    if (token->expires_at_ms <= now_ms) return PermissionDenied("join token " + token->id + " has expired");
    if (used.size() >= token->uses) {
      return PermissionDenied("join token " + token->id + " has been used " + std::to_string(used.size()) +
                              " time(s) of " + std::to_string(token->uses));
    }
  }
  Credential c;
  c.node_key = node_key;
  c.role = token->role;
  c.serial = RandomSerial();
  c.issued_at_ms = now_ms;
  c.expires_at_ms = now_ms + validity.count();
  c.name = std::string(name.substr(0, 64));
  Admission a;
  a.credential = EncodeCredential(c, *authority_);
  a.token = *token;
  a.repeated = repeated;
  used.insert(node_id);
  if (auto s = SaveLocked(); !s.ok()) {
    if (!repeated) used.erase(node_id);
    return s;
  }
  return a;
}

Result<std::string> Membership::Renew(const Credential& current, std::chrono::milliseconds validity,
                                      std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (!authority_) return FailedPrecondition("this node does not hold the cluster key");
  if (current.cluster_key != *cluster_key_) return PermissionDenied("credential of another cluster");
  if (revocations_.contains(NodeIdOfKey(current.node_key))) return PermissionDenied("the node has been revoked");
  if (current.expires_at_ms <= now_ms) return PermissionDenied("an expired credential cannot be renewed");
  Credential c = current;
  c.serial = RandomSerial();
  c.issued_at_ms = now_ms;
  c.expires_at_ms = now_ms + validity.count();
  return EncodeCredential(c, *authority_);
}

void Membership::RecordTokenUse(const std::string& token_id, const std::string& node_id) {
  std::lock_guard lock(mu_);
  if (token_uses_[token_id].insert(node_id).second) (void)SaveLocked();
}

Result<std::string> Membership::Revoke(const std::string& node_id, std::string_view reason, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (!authority_) return FailedPrecondition("this node does not hold the cluster key");
  if (!IsLowerHex(node_id, 40)) {
    return InvalidArgument("a node id is 40 lower-case hex digits");
  }
  if (own_ && NodeIdOfKey(own_->node_key) == node_id) return InvalidArgument("a node cannot revoke itself");
  if (auto it = revocations_.find(node_id); it != revocations_.end()) return it->second;
  Revocation r;
  r.node_id = node_id;
  r.revoked_at_ms = now_ms;
  r.reason = std::string(reason);
  std::string encoded = EncodeRevocation(r, *authority_);
  revocations_[node_id] = encoded;
  if (auto s = SaveLocked(); !s.ok()) {
    revocations_.erase(node_id);
    return s;
  }
  return encoded;
}

Result<bool> Membership::ApplyRevocation(std::string_view encoded) {
  std::lock_guard lock(mu_);
  if (!cluster_key_) return FailedPrecondition("no cluster");
  auto r = DecodeRevocation(encoded, *cluster_key_);
  if (!r.ok()) return r.status();
  if (revocations_.contains(r->node_id)) return false;
  revocations_[r->node_id] = std::string(encoded);
  if (auto s = SaveLocked(); !s.ok()) return s;
  return true;
}

bool Membership::IsRevoked(const std::string& node_id) const {
  std::lock_guard lock(mu_);
  return revocations_.contains(node_id);
}

std::vector<std::string> Membership::EncodedRevocations() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, raw] : revocations_) out.push_back(raw);
  return out;
}

std::vector<Revocation> Membership::Revocations() const {
  std::lock_guard lock(mu_);
  std::vector<Revocation> out;
  for (const auto& [id, raw] : revocations_) {
    if (auto r = DecodeRevocation(raw, *cluster_key_); r.ok()) out.push_back(*r);
  }
  return out;
}

Result<std::array<std::uint8_t, 64>> Membership::SignAsCluster(std::string_view message) const {
  std::lock_guard lock(mu_);
  if (!authority_) return FailedPrecondition("this node does not hold the cluster key");
  return authority_->Sign(message);
}

std::vector<MemberInfo> Membership::Members() const {
  std::lock_guard lock(mu_);
  std::map<std::string, Credential> all = seen_;
  if (own_) all[NodeIdOfKey(own_->node_key)] = *own_;
  std::vector<MemberInfo> out;
  for (const auto& [id, c] : all) {
    out.push_back({id, c.name, c.role, c.serial, c.issued_at_ms, c.expires_at_ms, revocations_.contains(id)});
  }
  return out;
}

}  // namespace bzzz::cluster
