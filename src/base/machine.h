// What the node may use of the machine it runs on: the one reader of CPU
// and memory figures, aware of cgroup limits (v2, and v1 for memory), so
// that a node in a container with 1 CPU and 512 MiB judges itself by
// those, not by the host's. Used by the agent pool's autoscaler, the
// election's candidate score and the process metrics.
#pragma once

#include <chrono>
#include <cstdint>

namespace bzzz {

// Cores the node may use: the cgroup v2 quota (cpu.max) when there is one,
// else the online processors; at least a fraction above 0.
double AvailableCores();

// Bytes of memory the node may use: the cgroup limit (memory.max, or v1
// memory.limit_in_bytes) when lower than the machine's, else MemTotal.
// 0 when unknown.
std::uint64_t MemoryLimitBytes();

// Share of that memory in use, in [0, 1]: the cgroup's memory.current when
// a cgroup limit applies, else the machine's MemTotal - MemAvailable.
double MemoryUsedRatio();

// CPU in use, in [0, 1], since the previous Sample() of this sampler (the
// first call has nothing to compare with and answers 0). With a cgroup v2
// CPU quota: the
// cgroup's usage over the quota; else the whole machine's busy share from
// /proc/stat. Not thread-safe: one sampler per caller.
class CpuSampler {
 public:
  double Sample();

 private:
  bool have_previous_ = false;
  std::uint64_t busy_ = 0, total_ = 0;  // machine: /proc/stat jiffies
  std::uint64_t usage_usec_ = 0;        // cgroup: cpu.stat usage_usec
  std::chrono::steady_clock::time_point at_{};
};

}  // namespace bzzz
