#include "base/machine.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>

namespace bzzz {

namespace {

// The number in a one-value file; nullopt for "max", a missing file or junk.
std::optional<std::uint64_t> ReadNumber(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::nullopt;
  try {
    return std::stoull(text);
  } catch (...) {
    return std::nullopt;
  }
}

// kB values of /proc/meminfo, as bytes.
std::uint64_t MemInfo(const char* field) {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kb = 0;
  while (in >> key >> kb >> unit) {
    if (key == field) return kb * 1024;
  }
  return 0;
}

// The cgroup's memory limit when it is below the machine's.
std::optional<std::uint64_t> CgroupMemoryLimit() {
  const std::uint64_t total = MemInfo("MemTotal:");
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (auto v = ReadNumber(path); v && *v > 0 && (total == 0 || *v < total)) return v;
  }
  return std::nullopt;
}

// cgroup v2 cpu.max "quota period" as cores; nullopt without a quota.
std::optional<double> CgroupCpuQuota() {
  std::ifstream in("/sys/fs/cgroup/cpu.max");
  std::string quota;
  std::uint64_t period = 0;
  if (!(in >> quota >> period) || quota == "max" || period == 0) return std::nullopt;
  try {
    return static_cast<double>(std::stoull(quota)) / static_cast<double>(period);
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::uint64_t> CgroupCpuUsageUsec() {
  std::ifstream in("/sys/fs/cgroup/cpu.stat");
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "usage_usec") return value;
  }
  return std::nullopt;
}

}  // namespace

double AvailableCores() {
  if (auto quota = CgroupCpuQuota()) return std::max(0.01, *quota);
  return static_cast<double>(std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN)));
}

std::uint64_t MemoryLimitBytes() {
  if (auto limit = CgroupMemoryLimit()) return *limit;
  return MemInfo("MemTotal:");
}

double MemoryUsedRatio() {
  if (auto limit = CgroupMemoryLimit()) {
    for (const char* path : {"/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}) {
      if (auto used = ReadNumber(path)) return std::clamp(static_cast<double>(*used) / static_cast<double>(*limit), 0.0, 1.0);
    }
  }
  const std::uint64_t total = MemInfo("MemTotal:");
  if (total == 0) return 0;
  const std::uint64_t available = MemInfo("MemAvailable:");
  return std::clamp(1.0 - static_cast<double>(available) / static_cast<double>(total), 0.0, 1.0);
}

double CpuSampler::Sample() {
  const auto now = std::chrono::steady_clock::now();
  if (auto quota = CgroupCpuQuota()) {
    if (auto usage = CgroupCpuUsageUsec()) {
      double busy = 0;
      const double elapsed_us = std::chrono::duration<double, std::micro>(now - at_).count();
      if (have_previous_ && elapsed_us > 0 && *usage >= usage_usec_) {
        busy = static_cast<double>(*usage - usage_usec_) / (elapsed_us * std::max(0.01, *quota));
      }
      usage_usec_ = *usage;
      at_ = now;
      have_previous_ = true;
      return std::clamp(busy, 0.0, 1.0);
    }
  }
  std::ifstream f("/proc/stat");
  std::string cpu;
  std::uint64_t v[8] = {};
  f >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
  if (!f) return 0;
  const std::uint64_t idle = v[3] + v[4];
  std::uint64_t total = 0;
  for (auto x : v) total += x;
  const std::uint64_t busy = total - idle;
  double share = 0;
  if (have_previous_ && total > total_) {
    share = static_cast<double>(busy - std::min(busy, busy_)) / static_cast<double>(total - total_);
  }
  busy_ = busy;
  total_ = total;
  at_ = now;
  have_previous_ = true;
  return std::clamp(share, 0.0, 1.0);
}

}  // namespace bzzz
