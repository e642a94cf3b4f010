// Room: the rules of one HMMM room as a deterministic state machine
// (SPEC §3.7, docs/hmmm.md). Time is passed in; nothing here blocks, talks
// to the network or stores anything: the service persists what Accept,
// Advance and Resolve return, in order, and only then answers.
//
// The rules, in the order they apply to a post:
//   1. A room that is not open takes no posts (decided and resolved rooms
//      are closed; an escalated one waits for an operator).
//   2. Refused and counted: a body over max_message_bytes, a hop count over
//      hop_limit, a new participant past max_participants, a room or an
//      agent over its rate (token buckets, burst twice the rate), a type a
//      participant may not post (decision), an agreement or objection that
//      does not answer the open proposal.
//   3. A post whose id the room has accepted before is a duplicate: the
//      room is unchanged and the caller gets the original back.
//   4. Posting joins the room. A plan_proposed opens an objection window of
//      objection_window and supersedes the open proposal, if any; its
//      proposer counts as agreeing. An objection to the open proposal ends
//      it: only a new proposal can answer it.
//   5. When the window closes and the proposal has no objection and the
//      agreement of at least ceil(quorum x participants) of the room's
//      current participants (those who left do not count), the room posts
//      the decision and closes. Otherwise the proposal expires.
//   6. The room escalates on an escalation post, on a body containing one
//      of the escalation keywords (whole words, any case), when its
//      message count reaches message_limit, or when it is still open
//      room_timeout after it opened. An escalated room takes no posts until
//      an operator resolves it (Resolve), which posts a decision.
//   7. A closed room is archived room_ttl after it closed.
// A room never holds two decisions (asserted where the decision is made).
// Not thread-safe: the service serializes calls per room.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "hmmm/repository.h"

namespace bzzz::hmmm {

enum class MessageType {
  kPlanProposed,
  kObjection,
  kHelpRequest,
  kHelpResponse,
  kAgreement,
  kDependencyAlert,
  kEscalation,
  kDecision,
};
std::string_view MessageTypeName(MessageType type);  // "plan_proposed", ...
std::optional<MessageType> ParseMessageType(std::string_view name);
inline constexpr MessageType kMessageTypes[] = {
    MessageType::kPlanProposed, MessageType::kObjection,       MessageType::kHelpRequest, MessageType::kHelpResponse,
    MessageType::kAgreement,    MessageType::kDependencyAlert, MessageType::kEscalation,  MessageType::kDecision};

enum class RoomState { kOpen, kDecided, kEscalated, kResolved, kArchived };
std::string_view RoomStateName(RoomState state);  // "open", ...
std::optional<RoomState> ParseRoomState(std::string_view name);

// Why a post was refused; a metric label.
enum class Refusal { kClosed, kTooLarge, kHopLimit, kParticipants, kRoomRate, kAgentRate, kInvalid };
std::string_view RefusalName(Refusal refusal);  // "closed", "too_large", ...
inline constexpr Refusal kRefusals[] = {Refusal::kClosed,    Refusal::kTooLarge,  Refusal::kHopLimit, Refusal::kParticipants,
                                        Refusal::kRoomRate, Refusal::kAgentRate, Refusal::kInvalid};

struct Rules {
  std::int64_t objection_window_ms = 30000;
  double quorum = 0.5;
  int message_limit = 200;
  std::int64_t room_timeout_ms = 1800000;
  std::int64_t room_ttl_ms = 86400000;
  int hop_limit = 8;
  int max_participants = 32;
  std::size_t max_message_bytes = 16384;
  double room_rate = 20;   // messages per second
  double agent_rate = 5;   // per agent
  std::vector<std::string> escalation_keywords;

  static Rules From(const config::HmmmConfig& config);
};

// What a participant sends.
struct Post {
  std::string id;  // "" to have one assigned ("auto-<seq>"); auto-, decision-, escalation-, resolution- are reserved
  MessageType type = MessageType::kHelpRequest;
  std::string agent;
  std::string node;
  std::string in_reply_to;
  std::string body;
  int hop_count = 0;
};

// "" when `agent` is a usable agent name ([A-Za-z0-9_.:@-], 1..128), else why not.
std::string ValidateAgent(std::string_view agent);
// "" when `id` is a usable message or room id ([A-Za-z0-9_-], 1..64), else why not.
std::string ValidateId(std::string_view id);

struct Outcome {
  bool accepted = false;
  bool duplicate = false;           // the room accepted this id before: `duplicate_seq` is its seq
  std::int64_t duplicate_seq = 0;
  Refusal refusal = Refusal::kInvalid;
  std::string why;                  // when refused
  std::vector<MessageRow> messages; // to persist, in order: the post, then what it caused
};

struct Participant {
  std::string agent;
  std::string node;
  std::int64_t joined_ms = 0;
  std::string Key() const { return agent + "@" + node; }
};

struct Proposal {
  std::string id;
  std::string proposer;  // agent@node
  std::int64_t opened_ms = 0;
  std::int64_t closes_ms = 0;
  std::set<std::string> agreed;    // agent@node, the proposer included
  std::set<std::string> objected;
};

class Room {
 public:
  // A new room opened with `seed` (a help_request, plan_proposed or
  // dependency_alert). `meta` gives id, task_id, project, title and
  // owner_node. InvalidArgument when the seed would be refused.
  static Result<std::pair<Room, std::vector<MessageRow>>> Open(RoomRow meta, Rules rules, Post seed,
                                                               std::int64_t now_ms);
  // A room as stored (its doc holds the rule state).
  static Result<Room> FromRow(const RoomRow& row, Rules rules);

  Outcome Accept(Post post, std::int64_t now_ms);
  // What time does: windows close (a decision), the room times out (an
  // escalation), a closed room is archived. Returns the messages to persist.
  std::vector<MessageRow> Advance(std::int64_t now_ms);
  // Idempotent. FailedPrecondition when the room is closed, ResourceExhausted
  // past max_participants.
  Status Join(std::string_view agent, std::string_view node, std::int64_t now_ms);
  Status Leave(std::string_view agent, std::string_view node, std::int64_t now_ms);
  // An operator's answer to an open or escalated room: kind "answer",
  // "decision" or "retry" (with `input`, a JSON text or ""); posts a
  // decision by "operator:<by>" and closes the room as resolved.
  Result<std::vector<MessageRow>> Resolve(std::string_view kind, std::string_view text, std::string_view input,
                                          std::string_view by, std::int64_t now_ms);

  RoomRow Row() const;  // with the doc
  RoomState state() const { return state_; }
  const std::string& id() const { return meta_.id; }
  const std::vector<Participant>& participants() const { return participants_; }
  const std::optional<Proposal>& proposal() const { return proposal_; }
  const std::string& decision_id() const { return decision_id_; }
  const std::string& escalation_reason() const { return escalation_reason_; }
  std::int64_t message_count() const { return meta_.last_seq; }
  // The escalation webhook's news of this room: "" (nothing to tell),
  // "pending" (escalated, not delivered yet), "delivered", "failed".
  const std::string& webhook() const { return webhook_; }
  void set_webhook(std::string state) { webhook_ = std::move(state); }
  // The earliest time Advance has something to do; 0 for never.
  std::int64_t NextDeadline() const;

 private:
  Room(RoomRow meta, Rules rules);
  struct Bucket {
    bool started = false;  // full at first use
    double tokens = 0;
    std::int64_t at_ms = 0;
  };
  bool Take(Bucket& bucket, double rate, std::int64_t now_ms);
  MessageRow Append(std::string id, MessageType type, std::string agent, std::string node, std::string in_reply_to,
                    std::string body, int hop_count, std::int64_t now_ms);
  void Escalate(std::string reason, std::string detail, std::int64_t now_ms, std::vector<MessageRow>& out);
  std::string Keyword(std::string_view body) const;
  Outcome Refuse(Refusal refusal, std::string why) const;

  RoomRow meta_;
  Rules rules_;
  RoomState state_ = RoomState::kOpen;
  std::vector<Participant> participants_;
  std::optional<Proposal> proposal_;
  std::map<std::string, std::int64_t> ids_;  // message id -> seq
  std::string decision_id_;
  std::string escalation_reason_;
  std::string webhook_;
  std::int64_t closed_ms_ = 0;
  Bucket room_bucket_;
  std::map<std::string, Bucket> agent_buckets_;
};

}  // namespace bzzz::hmmm
