// Metrics of the UCXL subsystem (SPEC §3.9, §4). Only this class knows
// their names:
//   bzzz_ucxl_resolutions_total{result="found",source="local"|"cache"|"dht"}
//   bzzz_ucxl_resolutions_total{result="not_found"|"error",source="none"}
//       every series at zero from start
//   bzzz_ucxl_resolution_duration_seconds   get and navigate
//   bzzz_ucxl_stored_versions, bzzz_ucxl_stored_bytes   this node's store
// Thread-safe; no-ops without a registry.
#pragma once

#include <cstdint>
#include <memory>

#include "ucxl/context_store.h"

namespace prometheus {
class Registry;
}

namespace bzzz::ucxl {

class UcxlProbe {
 public:
  explicit UcxlProbe(prometheus::Registry* registry);
  ~UcxlProbe();

  // A resolution that found a version at `source`.
  void Found(Source source, double seconds);
  // One that found nothing (`not_found`) or failed.
  void NotResolved(bool not_found, double seconds);
  void Stored(std::uint64_t versions, std::uint64_t bytes);
  bool enabled() const { return state_ != nullptr; }

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::ucxl
