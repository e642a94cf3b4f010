// Metrics of HMMM (SPEC §3.7, §4). Only this class knows their names:
//   bzzz_hmmm_rooms{state}                         rooms this node owns, by state (archived rooms leave memory:
//                                                  "archived" counts those archived since start)
//   bzzz_hmmm_messages_total{type}                 messages accepted, by type (the room's own included)
//   bzzz_hmmm_refused_total{reason}                posts refused: closed, too_large, hop_limit, participants,
//                                                  room_rate, agent_rate, invalid
//   bzzz_hmmm_escalations_total{reason}            requested, keyword, message_limit, timeout
//   bzzz_hmmm_decisions_total{kind}                quorum (a plan accepted), resolution (an operator)
//   bzzz_hmmm_time_to_decision_seconds             from a room's opening to its decision
//   bzzz_hmmm_webhook_deliveries_total{result}     delivered, retried, failed
// Every series with a known label set exists at zero from start.
// Thread-safe; no-ops without a registry.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "hmmm/room.h"

namespace prometheus {
class Registry;
}

namespace bzzz::hmmm {

class HmmmProbe {
 public:
  explicit HmmmProbe(prometheus::Registry* registry);
  ~HmmmProbe();

  void Rooms(const std::map<RoomState, int>& by_state, std::uint64_t archived);
  void Accepted(const MessageRow& message);  // counts escalations and decisions too
  void Refused(Refusal refusal);
  void Decided(double seconds_since_open);
  // result: "delivered", "retried" (an attempt failed, another follows), "failed" (given up).
  void Webhook(std::string_view result);
  // A help request this node's task made: "answered" (at least one
  // answer), "unanswered", "failed" (the room could not take it).
  void HelpAsked(std::string_view result);
  // Another node's help request as this node's helper saw it: "answered",
  // "skipped" (capabilities, expired, seen before), "busy" (queue full),
  // "failed" (the model or the post failed).
  void HelpSeen(std::string_view result);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::hmmm
