#include "p2p/services.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "http/blocking.h"
#include "p2p/topics.h"

namespace bzzz::p2p {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr SubsystemLog kLog{"p2p"};

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }

}  // namespace

class P2pServices::Impl : public std::enable_shared_from_this<P2pServices::Impl> {
 public:
  Impl(P2pNode& node, const config::Config& cfg) : p2p(node), config(cfg) {}

  P2pNode& p2p;
  config::Config config;
  http::BlockingRuns runs{16};
  std::string health_topic;

  // Outstanding probes: nonce -> (peer -> rtt ms).
  struct Probe {
    Clock::time_point sent;
    std::map<std::string, double> answers;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Probe> probes;
  std::map<std::string, Clock::time_point> health_waits;  // pubsub-health nonces received

  void OnProbe(const Message& m) {
    if (m.envelope.type != "probe") return;
    const json body = ParseJson(m.envelope.data);
    if (!body.is_object() || !body.contains("nonce") || !body["nonce"].is_string()) return;
    const json ack = {{"nonce", body["nonce"]}, {"node_id", p2p.node_id()}};
    if (Status s = p2p.SendDirect(m.envelope.from, "probe-ack", ack.dump()); !s.ok()) {
      kLog.debug("p2p: cannot answer probe from {}: {}", m.envelope.from, s.message());
    }
  }

  void OnProbeAck(const Message& m) {
    const json body = ParseJson(m.envelope.data);
    if (!body.is_object() || !body.contains("nonce") || !body["nonce"].is_string()) return;
    std::lock_guard lock(mu);
    auto it = probes.find(body["nonce"].get<std::string>());
    if (it == probes.end()) return;
    it->second.answers.emplace(m.envelope.from, MillisSince(it->second.sent));
    cv.notify_all();
  }

  void OnHealth(const Message& m) {
    std::lock_guard lock(mu);
    health_waits[m.envelope.data] = Clock::now();
    cv.notify_all();
  }

  // ---- probes ----

  json TestMessage(std::chrono::milliseconds timeout) {
    const auto peers = p2p.Peers();
    const std::string nonce = RandomHex(8);
    {
      std::lock_guard lock(mu);
      probes[nonce].sent = Clock::now();
    }
    const json body = {{"nonce", nonce}};
    Status published = p2p.Publish(kProbeTopic, "probe", body.dump());
    std::map<std::string, double> answers;
    {
      std::unique_lock lock(mu);
      if (published.ok()) {
        // Done when every peer of the snapshot answered (answers from nodes
        // that joined since do not count towards it).
        cv.wait_for(lock, timeout, [&] {
          std::size_t known = 0;
          for (const auto& p : peers) known += probes[nonce].answers.count(p.node_id);
          return known >= peers.size();
        });
      }
      answers = probes[nonce].answers;
      probes.erase(nonce);
    }
    json results = json::array();
    std::size_t answered = 0;
    for (const auto& p : peers) {
      auto it = answers.find(p.node_id);
      json r = {{"node_id", p.node_id}, {"name", p.name}, {"answered", it != answers.end()}};
      if (it != answers.end()) {
        r["rtt_ms"] = it->second;
        ++answered;
      }
      results.push_back(r);
    }
    json out = {{"node_id", p2p.node_id()},
                {"topic", kProbeTopic},
                {"peers", peers.size()},
                {"answered", answered},
                {"timeout_ms", timeout.count()},
                {"ok", published.ok() && answered == peers.size() && !peers.empty()},
                {"results", results}};
    if (!published.ok()) out["error"] = published.message();
    if (peers.empty()) out["error"] = "no peers known: nothing to probe";
    return out;
  }

  // ---- health ----

  ops::CheckOutcome PubsubHealth(std::chrono::milliseconds timeout) {
    const std::string nonce = RandomHex(8);
    const auto start = Clock::now();
    if (Status s = p2p.Publish(health_topic, "health", nonce); !s.ok()) {
      return ops::CheckOutcome::Unhealthy("cannot publish: " + s.message());
    }
    bool received;
    {
      std::unique_lock lock(mu);
      received = cv.wait_for(lock, timeout, [&] { return health_waits.count(nonce) > 0; });
      health_waits.erase(nonce);
      if (health_waits.size() > 64) health_waits.clear();
    }
    const double ms = MillisSince(start);
    const auto stats = p2p.Stats();
    const json details = {{"round_trip_ms", ms},          {"connected_peers", p2p.ConnectedPeers()},
                          {"published", stats.published}, {"received", stats.received},
                          {"dropped", stats.dropped},     {"rejected", stats.rejected}};
    if (!received)
      return ops::CheckOutcome::Unhealthy("own message not received within the timeout", details.dump());
    if (!config.p2p.bootstrap.empty() && p2p.ConnectedPeers() == 0) {
      return ops::CheckOutcome::Degraded("publish and receive work, but no peer is connected",
                                         details.dump());
    }
    return ops::CheckOutcome::Healthy(
        "published and received in " + std::to_string(static_cast<int>(ms)) + " ms", details.dump());
  }

  json PeersJson() const {
    json peers = json::array();
    for (const auto& p : p2p.Peers()) {
      peers.push_back({{"node_id", p.node_id},
                       {"name", p.name},
                       {"agent_id", p.presence.agent_id},
                       {"role", p.presence.role},
                       {"capabilities", p.presence.capabilities},
                       {"models", p.presence.models},
                       {"http_endpoint", p.presence.http_endpoint},
                       {"available_for_work", p.presence.available_for_work},
                       {"current_tasks", p.presence.current_tasks},
                       {"max_tasks", p.presence.max_tasks},
                       {"status", p.presence.status},
                       {"version", p.presence.version},
                       {"health", p.presence.health},
                       {"peers", p.presence.peers >= 0 ? json(p.presence.peers) : json(nullptr)},
                       {"first_seen", FormatIso8601(p.first_seen)},
                       {"last_seen", FormatIso8601(p.last_seen)}});
    }
    const auto table = p2p.TableStats();
    json links = json::array();
    for (const auto& l : p2p.Links()) {
      links.push_back({{"node_id", l.node_id},
                       {"outbound", l.outbound},
                       {"topics", l.topics},
                       {"frames_sent", l.frames_sent},
                       {"frames_received", l.frames_received},
                       {"messages_dropped", l.messages_dropped},
                       {"queued_bytes", l.queued_bytes},
                       {"connected_at", FormatIso8601(std::chrono::system_clock::time_point(
                                            std::chrono::milliseconds(l.connected_ms)))}});
    }
    return {{"node_id", p2p.node_id()},
            {"connected_peers", peers.size()},
            {"peers", peers},
            {"links", links},
            {"dht", {{"good_nodes", table.good_nodes}, {"dubious_nodes", table.dubious_nodes}}}};
  }
};

P2pServices::~P2pServices() = default;

Result<std::shared_ptr<P2pServices>> P2pServices::Start(P2pNode& p2p, const config::Config& config) {
  auto services = std::shared_ptr<P2pServices>(new P2pServices());
  services->impl_ = std::make_shared<Impl>(p2p, config);
  std::weak_ptr<Impl> weak = services->impl_;
  Impl& n = *services->impl_;
  n.health_topic = "bzzz/internal/health/" + p2p.node_id();
  if (auto s = p2p.Subscribe(kProbeTopic, "probe-responder",
                             [weak](const Message& m) {
                               if (auto impl = weak.lock()) impl->OnProbe(m);
                             });
      !s.ok()) {
    return s;
  }
  SubscribeOptions own;
  own.receive_own = true;
  if (auto s = p2p.Subscribe(
          n.health_topic, "pubsub-health",
          [weak](const Message& m) {
            if (auto impl = weak.lock()) impl->OnHealth(m);
          },
          own);
      !s.ok()) {
    return s;
  }
  p2p.OnDirect("probe-ack", [weak](const Message& m) {
    if (auto impl = weak.lock()) impl->OnProbeAck(m);
  });
  return services;
}

Status P2pServices::RegisterRoutes(http::Router& router) {
  std::shared_ptr<Impl> impl = impl_;
  http::RouteTable routes(router, "p2p");
  routes.Add(http::Method::kGet, "/api/v1/peers", "p2p:read",
             "live peers with their presence, and the DHT table",
             [impl](http::Request&) { return JsonOk(200, impl->PeersJson()); });
  routes.Add(http::Method::kDelete, "/api/v1/p2p/peers", "p2p:admin",
             "clear the peer store (<data_dir>/p2p/peers) and the peer table", [impl](http::Request&) {
               const std::size_t forgotten = impl->p2p.ClearPeerStore();
               kLog.warn("p2p: peer store cleared ({} contacts forgotten)", forgotten);
               return JsonOk(200, {{"cleared", true}, {"forgotten", forgotten}});
             });
  routes.Add(http::Method::kPost, "/api/v1/p2p/test-message", "p2p:write",
             "publish a probe on bzzz/internal/probe/v1 and collect every peer's answer", nullptr,
             [impl](http::Request& req, http::Responder respond) {
               auto timeout = http::TimeoutFromBody(req.body, std::chrono::milliseconds(3000));
               if (!timeout.ok()) {
                 respond(http::ErrorFromStatus(timeout.status(), req.request_id));
                 return;
               }
               impl->runs.Run("test-message:" + req.request_id, req.request_id, std::move(respond),
                              [impl, timeout = *timeout] {
                                const json out = impl->TestMessage(timeout);
                                return JsonOk(200, out);
                              });
             });
  return routes.Done();
}

std::vector<ops::HealthCheckSpec> P2pServices::HealthChecks(const config::OperationsConfig& ops) {
  std::weak_ptr<Impl> weak = impl_;
  std::vector<ops::HealthCheckSpec> checks;
  ops::HealthCheckSpec pubsub;
  pubsub.name = "pubsub-health";
  pubsub.interval = ops.health_check_interval;
  pubsub.timeout = ops.health_check_timeout;
  pubsub.critical = false;
  pubsub.description = "publishes to the node's health topic and receives it back through the DHT";
  const auto wait = ops::CheckWait(ops.health_check_timeout);
  pubsub.fn = [weak, wait] {
    auto impl = weak.lock();
    return impl ? impl->PubsubHealth(wait) : ops::CheckOutcome::Unhealthy("p2p stopped");
  };
  checks.push_back(pubsub);
  return checks;
}

std::string P2pServices::StatusJson(std::string_view) const {
  const auto stats = impl_->p2p.Stats();
  const auto table = impl_->p2p.TableStats();
  const json j = {{"node_id", impl_->p2p.node_id()},
                  {"udp_port", impl_->p2p.port()},
                  {"link_port", impl_->p2p.link_port()},
                  {"network_id", impl_->p2p.network_id()},
                  {"connected_peers", impl_->p2p.ConnectedPeers()},
                  {"topics", impl_->p2p.Topics()},
                  {"dht_good_nodes", table.good_nodes},
                  {"dht_dubious_nodes", table.dubious_nodes},
                  {"published", stats.published},
                  {"frames_sent", stats.frames_sent},
                  {"received", stats.received},
                  {"dropped", stats.dropped},
                  {"rejected", stats.rejected},
                  {"publish_failures", stats.publish_failures}};
  return j.dump();
}

}  // namespace bzzz::p2p
