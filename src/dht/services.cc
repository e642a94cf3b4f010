#include "dht/services.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/json.h"
#include "base/random.h"
#include "http/blocking.h"

namespace bzzz::dht {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }

}  // namespace

class DhtServices::Impl {
 public:
  Impl(p2p::P2pNode& node, RecordStore* store, const config::Config& cfg)
      : p2p(node), records(store), config(cfg) {}

  p2p::P2pNode& p2p;
  RecordStore* records;
  config::Config config;
  http::BlockingRuns runs{16};

  json DhtTest(std::chrono::milliseconds timeout) {
    json ops = json::array();
    bool all_ok = true;
    auto record = [&](const char* name, bool ok, double ms, const std::string& error) {
      json j = {{"operation", name}, {"ok", ok}, {"latency_ms", ms}};
      if (!error.empty()) j["error"] = error;
      ops.push_back(j);
      all_ok = all_ok && ok;
    };
    const std::string name = "bzzz/internal/dht-test/" + p2p.node_id() + "/" + RandomHex(8);
    const std::string content = "dht test " + RandomHex(8);
    auto t = Clock::now();
    Status put = records->Put(name, content, "text/plain", /*replicate=*/false);
    record("put", put.ok(), MillisSince(t), put.ok() ? "" : put.message());
    t = Clock::now();
    auto got = records->Get(name, /*bypass_cache=*/true);
    const bool get_ok = got.ok() && got->content == content;
    record("get", get_ok, MillisSince(t), got.ok() ? (get_ok ? "" : "content differs") : got.status().message());
    t = Clock::now();
    Status announce = records->Announce(name);
    record("announce", announce.ok(), MillisSince(t), announce.ok() ? "" : announce.message());
    t = Clock::now();
    auto providers = records->Discover(name);
    bool found_self = false;
    if (providers.ok()) {
      for (const auto& p : *providers) found_self |= p.node_id == p2p.node_id();
    }
    record("discover", found_self, MillisSince(t),
           providers.ok() ? (found_self ? "" : "this node is not among the providers")
                          : providers.status().message());
    (void)records->Release(name);  // a test record is not kept alive
    (void)timeout;
    return {{"node_id", p2p.node_id()}, {"ok", all_ok}, {"record", name}, {"operations", ops}};
  }

  ops::CheckOutcome DhtHealth(std::chrono::milliseconds timeout) {
    const std::string nonce = "dht-health " + p2p.node_id() + " " + RandomHex(8);
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
    const double put_ms = MillisSince(start);
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
                          {"get_ms", MillisSince(get_start)},
                          {"dht_good_nodes", table.good_nodes},
                          {"dht_dubious_nodes", table.dubious_nodes},
                          {"records_held", records ? records->Held().size() : 0},
                          {"replication_factor", records ? records->AverageReplication() : 0.0}};
    if (!found) return ops::CheckOutcome::Unhealthy("the value just put was not found", details.dump());
    return ops::CheckOutcome::Healthy("put and get work", details.dump());
  }
};

DhtServices::~DhtServices() = default;

std::shared_ptr<DhtServices> DhtServices::Create(p2p::P2pNode& p2p, RecordStore* records,
                                                 const config::Config& config) {
  auto services = std::shared_ptr<DhtServices>(new DhtServices());
  services->impl_ = std::make_shared<Impl>(p2p, records, config);
  return services;
}

Status DhtServices::RegisterRoutes(http::Router& router) {
  std::shared_ptr<Impl> impl = impl_;
  http::RouteTable routes(router, "dht");
  routes.Add(
      http::Method::kPost, "/api/v1/dht/test", "dht:write",
      "put, get, announce and discover a test record, with latencies", nullptr,
      [impl](http::Request& req, http::Responder respond) {
        auto timeout = http::TimeoutFromBody(req.body, std::chrono::milliseconds(5000));
        if (!timeout.ok()) {
          respond(http::ErrorFromStatus(timeout.status(), req.request_id));
          return;
        }
        if (impl->records == nullptr) {
          respond(http::ErrorResponse(503, "unavailable", "this node runs no record store", req.request_id));
          return;
        }
        impl->runs.Run("dht-test:" + req.request_id, req.request_id, std::move(respond),
                       [impl, timeout = *timeout] { return JsonOk(200, impl->DhtTest(timeout)); });
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
               return JsonOk(200, {{"cleared", true}, {"files", r.files}, {"bytes", r.bytes}, {"memory_entries", r.memory_entries}});
             });
  return routes.Done();
}

std::vector<ops::HealthCheckSpec> DhtServices::HealthChecks(const config::OperationsConfig& ops) {
  std::weak_ptr<Impl> weak = impl_;
  std::vector<ops::HealthCheckSpec> checks;
  const auto wait = ops::CheckWait(ops.health_check_timeout);
  ops::HealthCheckSpec dht;
  dht.name = "dht-health";
  dht.interval = ops.health_check_interval;
  dht.timeout = ops.health_check_timeout;
  dht.critical = false;
  dht.description = "puts a content-addressed value into the DHT and gets it back";
  dht.fn = [weak, wait] {
    auto impl = weak.lock();
    return impl ? impl->DhtHealth(wait) : ops::CheckOutcome::Unhealthy("dht stopped");
  };
  checks.push_back(dht);
  return checks;
}

std::string DhtServices::StatusJson(std::string_view) const {
  if (impl_->records == nullptr) return "{}";
  const json j = {{"records_held", impl_->records->Held().size()},
                  {"replication_factor", impl_->records->AverageReplication()},
                  {"replication_target", impl_->config.dht.replication_factor},
                  {"cache_bytes", impl_->records->CacheBytes()}};
  return j.dump();
}

}  // namespace bzzz::dht
