// Metrics of the election (SPEC §3.5, §4). Only this class knows their
// names:
//   bzzz_election_state{node_id}              0 follower (or observer), 1 candidate, 2 admin
//   bzzz_election_term                        current term
//   bzzz_election_leadership_changes_total    changes of the admin this node has seen
//   bzzz_election_heartbeat_age_seconds       since the last admin heartbeat heard (0 on the admin)
// Thread-safe; no-ops without a registry.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
}

namespace bzzz::election {

class ElectionProbe {
 public:
  ElectionProbe(prometheus::Registry* registry, const std::string& node_id);
  ~ElectionProbe();

  // `state` as bzzz_election_state counts it; `leadership_changes` is the
  // running total (the counter follows it).
  void Observe(int state, std::uint64_t term, std::uint64_t leadership_changes, double heartbeat_age_seconds);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::election
