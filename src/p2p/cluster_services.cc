#include "p2p/cluster_services.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/threads.h"
#include "config/loader.h"
#include "p2p/topics.h"

namespace bzzz::p2p {

using nlohmann::json;
namespace cl = bzzz::cluster;

namespace {

constexpr SubsystemLog kLog{"cluster"};

constexpr std::string_view kMembershipTopic = "bzzz/internal/membership/v1";

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }

Status Denied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }

std::string IsoOfMs(std::int64_t ms) {
  return FormatIso8601(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

std::string HowToJoin() {
  return "create a join token on a member of the cluster (bzzz cluster token create [--role admin-capable]) "
         "and start this node with --join TOKEN (or BZZZ_JOIN_TOKEN)";
}

}  // namespace

Result<std::shared_ptr<cl::Membership>> PrepareMembership(const config::Config& config,
                                                          const PublicKey& node_key, bool bootstrap_only) {
  const std::string dir = config.node.data_dir.empty() ? "" : config.node.data_dir + "/cluster";
  auto opened = cl::Membership::Open(dir);
  if (!opened.ok()) return opened.status();
  std::shared_ptr<cl::Membership> m = std::move(opened).value();
  const std::string& token_text = config.p2p.join_token;
  if (m->Admitted()) {
    if (!token_text.empty()) {
      auto token = cl::DecodeJoinToken(token_text);
      if (token.ok() && token->cluster_key != m->cluster_key()) {
        return FailedPrecondition("this node is a member of cluster " + m->cluster_id() +
                                  "; the join token is for cluster " + cl::ClusterIdOf(token->cluster_key) +
                                  ". Move " + dir + " away to leave the old cluster first");
      }
      kLog.info("cluster: already a member of {}; the join token is not needed any more", m->cluster_id());
    }
    return m;
  }
  if (!token_text.empty()) {
    auto token = cl::DecodeJoinToken(token_text);
    if (!token.ok()) return InvalidArgument("p2p.join_token: " + token.status().message());
    if (token->expires_at_ms <= cl::NowMs()) {
      return InvalidArgument("p2p.join_token: token " + token->id + " expired at " + IsoOfMs(token->expires_at_ms) +
                             "; " + HowToJoin());
    }
    if (auto s = m->Adopt(token->cluster_key); !s.ok()) return s;
    return m;
  }
  if (m->HasCluster()) {
    return FailedPrecondition("this node started joining cluster " + m->cluster_id() +
                              " but was not admitted and has no join token now; " + HowToJoin());
  }
  if (bootstrap_only || !config.p2p.bootstrap.empty()) {
    return FailedPrecondition(std::string(bootstrap_only ? "a dht-bootstrap node" : "a node with bootstrap peers") +
                              " needs a cluster credential and has none: " + HowToJoin() +
                              " (a node without bootstrap peers founds a new cluster)");
  }
  const auto role = config.election.admin_capable ? cl::NodeRole::kAdminCapable : cl::NodeRole::kWorker;
  cl::Key key;
  std::copy(node_key.begin(), node_key.end(), key.begin());
  if (auto s = m->Found(key, role, config.node.name, config.p2p.credential_ttl); !s.ok()) return s;
  kLog.info("cluster: founded cluster {}", m->cluster_id());
  return m;
}

Status AwaitAdmission(P2pNode& p2p, cl::Membership& membership, const config::Config& config) {
  if (membership.Admitted()) return Status::Ok();
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    bool admitted = false;
    std::string refused;
  };
  auto wait = std::make_shared<Wait>();
  const PublicKey own = p2p.identity().public_key();
  cl::Membership* m = &membership;
  p2p.OnDirect("cluster.admit", [wait, m, own](const Message& msg) {
    const json j = ParseJson(msg.envelope.data);
    if (!j.is_object() || !j.contains("credential") || !j["credential"].is_string()) return;
    auto credential = cl::FromBase64Url(j["credential"].get<std::string>());
    std::string secret;
    if (j.contains("cluster_secret") && j["cluster_secret"].is_string()) {
      auto raw = cl::FromBase64Url(j["cluster_secret"].get<std::string>());
      if (raw.ok()) secret = *raw;
    }
    if (!credential.ok()) return;
    cl::Key key;
    std::copy(own.begin(), own.end(), key.begin());
    if (auto s = m->Admit(*credential, secret, key); !s.ok()) {
      kLog.warn("cluster: admission answer from {} refused: {}", msg.envelope.from, s.message());
      return;
    }
    if (j.contains("revocations") && j["revocations"].is_array()) {
      for (const auto& r : j["revocations"]) {
        if (!r.is_string()) continue;
        if (auto raw = cl::FromBase64Url(r.get<std::string>()); raw.ok()) (void)m->ApplyRevocation(*raw);
      }
    }
    std::lock_guard lock(wait->mu);
    wait->admitted = true;
    wait->cv.notify_all();
  });
  p2p.OnDirect("cluster.refused", [wait](const Message& msg) {
    const json j = ParseJson(msg.envelope.data);
    std::lock_guard lock(wait->mu);
    wait->refused = j.is_object() && j.contains("reason") && j["reason"].is_string()
                        ? j["reason"].get<std::string>()
                        : "refused";
    wait->cv.notify_all();
  });
  kLog.info("cluster: asking to be admitted to cluster {} (up to {} s)", membership.cluster_id(),
               config.p2p.join_timeout.count() / 1000);
  const auto deadline = std::chrono::steady_clock::now() + config.p2p.join_timeout;
  Status result = Unavailable("not admitted to cluster " + membership.cluster_id() + " within p2p.join_timeout (" +
                              std::to_string(config.p2p.join_timeout.count()) +
                              " ms): is the cluster's admin (or its founder) reachable from the bootstrap peers?");
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto s = p2p.RequestAdmission(config.p2p.join_token, config.node.name); !s.ok()) {
      kLog.warn("cluster: join request not sent: {}", s.message());
    }
    std::unique_lock lock(wait->mu);
    wait->cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2)),
                        [&] { return wait->admitted || !wait->refused.empty(); });
    if (wait->admitted) {
      result = Status::Ok();
      break;
    }
    if (!wait->refused.empty()) {
      result = Denied("the cluster refused this node: " + wait->refused);
      break;
    }
  }
  p2p.OnDirect("cluster.admit", [](const Message&) {});
  p2p.OnDirect("cluster.refused", [](const Message&) {});
  if (!result.ok()) return result;
  const auto own_cred = membership.own();
  kLog.info("cluster: admitted to cluster {} as {} (credential valid until {})", membership.cluster_id(),
               own_cred ? cl::NodeRoleName(own_cred->role) : "?",
               own_cred ? IsoOfMs(own_cred->expires_at_ms) : "?");
  p2p.MembershipChanged();
  return Status::Ok();
}

// --- ClusterServices ---

class ClusterServices::Impl {
 public:
  Impl(P2pNode& p, std::shared_ptr<cl::Membership> m, const config::Config& c)
      : p2p(p), membership(std::move(m)), config(c) {}

  P2pNode& p2p;
  std::shared_ptr<cl::Membership> membership;
  config::Config config;
  std::mutex gate_mu;
  std::function<std::string()> gate;
  std::function<void(const ClusterServices::JoinOutcome&)> join_listener;  // guarded by gate_mu
  std::atomic<std::uint64_t> admitted{0}, refused{0}, revocations_applied{0}, renewals{0};
  prometheus::Counter* violations_join = nullptr;

  std::mutex loop_mu;
  std::condition_variable loop_cv;
  bool stopping = false;
  std::thread loop;

  std::string MayAdmit() {
    std::lock_guard lock(gate_mu);
    if (gate) return gate();
    return membership->Founder() ? "" : "the election has not started";
  }

  void TellJoin(const ClusterServices::JoinOutcome& outcome) {
    std::lock_guard lock(gate_mu);
    if (join_listener) join_listener(outcome);
  }

  void OnJoin(const JoinRequest& r) {
    if (const std::string why = MayAdmit(); !why.empty()) return;  // the admin answers
    cl::Key key;
    std::copy(r.node_key.begin(), r.node_key.end(), key.begin());
    auto a = membership->AdmitWithToken(r.token, key, r.name, config.p2p.credential_ttl, cl::NowMs());
    if (!a.ok()) {
      ++refused;
      if (violations_join) violations_join->Increment();
      kLog.warn("cluster: join of {} ({}) refused: {}", r.node_id, r.name, a.status().message());
      ClusterServices::JoinOutcome refusal;
      refusal.node_id = r.node_id;
      refusal.name = r.name;
      refusal.reason = a.status().message();
      TellJoin(refusal);
      (void)p2p.SendDirectToKey(r.node_key, "cluster.refused", json{{"reason", a.status().message()}}.dump());
      return;
    }
    json reply = {{"credential", cl::Base64Url(a->credential)}};
    if (a->token.role == cl::NodeRole::kAdminCapable) {
      if (auto secret = ClusterSecret(); !secret.empty()) reply["cluster_secret"] = cl::Base64Url(secret);
    }
    json revs = json::array();
    for (const auto& raw : membership->EncodedRevocations()) revs.push_back(cl::Base64Url(raw));
    reply["revocations"] = revs;
    if (auto s = p2p.SendDirectToKey(r.node_key, "cluster.admit", reply.dump()); !s.ok()) {
      kLog.warn("cluster: admission of {} not sent: {}", r.node_id, s.message());
      return;
    }
    if (!a->repeated) {
      ++admitted;
      kLog.info("cluster: admitted {} ({}) as {} with token {}", r.node_id, r.name,
                   cl::NodeRoleName(a->token.role), a->token.id);
      ClusterServices::JoinOutcome admission;
      admission.admitted = true;
      admission.node_id = r.node_id;
      admission.name = r.name;
      admission.role = std::string(cl::NodeRoleName(a->token.role));
      admission.token_id = a->token.id;
      TellJoin(admission);
      (void)p2p.Publish(kMembershipTopic, "token-use", json{{"token", a->token.id}, {"node_id", r.node_id}}.dump());
    }
  }

  // The cluster key's secret half, for an admin-capable joiner. Read from
  // the key file: the membership keeps it to itself otherwise.
  std::string ClusterSecret() const {
    if (config.node.data_dir.empty()) return "";
    std::FILE* f = std::fopen((config.node.data_dir + "/cluster/cluster.key").c_str(), "rb");
    if (!f) return "";
    std::string s(64, '\0');
    const std::size_t n = std::fread(s.data(), 1, s.size(), f);
    std::fclose(f);
    return n == 64 ? s : "";
  }

  void OnMembershipMessage(const Message& m) {
    if (m.envelope.type == "revocation") {
      auto raw = cl::FromBase64Url(m.envelope.data);
      if (!raw.ok()) return;
      auto applied = membership->ApplyRevocation(*raw);
      if (applied.ok() && *applied) {
        ++revocations_applied;
        kLog.warn("cluster: a member was revoked (relayed by {})", m.envelope.from);
      }
    } else if (m.envelope.type == "token-use" && m.sender_role == cl::NodeRole::kAdminCapable) {
      const json j = ParseJson(m.envelope.data);
      if (j.is_object() && j.contains("token") && j["token"].is_string() && j.contains("node_id") &&
          j["node_id"].is_string()) {
        membership->RecordTokenUse(j["token"].get<std::string>(), j["node_id"].get<std::string>());
      }
    }
  }

  // An admin answers renewal requests of members in good standing.
  void OnRenew(const Message& m) {
    if (!MayAdmit().empty()) return;
    const json j = ParseJson(m.envelope.data);
    if (!j.is_object() || !j.contains("credential") || !j["credential"].is_string()) return;
    auto raw = cl::FromBase64Url(j["credential"].get<std::string>());
    if (!raw.ok()) return;
    auto current = cl::DecodeCredential(*raw, membership->cluster_key());
    if (!current.ok() || current->node_key != m.sender_key) return;
    auto renewed = membership->Renew(*current, config.p2p.credential_ttl, cl::NowMs());
    if (!renewed.ok()) return;
    (void)p2p.SendDirectToKey(m.sender_key, "cluster.renewed", json{{"credential", cl::Base64Url(*renewed)}}.dump());
  }

  void OnRenewed(const Message& m) {
    const json j = ParseJson(m.envelope.data);
    if (!j.is_object() || !j.contains("credential") || !j["credential"].is_string()) return;
    auto raw = cl::FromBase64Url(j["credential"].get<std::string>());
    if (!raw.ok()) return;
    cl::Key key;
    const auto& own = p2p.identity().public_key();
    std::copy(own.begin(), own.end(), key.begin());
    if (membership->Admit(*raw, "", key).ok()) {
      ++renewals;
      p2p.MembershipChanged();
      kLog.info("cluster: credential renewed by {}", m.envelope.from);
    }
  }

  void Loop() {
    auto next_publish = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock lock(loop_mu);
        loop_cv.wait_for(lock, std::chrono::seconds(1), [this] { return stopping; });
        if (stopping) return;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_publish) {
        next_publish = now + std::chrono::seconds(10);
        if (membership->IsAuthority()) PublishRevocations();
        MaybeRenew();
      }
    }
  }

  void PublishRevocations() {
    for (const auto& raw : membership->EncodedRevocations()) {
      (void)p2p.Publish(kMembershipTopic, "revocation", cl::Base64Url(raw));
    }
  }

  void MaybeRenew() {
    const auto own = membership->own();
    if (!own) return;
    const std::int64_t now = cl::NowMs();
    const std::int64_t life = own->expires_at_ms - own->issued_at_ms;
    if (now < own->issued_at_ms + life * 2 / 3) return;
    if (membership->IsAuthority()) {
      auto renewed = membership->Renew(*own, config.p2p.credential_ttl, now);
      cl::Key key = own->node_key;
      if (renewed.ok() && membership->Admit(*renewed, "", key).ok()) {
        ++renewals;
        p2p.MembershipChanged();
        kLog.info("cluster: credential renewed (self-issued)");
      }
      return;
    }
    // Ask every admin-capable peer; only the admin answers.
    for (const auto& peer : p2p.Peers()) {
      (void)p2p.SendDirect(peer.node_id, "cluster.renew",
                           json{{"credential", cl::Base64Url(membership->credential())}}.dump());
    }
  }

  json StatusJson() const {
    const auto own = membership->own();
    json j = {{"cluster_id", membership->cluster_id()},
              {"founder", membership->Founder()},
              {"authority", membership->IsAuthority()},
              {"admitted", own.has_value()},
              {"revocations", membership->EncodedRevocations().size()},
              {"admitted_by_this_node", admitted.load()},
              {"joins_refused", refused.load()},
              {"renewals", renewals.load()}};
    if (own) {
      j["role"] = cl::NodeRoleName(own->role);
      j["credential"] = {{"serial", std::to_string(own->serial)},
                         {"issued_at", IsoOfMs(own->issued_at_ms)},
                         {"expires_at", IsoOfMs(own->expires_at_ms)}};
    }
    return j;
  }

  ops::CheckOutcome Health() const {
    const auto own = membership->own();
    const std::int64_t now = cl::NowMs();
    const auto stats = p2p.Stats();
    json details = {{"cluster_id", membership->cluster_id()},
                    {"refused_senders", stats.refused_senders},
                    {"foreign_cluster_frames", stats.foreign_cluster}};
    if (!own) return ops::CheckOutcome::Unhealthy("not admitted to the cluster", details.dump());
    details["role"] = cl::NodeRoleName(own->role);
    details["credential_expires_at"] = IsoOfMs(own->expires_at_ms);
    if (membership->IsRevoked(p2p.node_id())) {
      return ops::CheckOutcome::Unhealthy("this node has been revoked: every member refuses its messages",
                                          details.dump());
    }
    if (own->expires_at_ms <= now) {
      return ops::CheckOutcome::Unhealthy("this node's credential expired at " + IsoOfMs(own->expires_at_ms) +
                                              ": join again with a new token",
                                          details.dump());
    }
    if (stats.last_foreign_ms > 0 && now - stats.last_foreign_ms < 60000) {
      return ops::CheckOutcome::Unhealthy(
          "two clusters share this network: frames of cluster " + stats.last_foreign_cluster +
              " arrive here (this one is " + membership->cluster_id() +
              "); they are refused. Give each cluster its own network or bootstrap peers",
          details.dump());
    }
    const std::int64_t life = own->expires_at_ms - own->issued_at_ms;
    if (now > own->issued_at_ms + life * 5 / 6) {
      return ops::CheckOutcome::Degraded("credential expires at " + IsoOfMs(own->expires_at_ms) +
                                             " and has not been renewed (is the admin reachable?)",
                                         details.dump());
    }
    return ops::CheckOutcome::Healthy("member of cluster " + membership->cluster_id() + " as " +
                                          std::string(cl::NodeRoleName(own->role)) + " until " +
                                          IsoOfMs(own->expires_at_ms),
                                      details.dump());
  }

  json MembersJson() const {
    json list = json::array();
    const std::string self = p2p.node_id();
    for (const auto& m : membership->Members()) {
      const bool live = m.node_id == self || p2p.FindPeer(m.node_id).has_value();
      list.push_back({{"node_id", m.node_id},
                      {"name", m.name},
                      {"role", cl::NodeRoleName(m.role)},
                      {"serial", std::to_string(m.serial)},
                      {"issued_at", IsoOfMs(m.issued_at_ms)},
                      {"expires_at", IsoOfMs(m.expires_at_ms)},
                      {"revoked", m.revoked},
                      {"live", live},
                      {"self", m.node_id == self}});
    }
    json revoked = json::array();
    for (const auto& r : membership->Revocations()) {
      revoked.push_back({{"node_id", r.node_id}, {"revoked_at", IsoOfMs(r.revoked_at_ms)}, {"reason", r.reason}});
    }
    return {{"cluster_id", membership->cluster_id()}, {"members", list}, {"revoked", revoked}};
  }
};

Result<std::shared_ptr<ClusterServices>> ClusterServices::Start(P2pNode& p2p,
                                                                std::shared_ptr<cl::Membership> membership,
                                                                const config::Config& config,
                                                                prometheus::Registry* metrics) {
  auto svc = std::shared_ptr<ClusterServices>(new ClusterServices());
  svc->impl_ = std::make_shared<Impl>(p2p, std::move(membership), config);
  Impl& s = *svc->impl_;
  if (metrics) {
    s.violations_join = &prometheus::BuildCounter()
                             .Name("no_security_violations_total")
                             .Help("Detected security violations (forged messages, tampering, policy breaches)")
                             .Register(*metrics)
                             .Add({{"kind", "cluster_join_refused"}});
  }
  std::weak_ptr<Impl> weak = svc->impl_;
  if (auto st = p2p.Subscribe(kMembershipTopic, "cluster",
                              [weak](const Message& m) {
                                if (auto impl = weak.lock()) impl->OnMembershipMessage(m);
                              });
      !st.ok()) {
    return st;
  }
  p2p.OnDirect("cluster.renew", [weak](const Message& m) {
    if (auto impl = weak.lock()) impl->OnRenew(m);
  });
  p2p.OnDirect("cluster.renewed", [weak](const Message& m) {
    if (auto impl = weak.lock()) impl->OnRenewed(m);
  });
  if (s.membership->IsAuthority()) {
    p2p.OnJoinRequest([weak](const JoinRequest& r) {
      if (auto impl = weak.lock()) impl->OnJoin(r);
    });
  }
  s.loop = NamedThread("cluster-member", [impl = svc->impl_.get()] { impl->Loop(); });
  return svc;
}

ClusterServices::~ClusterServices() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->loop_mu);
    impl_->stopping = true;
  }
  impl_->loop_cv.notify_all();
  if (impl_->loop.joinable()) impl_->loop.join();
  impl_->p2p.Unsubscribe(kMembershipTopic, "cluster");
  impl_->p2p.OnJoinRequest([](const JoinRequest&) {});
  impl_->p2p.OnDirect("cluster.renew", [](const Message&) {});
  impl_->p2p.OnDirect("cluster.renewed", [](const Message&) {});
}

void ClusterServices::SetAdmissionGate(std::function<std::string()> may_admit) {
  std::lock_guard lock(impl_->gate_mu);
  impl_->gate = std::move(may_admit);
}

void ClusterServices::OnJoinOutcome(std::function<void(const JoinOutcome&)> listener) {
  std::lock_guard lock(impl_->gate_mu);
  impl_->join_listener = std::move(listener);
}

std::string ClusterServices::StatusJson(std::string_view) const { return impl_->StatusJson().dump(); }

std::vector<ops::HealthCheckSpec> ClusterServices::HealthChecks(const config::OperationsConfig& ops) {
  std::weak_ptr<Impl> weak = impl_;
  ops::HealthCheckSpec spec;
  spec.name = "membership";
  spec.interval = std::min(ops.health_check_interval, std::chrono::milliseconds(5000));
  spec.timeout = ops.health_check_timeout;
  spec.critical = false;
  spec.description = "this node's credential is valid and unrevoked, and no other cluster shares the network";
  spec.fn = [weak] {
    auto impl = weak.lock();
    return impl ? impl->Health() : ops::CheckOutcome::Unhealthy("membership services stopped");
  };
  return {spec};
}

Status ClusterServices::RegisterRoutes(http::Router& router) {
  std::shared_ptr<Impl> impl = impl_;
  http::RouteTable routes(router, "cluster");
  routes.Add(http::Method::kGet, "/api/v1/cluster", "cluster:read", "this node's cluster membership",
             [impl](http::Request&) { return JsonOk(200, impl->StatusJson()); });
  routes.Add(http::Method::kGet, "/api/v1/cluster/members", "cluster:read",
             "members seen (credentials checked), their roles, expiry and liveness; revocations",
             [impl](http::Request&) { return JsonOk(200, impl->MembersJson()); });
  routes.Add(http::Method::kPost, "/api/v1/cluster/tokens", "cluster:admin",
             "create a join token: {role: worker|admin-capable|bootstrap, ttl: \"1h\", uses: 1}",
             [impl](http::Request& req) {
               const json j = req.body.empty() ? json::object() : ParseJson(req.body);
               auto bad = [&](const std::string& why) { return http::ErrorResponse(400, "bad_request", why, req.request_id); };
               if (!j.is_object()) return bad("body must be a JSON object {role, ttl, uses}");
               for (const auto& [k, v] : j.items()) {
                 if (k != "role" && k != "ttl" && k != "uses") return bad("unknown field '" + k + "'");
               }
               cl::NodeRole role = cl::NodeRole::kWorker;
               if (j.contains("role")) {
                 if (!j["role"].is_string()) return bad("role must be a string");
                 auto r = cl::ParseNodeRole(j["role"].get<std::string>());
                 if (!r.ok()) return bad(r.status().message());
                 role = *r;
               }
               std::int64_t ttl_ms = 3600 * 1000;
               if (j.contains("ttl")) {
                 if (!j["ttl"].is_string()) return bad("ttl must be a duration string like \"30m\" or \"24h\"");
                 auto ms = config::ParseDurationMs(j["ttl"].get<std::string>());
                 if (!ms || *ms <= 0 || *ms > 365LL * 24 * 3600 * 1000) return bad("ttl must be a duration in (0, 365 days]");
                 ttl_ms = *ms;
               }
               std::uint32_t uses = 1;
               if (j.contains("uses")) {
                 if (!j["uses"].is_number_unsigned() || j["uses"].get<std::uint64_t>() < 1 ||
                     j["uses"].get<std::uint64_t>() > 10000) {
                   return bad("uses must be an integer in [1, 10000]");
                 }
                 uses = static_cast<std::uint32_t>(j["uses"].get<std::uint64_t>());
               }
               auto token = impl->membership->CreateToken(role, std::chrono::milliseconds(ttl_ms), uses);
               if (!token.ok()) return http::ErrorFromStatus(token.status(), req.request_id);
               auto decoded = cl::DecodeJoinToken(*token);
               return JsonOk(201, {{"token", *token},
                                   {"id", decoded.ok() ? decoded->id : ""},
                                   {"role", cl::NodeRoleName(role)},
                                   {"uses", uses},
                                   {"expires_at", IsoOfMs(decoded.ok() ? decoded->expires_at_ms : 0)},
                                   {"cluster_id", impl->membership->cluster_id()},
                                   {"bootstrap", impl->config.p2p.listen}});
             });
  routes.Add(http::Method::kPost, "/api/v1/cluster/revoke", "cluster:admin",
             "revoke a member: {node_id, reason}; every node drops its frames within seconds",
             [impl](http::Request& req) {
               const json j = ParseJson(req.body);
               if (!j.is_object() || !j.contains("node_id") || !j["node_id"].is_string() ||
                   (j.contains("reason") && !j["reason"].is_string())) {
                 return http::ErrorResponse(400, "bad_request", "body must be {\"node_id\": \"…\", \"reason\": \"…\"}",
                                            req.request_id);
               }
               const std::string node_id = j["node_id"].get<std::string>();
               auto encoded = impl->membership->Revoke(node_id, j.value("reason", ""), cl::NowMs());
               if (!encoded.ok()) return http::ErrorFromStatus(encoded.status(), req.request_id);
               (void)impl->p2p.Publish(kMembershipTopic, "revocation", cl::Base64Url(*encoded));
               kLog.warn("cluster: revoked {} ({})", node_id, j.value("reason", ""));
               return JsonOk(200, {{"revoked", node_id}, {"cluster_id", impl->membership->cluster_id()}});
             });
  return routes.Done();
}

}  // namespace bzzz::p2p
