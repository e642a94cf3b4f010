#include "base/backoff.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace bzzz {

std::int64_t BackoffMs(int failures, std::int64_t base_ms, std::int64_t max_ms, double u) {
  if (failures < 1) failures = 1;
  double d = static_cast<double>(base_ms) * std::pow(2.0, std::min(failures - 1, 40));
  d = std::min(d, static_cast<double>(max_ms));
  u = std::clamp(u, 0.0, 1.0);
  return static_cast<std::int64_t>(d / 2 + u * d / 2);
}

double UniformJitter() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace bzzz
