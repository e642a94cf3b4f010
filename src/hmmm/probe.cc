#include "hmmm/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace bzzz::hmmm {

namespace {
constexpr const char* kEscalationReasons[] = {"requested", "keyword", "message_limit", "timeout"};
}

struct HmmmProbe::State {
  std::map<std::string, prometheus::Gauge*> rooms;
  std::map<std::string, prometheus::Counter*> messages;
  std::map<std::string, prometheus::Counter*> refused;
  std::map<std::string, prometheus::Counter*> escalations;
  std::map<std::string, prometheus::Counter*> decisions;
  prometheus::Histogram* time_to_decision = nullptr;
  std::map<std::string, prometheus::Counter*, std::less<>> webhook;
  std::map<std::string, prometheus::Counter*, std::less<>> help_asked;
  std::map<std::string, prometheus::Counter*, std::less<>> help_seen;
};

HmmmProbe::HmmmProbe(prometheus::Registry* registry) : state_(std::make_unique<State>()) {
  if (registry == nullptr) return;
  auto& s = *state_;
  auto& rooms = prometheus::BuildGauge()
                    .Name("bzzz_hmmm_rooms")
                    .Help("Rooms this node owns, by state (archived: archived since start)")
                    .Register(*registry);
  for (RoomState st : {RoomState::kOpen, RoomState::kDecided, RoomState::kEscalated, RoomState::kResolved,
                       RoomState::kArchived}) {
    const std::string name(RoomStateName(st));
    s.rooms[name] = &rooms.Add({{"state", name}});
  }
  auto& messages =
      prometheus::BuildCounter().Name("bzzz_hmmm_messages_total").Help("Room messages accepted, by type").Register(*registry);
  for (MessageType t : kMessageTypes) {
    const std::string name(MessageTypeName(t));
    s.messages[name] = &messages.Add({{"type", name}});
  }
  auto& refused =
      prometheus::BuildCounter().Name("bzzz_hmmm_refused_total").Help("Room posts refused, by reason").Register(*registry);
  for (Refusal r : kRefusals) {
    const std::string name(RefusalName(r));
    s.refused[name] = &refused.Add({{"reason", name}});
  }
  auto& escalations = prometheus::BuildCounter()
                          .Name("bzzz_hmmm_escalations_total")
                          .Help("Rooms escalated to a human, by reason")
                          .Register(*registry);
  for (const char* reason : kEscalationReasons) s.escalations[reason] = &escalations.Add({{"reason", reason}});
  auto& decisions = prometheus::BuildCounter()
                        .Name("bzzz_hmmm_decisions_total")
                        .Help("Room decisions: quorum (a plan accepted) or resolution (an operator)")
                        .Register(*registry);
  for (const char* kind : {"quorum", "resolution"}) s.decisions[kind] = &decisions.Add({{"kind", kind}});
  auto& webhook = prometheus::BuildCounter()
                      .Name("bzzz_hmmm_webhook_deliveries_total")
                      .Help("Escalation webhook calls: delivered, retried (failed, another follows), failed (given up)")
                      .Register(*registry);
  for (const char* result : {"delivered", "retried", "failed"}) s.webhook[result] = &webhook.Add({{"result", result}});
  auto& asked = prometheus::BuildCounter()
                    .Name("bzzz_hmmm_help_requests_total")
                    .Help("Help requests of this node's stuck tasks: answered, unanswered, failed")
                    .Register(*registry);
  for (const char* result : {"answered", "unanswered", "failed"}) s.help_asked[result] = &asked.Add({{"result", result}});
  auto& seen = prometheus::BuildCounter()
                   .Name("bzzz_hmmm_help_answers_total")
                   .Help("Other nodes' help requests seen by this node's helper: answered, skipped, busy, failed")
                   .Register(*registry);
  for (const char* result : {"answered", "skipped", "busy", "failed"}) s.help_seen[result] = &seen.Add({{"result", result}});
  s.time_to_decision = &prometheus::BuildHistogram()
                            .Name("bzzz_hmmm_time_to_decision_seconds")
                            .Help("Time from a room's opening to its decision")
                            .Register(*registry)
                            .Add({}, prometheus::Histogram::BucketBoundaries{1, 5, 15, 30, 60, 120, 300, 600, 1800,
                                                                             3600, 7200, 86400});
}

HmmmProbe::~HmmmProbe() = default;

void HmmmProbe::Rooms(const std::map<RoomState, int>& by_state, std::uint64_t archived) {
  auto& s = *state_;
  if (s.rooms.empty()) return;
  for (auto& [name, gauge] : s.rooms) gauge->Set(0);
  for (const auto& [st, n] : by_state) s.rooms[std::string(RoomStateName(st))]->Set(n);
  s.rooms["archived"]->Set(static_cast<double>(archived));
}

void HmmmProbe::Accepted(const MessageRow& m) {
  auto& s = *state_;
  if (s.messages.empty()) return;
  if (auto it = s.messages.find(m.type); it != s.messages.end()) it->second->Increment();
  if (m.type == "escalation") {
    std::string reason = "requested";
    if (m.agent == "hmmm") {
      const nlohmann::json body = ParseJson(m.body);
      if (body.is_object()) reason = body.value("reason", "requested");
    }
    if (auto it = s.escalations.find(reason); it != s.escalations.end()) it->second->Increment();
  }
  if (m.type == "decision") s.decisions[m.agent == "hmmm" ? "quorum" : "resolution"]->Increment();
}

void HmmmProbe::Refused(Refusal refusal) {
  auto& s = *state_;
  if (s.refused.empty()) return;
  s.refused[std::string(RefusalName(refusal))]->Increment();
}

void HmmmProbe::Webhook(std::string_view result) {
  if (auto it = state_->webhook.find(result); it != state_->webhook.end()) it->second->Increment();
}

void HmmmProbe::HelpAsked(std::string_view result) {
  if (auto it = state_->help_asked.find(result); it != state_->help_asked.end()) it->second->Increment();
}

void HmmmProbe::HelpSeen(std::string_view result) {
  if (auto it = state_->help_seen.find(result); it != state_->help_seen.end()) it->second->Increment();
}

void HmmmProbe::Decided(double seconds) {
  if (state_->time_to_decision != nullptr) state_->time_to_decision->Observe(seconds);
}

}  // namespace bzzz::hmmm
