// Metrics of the DHT subsystem (SPEC §3.4, §4). Only this class knows their
// names:
//   bzzz_dht_put_operations_total{result="success"|"failure"}
//   bzzz_dht_get_operations_total{result="success"|"failure"|"not_found"}
//   bzzz_dht_operation_failures_total{operation,reason}   timeout, invalid (no
//       copy verified), rejected (no node stored it); a get that finds
//       nothing is get result "not_found", not a failure
// Every series with a known label set exists at zero from start.
//   bzzz_dht_operation_latency_seconds{operation}          put, get, announce, discover
//   bzzz_dht_replication_factor                            mean over held records; absent until measured
//   bzzz_dht_provider_records                              records this node provides
//   bzzz_dht_records_held
//   bzzz_dht_cache_hits_total, bzzz_dht_cache_misses_total, bzzz_dht_cache_bytes
//   bzzz_errors_total{component="dht"}
// Thread-safe; no-ops without a registry.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

namespace prometheus {
class Registry;
}

namespace bzzz::dht {

enum class Operation { kPut, kGet, kAnnounce, kDiscover };

class DhtProbe {
 public:
  explicit DhtProbe(prometheus::Registry* registry);
  ~DhtProbe();

  // `failure_reason` empty on success; "not_found" counts as its own get result.
  void Done(Operation op, double seconds, std::string_view failure_reason);
  // `average` empty: nothing measured yet (the gauge stays absent until it is).
  void Replication(std::optional<double> average, std::size_t provided, std::size_t held);
  void Cache(bool hit);
  void CacheBytes(std::size_t bytes);
  void Error();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::dht
