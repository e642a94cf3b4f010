#include "ops/process_metrics.h"

#include "base/machine.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <prometheus/metric_family.h>

namespace bzzz::ops {

namespace {

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats s;
  static const long ticks = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  {
    std::ifstream in("/proc/self/stat");
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may contain spaces: parse after its ')'.
    const auto close = content.rfind(')');
    if (close != std::string::npos) {
      std::istringstream fields(content.substr(close + 2));
      std::vector<std::string> f;
      std::string token;
      while (fields >> token) f.push_back(token);
      // f[0] is field 3 (state); field N is f[N - 3].
      if (f.size() > 21 && ticks > 0) {
        s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(ticks);
        s.threads = std::stoull(f[17]);
        s.start_time_seconds = BootTimeSeconds() + std::stod(f[19]) / static_cast<double>(ticks);
        s.virtual_bytes = std::stoull(f[20]);
        s.resident_bytes = std::stoull(f[21]) * static_cast<std::uint64_t>(page);
      }
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++s.open_fds;
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = limit.rlim_cur;

  const std::uint64_t memory_limit = MemoryLimitBytes();  // base/machine.h
  s.memory_limit_bytes = memory_limit;
  if (memory_limit > 0) {
    s.memory_usage_ratio = static_cast<double>(s.resident_bytes) / static_cast<double>(memory_limit);
  }
  return s;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const ProcessStats s = ReadProcessStats();
  using prometheus::MetricType;
  return {
      Family("process_cpu_seconds_total", "User and system CPU time spent in seconds", MetricType::Counter,
             s.cpu_seconds),
      Family("process_resident_memory_bytes", "Resident memory size in bytes", MetricType::Gauge,
             static_cast<double>(s.resident_bytes)),
      Family("process_virtual_memory_bytes", "Virtual memory size in bytes", MetricType::Gauge,
             static_cast<double>(s.virtual_bytes)),
      Family("process_open_fds", "Number of open file descriptors", MetricType::Gauge,
             static_cast<double>(s.open_fds)),
      Family("process_max_fds", "Maximum number of open file descriptors", MetricType::Gauge,
             static_cast<double>(s.max_fds)),
      Family("process_start_time_seconds", "Start time of the process since unix epoch in seconds",
             MetricType::Gauge, s.start_time_seconds),
      Family("process_threads", "Number of OS threads in the process", MetricType::Gauge,
             static_cast<double>(s.threads)),
      Family("no_memory_usage_ratio", "Resident memory over the memory the process may use (cgroup or machine)",
             MetricType::Gauge, s.memory_usage_ratio),
  };
}

}  // namespace bzzz::ops
