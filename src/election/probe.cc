#include "election/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace bzzz::election {

struct ElectionProbe::State {
  prometheus::Gauge* state = nullptr;
  prometheus::Gauge* term = nullptr;
  prometheus::Counter* changes = nullptr;
  prometheus::Gauge* age = nullptr;
};

ElectionProbe::ElectionProbe(prometheus::Registry* registry, const std::string& node_id) {
  if (registry == nullptr) return;
  state_ = std::make_unique<State>();
  state_->state = &prometheus::BuildGauge()
                       .Name("bzzz_election_state")
                       .Help("Election state of this node: 0 follower (or observer), 1 candidate, 2 admin")
                       .Register(*registry)
                       .Add({{"node_id", node_id}});
  state_->term = &prometheus::BuildGauge()
                      .Name("bzzz_election_term")
                      .Help("Current election term")
                      .Register(*registry)
                      .Add({});
  state_->changes = &prometheus::BuildCounter()
                         .Name("bzzz_election_leadership_changes_total")
                         .Help("Changes of the admin this node has seen")
                         .Register(*registry)
                         .Add({});
  state_->age = &prometheus::BuildGauge()
                     .Name("bzzz_election_heartbeat_age_seconds")
                     .Help("Seconds since the last admin heartbeat this node heard (0 on the admin)")
                     .Register(*registry)
                     .Add({});
}

ElectionProbe::~ElectionProbe() = default;

void ElectionProbe::Observe(int state, std::uint64_t term, std::uint64_t leadership_changes,
                            double heartbeat_age_seconds) {
  if (!state_) return;
  state_->state->Set(state);
  state_->term->Set(static_cast<double>(term));
  const double changes = static_cast<double>(leadership_changes);
  if (changes > state_->changes->Value()) state_->changes->Increment(changes - state_->changes->Value());
  state_->age->Set(heartbeat_age_seconds);
}

}  // namespace bzzz::election
