// Process and memory facts read from /proc and the cgroup, for the
// "memory" health check and the process_* and no_memory_usage_ratio metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include <prometheus/collectable.h>

namespace bzzz::ops {

struct ProcessStats {
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  double cpu_seconds = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
  double start_time_seconds = 0;  // Unix time
  std::uint64_t threads = 0;
  // The memory this process may use: the cgroup limit when one is set,
  // otherwise the machine's total memory.
  std::uint64_t memory_limit_bytes = 0;
  double memory_usage_ratio = 0;  // resident / limit
};

// Reads the current stats; fields it cannot read stay 0.
ProcessStats ReadProcessStats();

// Exposes process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds, process_threads and no_memory_usage_ratio,
// read fresh at every scrape. Pass it to OperationalApi::collectables
// (ops/operational_api.h) to have /metrics include it.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace bzzz::ops
