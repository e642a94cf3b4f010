#include "slurp/probe.h"

#include <map>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace bzzz::slurp {

struct SlurpProbe::State {
  std::map<std::string, prometheus::Counter*, std::less<>> events;  // "source/result"
  prometheus::Gauge* queued = nullptr;
  prometheus::Gauge* dead = nullptr;
  prometheus::Histogram* latency = nullptr;
  prometheus::Counter* records = nullptr;
};

SlurpProbe::SlurpProbe(prometheus::Registry* registry) : state_(std::make_unique<State>()) {
  if (registry == nullptr) return;
  auto& s = *state_;
  auto& events = prometheus::BuildCounter()
                     .Name("bzzz_slurp_events_total")
                     .Help("SLURP events by source (api, task, hmmm) and result (accepted, duplicate, refused, "
                           "dropped, processed, retried, dead)")
                     .Register(*registry);
  for (const char* source : {"api", "task", "hmmm"}) {
    for (const char* result : {"accepted", "duplicate", "refused", "dropped", "processed", "retried", "dead"}) {
      s.events[std::string(source) + "/" + result] = &events.Add({{"source", source}, {"result", result}});
    }
  }
  s.queued = &prometheus::BuildGauge()
                  .Name("bzzz_slurp_queue_depth")
                  .Help("SLURP events waiting to be processed in this node's store")
                  .Register(*registry)
                  .Add({});
  s.dead = &prometheus::BuildGauge()
                .Name("bzzz_slurp_dlq_size")
                .Help("SLURP events in the dead-letter queue of this node's store")
                .Register(*registry)
                .Add({});
  s.latency = &prometheus::BuildHistogram()
                   .Name("bzzz_slurp_processing_seconds")
                   .Help("Time to curate an event and write its record")
                   .Register(*registry)
                   .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                                    2.5, 5, 10});
  s.records = &prometheus::BuildCounter()
                   .Name("bzzz_slurp_records_written_total")
                   .Help("Decision records written by this node as admin")
                   .Register(*registry)
                   .Add({});
}

SlurpProbe::~SlurpProbe() = default;

void SlurpProbe::Event(std::string_view source, std::string_view result) {
  std::string key(source);
  key += '/';
  key += result;
  if (auto it = state_->events.find(key); it != state_->events.end()) it->second->Increment();
}

void SlurpProbe::Queue(double queued, double dead) {
  if (state_->queued == nullptr) return;
  state_->queued->Set(queued);
  state_->dead->Set(dead);
}

void SlurpProbe::Processed(double seconds) {
  if (state_->latency != nullptr) state_->latency->Observe(seconds);
}

void SlurpProbe::RecordWritten() {
  if (state_->records != nullptr) state_->records->Increment();
}

}  // namespace bzzz::slurp
