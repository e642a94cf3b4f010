#include "keys/service.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/hex.h"
#include "base/json.h"
#include "base/log.h"
#include "base/clock.h"
#include "base/threads.h"
#include "cluster/membership.h"
#include "dht/record_store.h"
#include "p2p/identity.h"
#include "p2p/p2p.h"

namespace bzzz::keys {

namespace {
constexpr SubsystemLog kLog{"keys"};
using nlohmann::json;
constexpr std::string_view kRingRecord = "keys/ring";
std::string GrantRecord(const std::string& node_id) { return "keys/grant/" + node_id; }
}  // namespace

class KeyServices::Impl {
 public:
  std::shared_ptr<Keyring> keyring;
  p2p::P2pNode* p2p = nullptr;
  std::shared_ptr<cluster::Membership> membership;
  dht::RecordStore* records = nullptr;
  KeyServicesOptions options;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool round_requested = false;  // a change to publish before the next interval
  std::thread loop;
  std::function<std::string(std::uint64_t*)> admin;
  std::function<std::string()> rewrap_progress;
  std::uint64_t published_revision = 0;             // ring revision this node last put
  std::map<std::string, std::string> grant_digests;  // node id -> digest of the grant last put (admin)
  std::string last_error;
  std::mutex round_mu;  // one round at a time

  prometheus::Gauge* revision_gauge = nullptr;
  prometheus::Gauge* held_gauge = nullptr;
  prometheus::Counter* grants_published = nullptr;
  prometheus::Counter* grants_accepted = nullptr;

  ClusterSigner Signer() const {
    auto m = membership;
    return [m](std::string_view message) { return m->SignAsCluster(message); };
  }

  // The admin and its term; "" when unknown.
  std::string Admin(std::uint64_t* term) {
    std::function<std::string(std::uint64_t*)> f;
    {
      std::lock_guard lock(mu);
      f = admin;
    }
    if (!f) {
      // Without an election (tests, single node), an authority acts alone.
      if (term) *term = 0;
      return options.solo && membership->IsAuthority() ? keyring->node_id() : std::string();
    }
    return f(term);
  }

  void UpdateGauges() {
    if (revision_gauge) revision_gauge->Set(static_cast<double>(keyring->ring().revision));
    if (held_gauge) {
      std::size_t n = 0;
      for (const auto& [role, versions] : keyring->Held()) n += versions.size();
      held_gauge->Set(static_cast<double>(n));
    }
  }

  void Round() {
    std::lock_guard round(round_mu);
    {
      std::lock_guard lock(mu);
      if (stopping) return;
    }
    std::string error;
    // 1. The newest ring any authority published.
    if (records != nullptr) {
      auto copies = records->GetEachWriter(kRingRecord);
      if (copies.ok()) {
        for (const auto& r : *copies) {
          auto adopted = keyring->Adopt(r.content);
          if (!adopted.ok()) {
            error = "ring from " + r.writer + ": " + adopted.status().message();
          } else if (*adopted) {
            kLog.info("keys: adopted key ring revision {} from {}", keyring->ring().revision, r.writer);
          }
        }
      } else if (!copies.status().IsNotFound()) {
        error = "reading the key ring: " + copies.status().message();
      }
    }
    // 2. The admin creates the configured roles' keys.
    std::uint64_t term = 0;
    const std::string admin_id = Admin(&term);
    const bool is_admin = admin_id == keyring->node_id() && membership->IsAuthority();
    if (is_admin) {
      auto created = keyring->EnsureRoles(options.roles, term, Signer());
      if (!created.ok()) error = "creating role keys: " + created.status().message();
      else if (*created) kLog.info("keys: created role keys, ring revision {}", keyring->ring().revision);
    }
    // 3. Authorities republish the newest ring.
    const std::string signed_ring = keyring->signed_ring();
    const std::uint64_t revision = keyring->ring().revision;
    if (records != nullptr && membership->IsAuthority() && !signed_ring.empty()) {
      bool publish = false;
      {
        std::lock_guard lock(mu);
        publish = revision != published_revision;
      }
      if (publish) {
        if (auto s = records->Put(kRingRecord, signed_ring, "application/json"); s.ok()) {
          std::lock_guard lock(mu);
          published_revision = revision;
        } else {
          error = "publishing the key ring: " + s.message();
        }
      }
    }
    // 4. The admin seals grants for every member it sees.
    if (records != nullptr && is_admin) {
      std::map<std::string, bool> authority_of;
      for (const auto& m : membership->Members()) {
        if (!m.revoked) authority_of[m.node_id] = m.role == cluster::NodeRole::kAdminCapable;
      }
      for (const auto& peer : p2p->Peers()) {
        auto it = authority_of.find(peer.node_id);
        if (it == authority_of.end() || membership->IsRevoked(peer.node_id)) continue;
        const std::string digest = keyring->GrantDigest(peer.node_id, it->second);
        {
          std::lock_guard lock(mu);
          if (grant_digests[peer.node_id] == digest) continue;
        }
        auto bundle = keyring->GrantBundleFor(peer.node_id, peer.public_key, it->second);
        if (!bundle.ok()) {
          error = "sealing a grant for " + peer.node_id + ": " + bundle.status().message();
          continue;
        }
        if (bundle->empty()) continue;
        if (auto s = records->Put(GrantRecord(peer.node_id), *bundle); !s.ok()) {
          error = "publishing the grant of " + peer.node_id + ": " + s.message();
          continue;
        }
        if (grants_published) grants_published->Increment();
        std::lock_guard lock(mu);
        grant_digests[peer.node_id] = digest;
      }
    }
    // 5. Every node takes what it was granted (a new admin too: what the
    // previous admin sealed for it).
    if (records != nullptr) {
      auto grants = records->GetEachWriter(GrantRecord(keyring->node_id()));
      if (grants.ok()) {
        for (const auto& g : *grants) {
          auto added = keyring->AcceptBundle(g.content);
          if (!added.ok()) {
            error = "grant from " + g.writer + ": " + added.status().message();
          } else if (*added > 0) {
            if (grants_accepted) grants_accepted->Increment(*added);
            kLog.info("keys: received {} role key(s) from {}", *added, g.writer);
          }
        }
      } else if (!grants.status().IsNotFound()) {
        error = "reading this node's grant: " + grants.status().message();
      }
    }
    UpdateGauges();
    std::lock_guard lock(mu);
    if (!error.empty() && error != last_error) kLog.warn("keys: {}", error);
    last_error = error;
  }

  void Run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      Round();
      lock.lock();
      cv.wait_for(lock, options.poll_interval, [this] { return stopping || round_requested; });
      round_requested = false;
    }
  }

  json RingJson(const http::Request* req) {
    const Ring ring = keyring->ring();
    const auto held = keyring->Held();
    json roles = json::array();
    for (const auto& [name, e] : ring.roles) {
      json versions = json::array();
      auto h = held.find(name);
      for (const auto& v : e.versions) {
        const bool is_held =
            h != held.end() && std::find(h->second.begin(), h->second.end(), v.version) != h->second.end();
        versions.push_back({{"version", v.version},
                            {"created_at", FormatIso8601(SystemTime(std::chrono::milliseconds(v.created_ms)))},
                            {"public_key", HexOf(v.public_key.data(), v.public_key.size())},
                            {"retired", v.version < e.min_decryption_version},
                            {"held_here", is_held}});
      }
      roles.push_back({{"role", name},
                       {"latest_version", e.Latest() ? e.Latest()->version : 0},
                       {"min_decryption_version", e.min_decryption_version},
                       {"holders", json(std::vector<std::string>(e.holders.begin(), e.holders.end()))},
                       {"versions", versions}});
    }
    std::uint64_t term = 0;
    const std::string admin_id = Admin(&term);
    json out = {{"revision", ring.revision},
                {"term", ring.term},
                {"generation", keyring->Generation()},
                {"updated_at", ring.updated_ms ? FormatIso8601(SystemTime(std::chrono::milliseconds(ring.updated_ms))) : ""},
                {"updated_by", ring.updated_by},
                {"roles", roles},
                {"node", {{"id", keyring->node_id()}, {"authority", membership->IsAuthority()}, {"admin", admin_id}}}};
    std::function<std::string()> progress;
    {
      std::lock_guard lock(mu);
      progress = rewrap_progress;
      out["last_error"] = last_error;
    }
    out["rewrap"] = progress ? ParseJson(progress()) : json(nullptr);
    (void)req;
    return out;
  }

  // Key changes are the admin's: anyone else says who to ask.
  std::optional<http::Response> RefuseUnlessAdmin(const http::Request& req, std::uint64_t* term) {
    const std::string admin_id = Admin(term);
    if (admin_id == keyring->node_id() && membership->IsAuthority()) return std::nullopt;
    return http::ErrorResponse(409, "conflict",
                               admin_id.empty() ? "no admin is elected; key changes wait for one"
                                                : "key changes are made by the admin: send this to node " + admin_id,
                               req.request_id);
  }

  // {"role": "..."} and the rest of a change's body.
  static std::optional<json> Body(const http::Request& req, std::string* why) {
    json j = ParseJson(req.body);
    if (!j.is_object() || !j.contains("role") || !j["role"].is_string()) {
      *why = "body must be a JSON object with a string 'role'";
      return std::nullopt;
    }
    if (!ValidRoleName(j["role"].get<std::string>())) {
      *why = "role: letters, digits, '_' and '-', at most 64 (not any)";
      return std::nullopt;
    }
    return j;
  }

  http::Response Changed(const http::Request& req, int status, json extra) {
    PollAfterChange();
    extra["ring"] = RingJson(&req);
    return http::Response::Json(status, DumpJson(extra));
  }

  // Publishes a change at once rather than at the next interval (the
  // loop's thread runs the round).
  void PollAfterChange() {
    {
      std::lock_guard lock(mu);
      round_requested = true;
    }
    cv.notify_all();
  }
};

KeyServices::~KeyServices() { Stop(); }

Result<std::shared_ptr<KeyServices>> KeyServices::Start(std::shared_ptr<Keyring> keyring, p2p::P2pNode& p2p,
                                                        std::shared_ptr<cluster::Membership> membership,
                                                        dht::RecordStore* records, KeyServicesOptions options,
                                                        prometheus::Registry* metrics) {
  std::shared_ptr<KeyServices> self(new KeyServices(keyring));
  auto impl = std::make_shared<Impl>();
  impl->keyring = std::move(keyring);
  impl->p2p = &p2p;
  impl->membership = std::move(membership);
  impl->records = records;
  impl->options = std::move(options);
  if (metrics != nullptr) {
    impl->revision_gauge = &prometheus::BuildGauge()
                                .Name("bzzz_keys_ring_revision")
                                .Help("Revision of the role key ring this node has adopted")
                                .Register(*metrics)
                                .Add({});
    impl->held_gauge = &prometheus::BuildGauge()
                            .Name("bzzz_keys_secrets_held")
                            .Help("Role key versions whose secret this node holds")
                            .Register(*metrics)
                            .Add({});
    auto& grants = prometheus::BuildCounter()
                       .Name("bzzz_keys_grants_total")
                       .Help("Role key grants published (as admin) and role key versions received")
                       .Register(*metrics);
    impl->grants_published = &grants.Add({{"event", "published"}});
    impl->grants_accepted = &grants.Add({{"event", "received"}});
  }
  self->impl_ = impl;
  // The first round before serving: a joining node learns the ring (and so
  // can seal) before its first write.
  impl->Round();
  impl->loop = NamedThread("keys", [impl] { impl->Run(); });
  return self;
}

void KeyServices::Stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->loop.joinable()) impl_->loop.join();
}

void KeyServices::SetAdminSource(std::function<std::string(std::uint64_t*)> admin) {
  std::lock_guard lock(impl_->mu);
  impl_->admin = std::move(admin);
}

void KeyServices::SetRewrapProgress(std::function<std::string()> progress) {
  std::lock_guard lock(impl_->mu);
  impl_->rewrap_progress = std::move(progress);
}

void KeyServices::PollOnce() { impl_->Round(); }

bool KeyServices::Refresh(std::chrono::milliseconds timeout) {
  auto state = [this] {
    std::size_t held = 0;
    for (const auto& [role, versions] : keyring_->Held()) held += versions.size();
    return std::make_pair(keyring_->ring().revision, held);
  };
  const auto before = state();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    impl_->Round();
    if (state() != before) return true;
    if (std::chrono::steady_clock::now() + std::chrono::milliseconds(200) > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Status KeyServices::RegisterRoutes(http::Router& router) {
  http::RouteTable routes(router, "keys");
  auto n = impl_;
  routes.AddBlocking(http::Method::kGet, "/api/v1/keys", "keys:read",
                     "the role key ring, what this node holds and the re-wrap progress",
                     [n](http::Request& req) { return http::Response::Json(200, DumpJson(n->RingJson(&req))); });
  routes.AddBlocking(
      http::Method::kPost, "/api/v1/keys/rotate", "keys:admin", "add a version of a role key (admin only)",
      [n](http::Request& req) {
        std::string why;
        auto body = Impl::Body(req, &why);
        if (!body) return http::ErrorResponse(400, "bad_request", why, req.request_id);
        std::uint64_t term = 0;
        if (auto refused = n->RefuseUnlessAdmin(req, &term)) return *refused;
        const std::string role = (*body)["role"].get<std::string>();
        auto v = n->keyring->Rotate(role, term, n->Signer());
        if (!v.ok()) return http::ErrorFromStatus(v.status(), req.request_id);
        kLog.info("keys: {} rotated to version {} by {}", role, v->version, req.identity.principal);
        return n->Changed(req, 201, {{"role", role}, {"version", v->version}});
      });
  routes.AddBlocking(
      http::Method::kPost, "/api/v1/keys/config", "keys:admin",
      "retire the versions of a role key below min_decryption_version (admin only)", [n](http::Request& req) {
        std::string why;
        auto body = Impl::Body(req, &why);
        if (!body) return http::ErrorResponse(400, "bad_request", why, req.request_id);
        if (!body->contains("min_decryption_version") || !(*body)["min_decryption_version"].is_number_unsigned()) {
          return http::ErrorResponse(400, "bad_request", "min_decryption_version must be a positive integer",
                                     req.request_id);
        }
        std::uint64_t term = 0;
        if (auto refused = n->RefuseUnlessAdmin(req, &term)) return *refused;
        const std::string role = (*body)["role"].get<std::string>();
        const auto version = (*body)["min_decryption_version"].get<std::uint64_t>();
        if (version > 0xffffffffu) return http::ErrorResponse(400, "bad_request", "version too large", req.request_id);
        if (auto s = n->keyring->SetMinDecryptionVersion(role, static_cast<std::uint32_t>(version), term, n->Signer());
            !s.ok()) {
          return http::ErrorFromStatus(s, req.request_id);
        }
        kLog.info("keys: {} min_decryption_version {} by {}", role, version, req.identity.principal);
        return n->Changed(req, 200, {{"role", role}, {"min_decryption_version", version}});
      });
  routes.AddBlocking(
      http::Method::kPost, "/api/v1/keys/grant", "keys:admin",
      "grant a role key to a worker node, or withdraw it (admin only)", [n](http::Request& req) {
        std::string why;
        auto body = Impl::Body(req, &why);
        if (!body) return http::ErrorResponse(400, "bad_request", why, req.request_id);
        if (!body->contains("node_id") || !(*body)["node_id"].is_string() ||
            (body->contains("holds") && !(*body)["holds"].is_boolean())) {
          return http::ErrorResponse(400, "bad_request", "body needs a string 'node_id' and an optional boolean 'holds'",
                                     req.request_id);
        }
        std::uint64_t term = 0;
        if (auto refused = n->RefuseUnlessAdmin(req, &term)) return *refused;
        const std::string role = (*body)["role"].get<std::string>();
        const std::string node = (*body)["node_id"].get<std::string>();
        const bool holds = body->value("holds", true);
        if (auto s = n->keyring->SetHolder(role, node, holds, term, n->Signer()); !s.ok()) {
          return http::ErrorFromStatus(s, req.request_id);
        }
        kLog.info("keys: {} {} {} by {}", node, holds ? "granted" : "no longer granted", role, req.identity.principal);
        return n->Changed(req, 200, {{"role", role}, {"node_id", node}, {"holds", holds}});
      });
  return routes.Done();
}

std::string KeyServices::StatusJson(std::string_view section) const {
  (void)section;
  const Ring ring = keyring_->ring();
  json roles = json::object();
  for (const auto& [name, e] : ring.roles) {
    roles[name] = {{"latest_version", e.Latest() ? e.Latest()->version : 0},
                   {"min_decryption_version", e.min_decryption_version}};
  }
  json held = json::object();
  for (const auto& [role, versions] : keyring_->Held()) held[role] = versions;
  return DumpJson(json{{"revision", ring.revision}, {"roles", roles}, {"held", held}});
}

std::vector<ops::ShutdownStep> KeyServices::ShutdownSteps(const config::Config& config) {
  (void)config;
  std::weak_ptr<KeyServices> weak = std::static_pointer_cast<KeyServices>(shared_from_this());
  return {{"keys.stop", ops::kPriorityStopServices, std::chrono::milliseconds(3000), [weak] {
             if (auto self = weak.lock()) self->Stop();
             return Status::Ok();
           }}};
}

}  // namespace bzzz::keys
