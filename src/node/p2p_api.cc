#include "node/p2p_api.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "base/json.h"
#include "base/clock.h"
#include "http/blocking.h"
#include "p2p/topics.h"

namespace bzzz::node {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string Nonce() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string Iso(std::chrono::system_clock::time_point t) { return FormatIso8601(t); }

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }

// Reads {"timeout_ms": N} (optional) from a request body; false on bad JSON.
bool ReadTimeout(const std::string& body, std::chrono::milliseconds fallback, std::chrono::milliseconds* out,
                 std::string* error) {
  *out = fallback;
  if (body.empty()) return true;
  const json j = ParseJson(body);
  if (!j.is_object()) {
    *error = "body must be a JSON object";
    return false;
  }
  if (j.contains("timeout_ms")) {
    if (!j["timeout_ms"].is_number_integer() || j["timeout_ms"].get<long long>() < 1 ||
        j["timeout_ms"].get<long long>() > 60000) {
      *error = "timeout_ms must be an integer from 1 to 60000";
      return false;
    }
    *out = std::chrono::milliseconds(j["timeout_ms"].get<long long>());
  }
  return true;
}

}  // namespace

class P2pServices::Impl : public std::enable_shared_from_this<P2pServices::Impl> {
 public:
  Impl(p2p::P2pNode& node, dht::RecordStore* store, const config::Config& cfg)
      : p2p(node), records(store), config(cfg) {}

  p2p::P2pNode& p2p;
  dht::RecordStore* records;
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

  void OnProbe(const p2p::Message& m) {
    if (m.envelope.type != "probe") return;
    const json body = ParseJson(m.envelope.data);
    if (!body.is_object() || !body.contains("nonce") || !body["nonce"].is_string()) return;
    const json ack = {{"nonce", body["nonce"]}, {"node_id", p2p.node_id()}};
    if (Status s = p2p.SendDirect(m.envelope.from, "probe-ack", ack.dump()); !s.ok()) {
      spdlog::debug("p2p: cannot answer probe from {}: {}", m.envelope.from, s.message());
    }
  }

  void OnProbeAck(const p2p::Message& m) {
    const json body = ParseJson(m.envelope.data);
    if (!body.is_object() || !body.contains("nonce") || !body["nonce"].is_string()) return;
    std::lock_guard lock(mu);
    auto it = probes.find(body["nonce"].get<std::string>());
    if (it == probes.end()) return;
    it->second.answers.emplace(m.envelope.from, MsSince(it->second.sent));
    cv.notify_all();
  }

  void OnHealth(const p2p::Message& m) {
    std::lock_guard lock(mu);
    health_waits[m.envelope.data] = Clock::now();
    cv.notify_all();
  }

  // ---- probes ----

  json TestMessage(std::chrono::milliseconds timeout) {
    const auto peers = p2p.Peers();
    const std::string nonce = Nonce();
    {
      std::lock_guard lock(mu);
      probes[nonce].sent = Clock::now();
    }
    const json body = {{"nonce", nonce}};
    Status published = p2p.Publish(p2p::kProbeTopic, "probe", body.dump());
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
                {"topic", p2p::kProbeTopic},
                {"peers", peers.size()},
                {"answered", answered},
                {"timeout_ms", timeout.count()},
                {"ok", published.ok() && answered == peers.size() && !peers.empty()},
                {"results", results}};
    if (!published.ok()) out["error"] = published.message();
    if (peers.empty()) out["error"] = "no peers known: nothing to probe";
    return out;
  }

  json DhtTest(std::chrono::milliseconds timeout) {
    json ops = json::array();
    bool all_ok = true;
    auto record = [&](const char* name, bool ok, double ms, const std::string& error) {
      json j = {{"operation", name}, {"ok", ok}, {"latency_ms", ms}};
      if (!error.empty()) j["error"] = error;
      ops.push_back(j);
      all_ok = all_ok && ok;
    };
    const std::string name = "bzzz/internal/dht-test/" + p2p.node_id() + "/" + Nonce();
    const std::string content = "dht test " + Nonce();
    auto t = Clock::now();
    Status put = records->Put(name, content, "text/plain", /*replicate=*/false);
    record("put", put.ok(), MsSince(t), put.ok() ? "" : put.message());
    t = Clock::now();
    auto got = records->Get(name, /*bypass_cache=*/true);
    const bool get_ok = got.ok() && got->content == content;
    record("get", get_ok, MsSince(t), got.ok() ? (get_ok ? "" : "content differs") : got.status().message());
    t = Clock::now();
    Status announce = records->Announce(name);
    record("announce", announce.ok(), MsSince(t), announce.ok() ? "" : announce.message());
    t = Clock::now();
    auto providers = records->Discover(name);
    bool found_self = false;
    if (providers.ok()) {
      for (const auto& p : *providers) found_self |= p.node_id == p2p.node_id();
    }
    record("discover", found_self, MsSince(t),
           providers.ok() ? (found_self ? "" : "this node is not among the providers")
                          : providers.status().message());
    (void)records->Release(name);  // a test record is not kept alive
    (void)timeout;
    return {{"node_id", p2p.node_id()}, {"ok", all_ok}, {"record", name}, {"operations", ops}};
  }

  // ---- health ----

  ops::CheckOutcome PubsubHealth(std::chrono::milliseconds timeout) {
    const std::string nonce = Nonce();
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
    const double ms = MsSince(start);
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

  ops::CheckOutcome DhtHealth(std::chrono::milliseconds timeout) {
    const std::string nonce = "dht-health " + p2p.node_id() + " " + Nonce();
    const p2p::Bytes value(nonce.begin(), nonce.end());
    const std::string key = p2p::ChunkKey(value.data(), value.size());
    struct State {
      std::mutex mu;
      std::condition_variable cv;
      int phase = 0;  // 1 put done, 2 get done
      bool put_ok = false;
      bool found = false;
    };
    auto st = std::make_shared<State>();
    const auto start = Clock::now();
    p2p.DhtPut(key, value, p2p::ValueClass::kChunk, 0, [st](bool ok) {
      std::lock_guard lock(st->mu);
      st->put_ok = ok;
      st->phase = 1;
      st->cv.notify_all();
    });
    std::unique_lock lock(st->mu);
    if (!st->cv.wait_for(lock, timeout, [&] { return st->phase >= 1; })) {
      return ops::CheckOutcome::Unhealthy("put not acknowledged within the timeout");
    }
    if (!st->put_ok) return ops::CheckOutcome::Unhealthy("no DHT node stored the probe value");
    const double put_ms = MsSince(start);
    lock.unlock();
    const auto get_start = Clock::now();
    p2p.DhtGet(key, [st, value](std::vector<p2p::Bytes> values, bool) {
      std::lock_guard l(st->mu);
      for (const auto& v : values) st->found |= v == value;
      st->phase = 2;
      st->cv.notify_all();
    });
    lock.lock();
    const auto left = timeout - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    if (!st->cv.wait_for(lock, std::max(left, std::chrono::milliseconds(1)),
                         [&] { return st->phase >= 2; })) {
      return ops::CheckOutcome::Unhealthy("get not answered within the timeout");
    }
    const bool found = st->found;
    // Never hold st->mu while reading the routing table: OpenDHT's thread
    // holds its own lock when it runs the callbacks that take st->mu.
    lock.unlock();
    const auto table = p2p.TableStats();
    const json details = {{"put_ms", put_ms},
                          {"get_ms", MsSince(get_start)},
                          {"dht_good_nodes", table.good_nodes},
                          {"dht_dubious_nodes", table.dubious_nodes},
                          {"records_held", records ? records->Held().size() : 0},
                          {"replication_factor", records ? records->AverageReplication() : 0.0}};
    if (!found) return ops::CheckOutcome::Unhealthy("the value just put was not found", details.dump());
    return ops::CheckOutcome::Healthy("put and get work", details.dump());
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
                       {"first_seen", Iso(p.first_seen)},
                       {"last_seen", Iso(p.last_seen)}});
    }
    const auto table = p2p.TableStats();
    return {{"node_id", p2p.node_id()},
            {"connected_peers", peers.size()},
            {"peers", peers},
            {"dht", {{"good_nodes", table.good_nodes}, {"dubious_nodes", table.dubious_nodes}}}};
  }
};

P2pServices::~P2pServices() = default;

Result<std::shared_ptr<P2pServices>> P2pServices::Start(p2p::P2pNode& p2p, dht::RecordStore* records,
                                                        const config::Config& config) {
  auto services = std::shared_ptr<P2pServices>(new P2pServices());
  services->impl_ = std::make_shared<Impl>(p2p, records, config);
  std::weak_ptr<Impl> weak = services->impl_;
  Impl& n = *services->impl_;
  n.health_topic = "bzzz/internal/health/" + p2p.node_id();
  if (auto s = p2p.Subscribe(p2p::kProbeTopic, "probe-responder",
                             [weak](const p2p::Message& m) {
                               if (auto impl = weak.lock()) impl->OnProbe(m);
                             });
      !s.ok()) {
    return s;
  }
  p2p::SubscribeOptions own;
  own.receive_own = true;
  if (auto s = p2p.Subscribe(
          n.health_topic, "pubsub-health",
          [weak](const p2p::Message& m) {
            if (auto impl = weak.lock()) impl->OnHealth(m);
          },
          own);
      !s.ok()) {
    return s;
  }
  p2p.OnDirect("probe-ack", [weak](const p2p::Message& m) {
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
               spdlog::warn("p2p: peer store cleared ({} contacts forgotten)", forgotten);
               return JsonOk(200, {{"cleared", true}, {"forgotten", forgotten}});
             });
  routes.Add(http::Method::kPost, "/api/v1/p2p/test-message", "p2p:write",
             "publish a probe on bzzz/internal/probe/v1 and collect every peer's answer", nullptr,
             [impl](http::Request& req, http::Responder respond) {
               std::chrono::milliseconds timeout;
               std::string error;
               if (!ReadTimeout(req.body, std::chrono::milliseconds(3000), &timeout, &error)) {
                 respond(http::ErrorResponse(400, "bad_request", error, req.request_id));
                 return;
               }
               impl->runs.Run("test-message:" + req.request_id, req.request_id, std::move(respond),
                              [impl, timeout] {
                                const json out = impl->TestMessage(timeout);
                                return JsonOk(200, out);
                              });
             });
  routes.Add(
      http::Method::kPost, "/api/v1/dht/test", "dht:write",
      "put, get, announce and discover a test record, with latencies", nullptr,
      [impl](http::Request& req, http::Responder respond) {
        std::chrono::milliseconds timeout;
        std::string error;
        if (!ReadTimeout(req.body, std::chrono::milliseconds(5000), &timeout, &error)) {
          respond(http::ErrorResponse(400, "bad_request", error, req.request_id));
          return;
        }
        if (impl->records == nullptr) {
          respond(http::ErrorResponse(503, "unavailable", "this node runs no record store", req.request_id));
          return;
        }
        impl->runs.Run("dht-test:" + req.request_id, req.request_id, std::move(respond),
                       [impl, timeout] { return JsonOk(200, impl->DhtTest(timeout)); });
      });
  routes.Add(
      http::Method::kGet, "/api/v1/dht/replication", "dht:read",
      "replication factor of one record (?name=) or of every held record", nullptr,
      [impl](http::Request& req, http::Responder respond) {
        if (impl->records == nullptr) {
          respond(http::ErrorResponse(503, "unavailable", "this node runs no record store", req.request_id));
          return;
        }
        const auto name = req.QueryParam("name");
        if (!name) {
          json held = json::array();
          for (const auto& h : impl->records->Held()) {
            held.push_back({{"name", h.name}, {"size", h.size}, {"replication_factor", h.replication}});
          }
          respond(JsonOk(200, {{"target", impl->config.dht.replication_factor},
                               {"average", impl->records->AverageReplication()},
                               {"records", held}}));
          return;
        }
        const std::string id = req.request_id;
        impl->runs.Run("replication:" + *name, id, std::move(respond), [impl, n = *name, id] {
          auto r = impl->records->MeasureReplication(n);
          if (!r.ok()) {
            const int status = r.status().code() == StatusCode::kInvalidArgument ? 400
                               : r.status().code() == StatusCode::kTimeout       ? 504
                                                                                 : 503;
            return http::ErrorResponse(status,
                                       status == 400 ? "bad_request" : StatusCodeName(r.status().code()),
                                       r.status().message(), id);
          }
          json providers = json::array();
          for (const auto& p : r->providers) {
            providers.push_back({{"node_id", p.node_id},
                                 {"http_endpoint", p.http_endpoint},
                                 {"announced_at_ms", p.announced_at_ms}});
          }
          return JsonOk(200, {{"name", r->name},
                              {"replication_factor", r->factor},
                              {"target", r->target},
                              {"providers", providers}});
        });
      });
  routes.Add(http::Method::kDelete, "/api/v1/dht/cache", "dht:admin",
             "empty the DHT cache (<data_dir>/dht/cache)", [impl](http::Request& req) {
               if (impl->records == nullptr) {
                 return http::ErrorResponse(503, "unavailable", "this node runs no record store",
                                            req.request_id);
               }
               const auto r = impl->records->ClearCache();
               return JsonOk(200, {{"cleared", true}, {"files", r.files}, {"bytes", r.bytes}});
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
  // Leave the registry a margin to record the result before its own timeout.
  const auto wait =
      ops.health_check_timeout - std::min(ops.health_check_timeout / 10, std::chrono::milliseconds(100));
  pubsub.fn = [weak, wait] {
    auto impl = weak.lock();
    return impl ? impl->PubsubHealth(wait) : ops::CheckOutcome::Unhealthy("p2p stopped");
  };
  checks.push_back(pubsub);
  ops::HealthCheckSpec dht;
  dht.name = "dht-health";
  dht.interval = ops.health_check_interval;
  dht.timeout = ops.health_check_timeout;
  dht.critical = false;
  dht.description = "puts a content-addressed value into the DHT and gets it back";
  dht.fn = [weak, wait] {
    auto impl = weak.lock();
    return impl ? impl->DhtHealth(wait) : ops::CheckOutcome::Unhealthy("p2p stopped");
  };
  checks.push_back(dht);
  return checks;
}

std::string P2pServices::StatusJson(std::string_view section) const {
  if (section == "dht") {
    if (impl_->records == nullptr) return "{}";
    const json j = {{"records_held", impl_->records->Held().size()},
                    {"replication_factor", impl_->records->AverageReplication()},
                    {"replication_target", impl_->config.dht.replication_factor},
                    {"cache_bytes", impl_->records->CacheBytes()}};
    return j.dump();
  }
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

}  // namespace bzzz::node
