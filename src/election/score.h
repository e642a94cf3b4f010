// The candidate score a node stands with (docs/election.md): the higher
// score wins an election among candidates of the same term. Pure: the
// inputs are measured by the caller (election/api.cc).
//
//   0.25 uptime          hours running, saturating at 1 hour
//   0.15 capabilities    configured capabilities, saturating at 8
//   0.25 free resources  mean of free CPU (1 - one-minute load per core) and free
//                        memory, within the cgroup's limits
//   0.20 network         connected peers over the other members of the electorate
//   0.15 experience      task attempts this node's agents finished successfully,
//                        saturating at 100
#pragma once

#include <cstddef>
#include <cstdint>

namespace bzzz::election {

struct ScoreInputs {
  double uptime_hours = 0;
  std::size_t capabilities = 0;
  double free_resources = 0;      // 0..1
  std::size_t connected_peers = 0;
  std::size_t electorate = 0;     // members, this node included
  std::uint64_t succeeded_attempts = 0;
};

double CandidateScore(const ScoreInputs& in);

}  // namespace bzzz::election
