#include "http/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/router.h"

namespace bzzz::http {

namespace {
constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"};

std::size_t MethodIndex(std::string_view method) {
  for (std::size_t i = 0; i < std::size(kMethods); ++i) {
    if (kMethods[i] == method) return i;
  }
  return std::size(kMethods) - 1;
}
}  // namespace

struct HttpProbe::State {
  prometheus::Family<prometheus::Counter>* requests = nullptr;
  prometheus::Family<prometheus::Histogram>* durations = nullptr;
  prometheus::Gauge* in_flight = nullptr;
  prometheus::Gauge* connections = nullptr;
  prometheus::Family<prometheus::Counter>* refused = nullptr;
  prometheus::Counter* errors = nullptr;
  prometheus::Counter* rate_limited[2] = {nullptr, nullptr};  // read, write
  std::vector<std::string> route_labels;  // by route id; last is "unmatched"

  // Resolved series, so the hot path does not hash label maps.
  std::mutex mu;
  std::unordered_map<std::uint64_t, prometheus::Counter*> counters;
  std::vector<std::atomic<prometheus::Histogram*>> histograms;  // [route][method]
};

HttpProbe::HttpProbe(prometheus::Registry* registry, const Router& router) : state_(std::make_unique<State>()) {
  if (registry == nullptr) return;
  auto& s = *state_;
  s.requests = &prometheus::BuildCounter()
                    .Name("no_http_requests_total")
                    .Help("HTTP requests by method, route template and status")
                    .Register(*registry);
  s.durations = &prometheus::BuildHistogram()
                     .Name("no_http_request_duration_seconds")
                     .Help("HTTP request duration from parsed request to written response")
                     .Register(*registry);
  s.in_flight = &prometheus::BuildGauge()
                     .Name("no_http_requests_in_flight")
                     .Help("HTTP requests being served")
                     .Register(*registry)
                     .Add({});
  s.connections = &prometheus::BuildGauge()
                       .Name("no_http_open_connections")
                       .Help("Open HTTP connections")
                       .Register(*registry)
                       .Add({});
  s.refused = &prometheus::BuildCounter()
                    .Name("bzzz_http_connections_refused_total")
                    .Help("HTTP connections closed at accept, by reason (max_connections, per_client)")
                    .Register(*registry);
  s.errors = &prometheus::BuildCounter()
                  .Name("bzzz_errors_total")
                  .Help("Errors by component")
                  .Register(*registry)
                  .Add({{"component", "http"}});
  auto& limited = prometheus::BuildCounter()
                      .Name("no_rate_limit_rejections_total")
                      .Help("Requests refused with 429 by the rate limiter, by route class (read, write)")
                      .Register(*registry);
  s.rate_limited[0] = &limited.Add({{"class", "read"}});
  s.rate_limited[1] = &limited.Add({{"class", "write"}});
  for (const auto& route : router.Routes()) s.route_labels.push_back(route->pattern);
  s.route_labels.push_back("unmatched");
  s.histograms = std::vector<std::atomic<prometheus::Histogram*>>(s.route_labels.size() * std::size(kMethods));
}

HttpProbe::~HttpProbe() = default;

void HttpProbe::RequestDone(std::string_view method, std::size_t route_id, int status, double seconds) {
  auto& s = *state_;
  if (s.requests == nullptr) return;
  const std::size_t route = route_id < s.route_labels.size() - 1 ? route_id : s.route_labels.size() - 1;
  const std::size_t m = MethodIndex(method);
  const std::string& route_label = s.route_labels[route];

  auto& slot = s.histograms[route * std::size(kMethods) + m];
  prometheus::Histogram* histogram = slot.load(std::memory_order_acquire);
  prometheus::Counter* counter = nullptr;
  const std::uint64_t key = (static_cast<std::uint64_t>(route) << 20) | (m << 12) | static_cast<std::uint64_t>(status & 0xfff);
  {
    std::lock_guard lock(s.mu);
    if (histogram == nullptr) {
      static const prometheus::Histogram::BucketBoundaries kBuckets = {
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
      histogram = &s.durations->Add({{"method", std::string(kMethods[m])}, {"route", route_label}}, kBuckets);
      slot.store(histogram, std::memory_order_release);
    }
    auto [it, inserted] = s.counters.try_emplace(key, nullptr);
    if (inserted) {
      it->second = &s.requests->Add(
          {{"method", std::string(kMethods[m])}, {"route", route_label}, {"status", std::to_string(status)}});
    }
    counter = it->second;
  }
  counter->Increment();
  histogram->Observe(seconds);
  if (status >= 500) s.errors->Increment();
}

void HttpProbe::InFlight(std::int64_t value) {
  if (state_->in_flight) state_->in_flight->Set(static_cast<double>(value));
}

void HttpProbe::RateLimited(bool write) {
  if (auto* c = state_->rate_limited[write ? 1 : 0]) c->Increment();
}

void HttpProbe::Refused(std::string_view reason) {
  if (state_->refused) state_->refused->Add({{"reason", std::string(reason)}}).Increment();
}

void HttpProbe::Connections(std::int64_t value) {
  if (state_->connections) state_->connections->Set(static_cast<double>(value));
}

}  // namespace bzzz::http
