#include "election/score.h"

#include <algorithm>

namespace bzzz::election {

double CandidateScore(const ScoreInputs& in) {
  const double uptime = std::min(1.0, std::max(0.0, in.uptime_hours));
  const double caps = std::min(1.0, static_cast<double>(in.capabilities) / 8);
  const double free = std::clamp(in.free_resources, 0.0, 1.0);
  const double network =
      in.electorate <= 1
          ? 1.0
          : std::min(1.0, static_cast<double>(in.connected_peers) / static_cast<double>(in.electorate - 1));
  const double experience = std::min(1.0, static_cast<double>(in.succeeded_attempts) / 100);
  return 0.25 * uptime + 0.15 * caps + 0.25 * free + 0.20 * network + 0.15 * experience;
}

}  // namespace bzzz::election
