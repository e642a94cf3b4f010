#include "dht/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>

namespace bzzz::dht {

namespace {
constexpr std::array<const char*, 4> kOperations = {"put", "get", "announce", "discover"};
}

struct DhtProbe::State {
  prometheus::Family<prometheus::Counter>* puts = nullptr;
  prometheus::Family<prometheus::Counter>* gets = nullptr;
  prometheus::Family<prometheus::Counter>* failures = nullptr;
  std::array<prometheus::Histogram*, 4> latency{};
  prometheus::Family<prometheus::Gauge>* replication_family = nullptr;
  std::atomic<prometheus::Gauge*> replication{nullptr};
  prometheus::Gauge* providers = nullptr;
  prometheus::Gauge* held = nullptr;
  prometheus::Counter* hits = nullptr;
  prometheus::Counter* misses = nullptr;
  prometheus::Gauge* cache_bytes = nullptr;
  prometheus::Counter* errors = nullptr;
  std::mutex mu;
  std::map<std::string, prometheus::Counter*> series;

  prometheus::Counter& Series(prometheus::Family<prometheus::Counter>& family, const std::string& key,
                              const std::map<std::string, std::string>& labels) {
    std::lock_guard lock(mu);
    auto& c = series[key];
    if (c == nullptr) c = &family.Add(labels);
    return *c;
  }
};

DhtProbe::DhtProbe(prometheus::Registry* registry) : state_(std::make_unique<State>()) {
  if (registry == nullptr) return;
  auto& s = *state_;
  s.puts = &prometheus::BuildCounter()
                .Name("bzzz_dht_put_operations_total")
                .Help("DHT record puts by result")
                .Register(*registry);
  s.gets = &prometheus::BuildCounter()
                .Name("bzzz_dht_get_operations_total")
                .Help("DHT record gets by result (success, not_found, failure)")
                .Register(*registry);
  s.failures = &prometheus::BuildCounter()
                    .Name("bzzz_dht_operation_failures_total")
                    .Help("Failed DHT operations by operation and reason")
                    .Register(*registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("bzzz_dht_operation_latency_seconds")
                      .Help("Latency of DHT operations, by operation")
                      .Register(*registry);
  const prometheus::Histogram::BucketBoundaries buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                           0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                                           5,      10};
  for (std::size_t i = 0; i < kOperations.size(); ++i) s.latency[i] = &latency.Add({{"operation", kOperations[i]}}, buckets);
  // Absent until the first measurement (a 0 before it would look like a
  // record nobody else holds).
  s.replication_family = &prometheus::BuildGauge()
                              .Name("bzzz_dht_replication_factor")
                              .Help("Mean number of live providers of the records this node holds")
                              .Register(*registry);
  s.providers = &prometheus::BuildGauge()
                     .Name("bzzz_dht_provider_records")
                     .Help("Provider records this node announces")
                     .Register(*registry)
                     .Add({});
  s.held = &prometheus::BuildGauge()
                .Name("bzzz_dht_records_held")
                .Help("Records this node holds and re-puts")
                .Register(*registry)
                .Add({});
  s.hits = &prometheus::BuildCounter().Name("bzzz_dht_cache_hits_total").Help("DHT cache hits").Register(*registry).Add({});
  s.misses =
      &prometheus::BuildCounter().Name("bzzz_dht_cache_misses_total").Help("DHT cache misses").Register(*registry).Add({});
  s.cache_bytes = &prometheus::BuildGauge()
                       .Name("bzzz_dht_cache_bytes")
                       .Help("Bytes in <data_dir>/dht/cache")
                       .Register(*registry)
                       .Add({});
  s.errors = &prometheus::BuildCounter()
                  .Name("bzzz_errors_total")
                  .Help("Errors by component")
                  .Register(*registry)
                  .Add({{"component", "dht"}});
  // Every series with a known label set exists at zero from start.
  for (const char* result : {"success", "failure"}) s.Series(*s.puts, std::string("p") + result, {{"result", result}});
  for (const char* result : {"success", "failure", "not_found"}) {
    s.Series(*s.gets, std::string("g") + result, {{"result", result}});
  }
  for (const char* op : kOperations) {
    for (const char* reason : {"timeout", "invalid", "rejected"}) {
      s.Series(*s.failures, std::string("f") + op + "/" + reason, {{"operation", op}, {"reason", reason}});
    }
  }
}

DhtProbe::~DhtProbe() = default;

void DhtProbe::Done(Operation op, double seconds, std::string_view reason) {
  auto& s = *state_;
  if (s.puts == nullptr) return;
  const auto i = static_cast<std::size_t>(op);
  s.latency[i]->Observe(seconds);
  if (op == Operation::kPut || op == Operation::kGet) {
    const std::string result = reason.empty() ? "success" : reason == "not_found" ? "not_found" : "failure";
    auto& family = op == Operation::kPut ? *s.puts : *s.gets;
    s.Series(family, (op == Operation::kPut ? "p" : "g") + result, {{"result", result}}).Increment();
  }
  // A get that finds nothing is a result, not a failure: it spends no
  // error budget (bzzz_dht_operation_failures_total counts failures only).
  if (!reason.empty() && reason != "not_found") {
    s.Series(*s.failures, std::string("f") + kOperations[i] + "/" + std::string(reason),
             {{"operation", kOperations[i]}, {"reason", std::string(reason)}})
        .Increment();
  }
}

void DhtProbe::Replication(std::optional<double> average, std::size_t provided, std::size_t held) {
  auto& s = *state_;
  if (s.replication_family == nullptr) return;
  if (average) {
    prometheus::Gauge* gauge = s.replication.load();
    if (gauge == nullptr) {
      std::lock_guard lock(s.mu);
      gauge = &s.replication_family->Add({});  // the same series if two threads race here
      s.replication.store(gauge);
    }
    gauge->Set(*average);
  }
  s.providers->Set(static_cast<double>(provided));
  s.held->Set(static_cast<double>(held));
}

void DhtProbe::Cache(bool hit) {
  if (state_->hits == nullptr) return;
  (hit ? state_->hits : state_->misses)->Increment();
}

void DhtProbe::CacheBytes(std::size_t bytes) {
  if (state_->cache_bytes) state_->cache_bytes->Set(static_cast<double>(bytes));
}

void DhtProbe::Error() {
  if (state_->errors) state_->errors->Increment();
}

}  // namespace bzzz::dht
