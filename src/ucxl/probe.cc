#include "ucxl/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace bzzz::ucxl {

struct UcxlProbe::State {
  prometheus::Counter* found[3] = {};  // by Source
  prometheus::Counter* not_found = nullptr;
  prometheus::Counter* error = nullptr;
  prometheus::Histogram* latency = nullptr;
  prometheus::Gauge* versions = nullptr;
  prometheus::Gauge* bytes = nullptr;
};

UcxlProbe::UcxlProbe(prometheus::Registry* registry) {
  if (registry == nullptr) return;
  state_ = std::make_unique<State>();
  auto& resolutions =
      prometheus::BuildCounter()
          .Name("bzzz_ucxl_resolutions_total")
          .Help("UCXL resolutions (get, navigate) by result and by where they were answered from")
          .Register(*registry);
  for (Source source : {Source::kLocal, Source::kCache, Source::kDht}) {
    state_->found[static_cast<int>(source)] =
        &resolutions.Add({{"result", "found"}, {"source", std::string(SourceName(source))}});
  }
  state_->not_found = &resolutions.Add({{"result", "not_found"}, {"source", "none"}});
  state_->error = &resolutions.Add({{"result", "error"}, {"source", "none"}});
  state_->latency =
      &prometheus::BuildHistogram()
           .Name("bzzz_ucxl_resolution_duration_seconds")
           .Help("Time to resolve a UCXL address")
           .Register(*registry)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                            0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
  state_->versions = &prometheus::BuildGauge()
                          .Name("bzzz_ucxl_stored_versions")
                          .Help("Context versions in this node's store (tombstones included)")
                          .Register(*registry)
                          .Add({});
  state_->bytes = &prometheus::BuildGauge()
                       .Name("bzzz_ucxl_stored_bytes")
                       .Help("Bytes of context content in this node's store")
                       .Register(*registry)
                       .Add({});
}

UcxlProbe::~UcxlProbe() = default;

void UcxlProbe::Found(Source source, double seconds) {
  if (!state_) return;
  state_->found[static_cast<int>(source)]->Increment();
  state_->latency->Observe(seconds);
}

void UcxlProbe::NotResolved(bool not_found, double seconds) {
  if (!state_) return;
  (not_found ? state_->not_found : state_->error)->Increment();
  state_->latency->Observe(seconds);
}

void UcxlProbe::Stored(std::uint64_t versions, std::uint64_t bytes) {
  if (!state_) return;
  state_->versions->Set(static_cast<double>(versions));
  state_->bytes->Set(static_cast<double>(bytes));
}

}  // namespace bzzz::ucxl
