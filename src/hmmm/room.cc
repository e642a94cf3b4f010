#include "hmmm/room.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "base/invariant.h"
#include "base/json.h"

namespace bzzz::hmmm {
namespace {

using nlohmann::json;

constexpr std::string_view kTypeNames[] = {"plan_proposed", "objection",        "help_request", "help_response",
                                           "agreement",     "dependency_alert", "escalation",   "decision"};
constexpr std::string_view kStateNames[] = {"open", "decided", "escalated", "resolved", "archived"};
constexpr std::string_view kRefusalNames[] = {"closed",    "too_large",  "hop_limit", "participants",
                                              "room_rate", "agent_rate", "invalid"};
// The room's own voice in what it posts (decisions, escalations).
constexpr std::string_view kRoomAgent = "hmmm";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool WordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

std::string_view MessageTypeName(MessageType type) { return kTypeNames[static_cast<int>(type)]; }
std::optional<MessageType> ParseMessageType(std::string_view name) {
  for (MessageType t : kMessageTypes) {
    if (MessageTypeName(t) == name) return t;
  }
  return std::nullopt;
}
std::string_view RoomStateName(RoomState state) { return kStateNames[static_cast<int>(state)]; }
std::optional<RoomState> ParseRoomState(std::string_view name) {
  for (int i = 0; i < 5; ++i) {
    if (kStateNames[i] == name) return static_cast<RoomState>(i);
  }
  return std::nullopt;
}
std::string_view RefusalName(Refusal refusal) { return kRefusalNames[static_cast<int>(refusal)]; }

Rules Rules::From(const config::HmmmConfig& c) {
  Rules r;
  r.objection_window_ms = c.objection_window.count();
  r.quorum = c.quorum;
  r.message_limit = c.message_limit;
  r.room_timeout_ms = c.room_timeout.count();
  r.room_ttl_ms = c.room_ttl.count();
  r.hop_limit = c.hop_limit;
  r.max_participants = c.max_participants;
  r.max_message_bytes = c.max_message_bytes;
  r.room_rate = c.room_messages_per_second;
  r.agent_rate = c.agent_messages_per_second;
  r.escalation_keywords = c.escalation_keywords;
  return r;
}

std::string ValidateAgent(std::string_view agent) {
  if (agent.empty() || agent.size() > 128) return "agent must be 1 to 128 characters";
  for (char c : agent) {
    if (!WordChar(c) && c != '.' && c != ':' && c != '@' && c != '-') {
      return "agent may hold only letters, digits and _ . : @ -";
    }
  }
  return "";
}

std::string ValidateId(std::string_view id) {
  if (id.empty() || id.size() > 64) return "id must be 1 to 64 characters";
  for (char c : id) {
    if (!WordChar(c) && c != '-') return "id may hold only letters, digits, _ and -";
  }
  return "";
}

Room::Room(RoomRow meta, Rules rules) : meta_(std::move(meta)), rules_(std::move(rules)) {}

Result<std::pair<Room, std::vector<MessageRow>>> Room::Open(RoomRow meta, Rules rules, Post seed, std::int64_t now_ms) {
  if (auto why = ValidateId(meta.id); !why.empty()) return InvalidArgument("room " + why);
  if (seed.type != MessageType::kHelpRequest && seed.type != MessageType::kPlanProposed &&
      seed.type != MessageType::kDependencyAlert) {
    return InvalidArgument("a room opens with a help_request, plan_proposed or dependency_alert, not " +
                           std::string(MessageTypeName(seed.type)));
  }
  meta.state = "open";
  meta.created_ms = now_ms;
  meta.updated_ms = now_ms;
  meta.last_seq = 0;
  Room room(std::move(meta), std::move(rules));
  Outcome o = room.Accept(std::move(seed), now_ms);
  if (!o.accepted) return InvalidArgument("seed message: " + o.why);
  return std::pair<Room, std::vector<MessageRow>>{std::move(room), std::move(o.messages)};
}

Outcome Room::Refuse(Refusal refusal, std::string why) const {
  Outcome o;
  o.refusal = refusal;
  o.why = std::move(why);
  return o;
}

bool Room::Take(Bucket& b, double rate, std::int64_t now_ms) {
  const double burst = std::max(1.0, 2 * rate);
  if (!b.started) {
    b.started = true;
    b.tokens = burst;
    b.at_ms = now_ms;
  } else if (now_ms > b.at_ms) {
    b.tokens = std::min(burst, b.tokens + rate * static_cast<double>(now_ms - b.at_ms) / 1000.0);
  }
  b.at_ms = std::max(b.at_ms, now_ms);
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

std::string Room::Keyword(std::string_view body) const {
  if (rules_.escalation_keywords.empty()) return "";
  const std::string text = Lower(body);
  for (const std::string& k : rules_.escalation_keywords) {
    const std::string key = Lower(k);
    if (key.empty()) continue;
    for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
      const bool starts = at == 0 || !WordChar(text[at - 1]);
      const bool ends = at + key.size() == text.size() || !WordChar(text[at + key.size()]);
      if (starts && ends) return k;
    }
  }
  return "";
}

MessageRow Room::Append(std::string id, MessageType type, std::string agent, std::string node, std::string in_reply_to,
                        std::string body, int hop_count, std::int64_t now_ms) {
  MessageRow m;
  m.room_id = meta_.id;
  m.seq = ++meta_.last_seq;
  m.id = id.empty() ? "auto-" + std::to_string(m.seq) : std::move(id);
  m.type = std::string(MessageTypeName(type));
  m.agent = std::move(agent);
  m.node = std::move(node);
  m.in_reply_to = std::move(in_reply_to);
  m.body = std::move(body);
  m.created_ms = now_ms;
  m.hop_count = hop_count;
  ids_[m.id] = m.seq;
  meta_.updated_ms = std::max(meta_.updated_ms, now_ms);
  return m;
}

void Room::Escalate(std::string reason, std::string detail, std::int64_t now_ms, std::vector<MessageRow>& out) {
  if (state_ != RoomState::kOpen) return;
  state_ = RoomState::kEscalated;
  escalation_reason_ = reason;
  webhook_ = "pending";
  if (proposal_) proposal_.reset();
  out.push_back(Append("escalation-" + std::to_string(meta_.last_seq + 1), MessageType::kEscalation,
                       std::string(kRoomAgent), meta_.owner_node, "",
                       DumpJson(json{{"reason", reason}, {"detail", detail}}), 0, now_ms));
}

Outcome Room::Accept(Post post, std::int64_t now_ms) {
  Outcome o;
  o.messages = Advance(now_ms);
  auto refuse = [&](Refusal r, std::string why) {
    Outcome out = Refuse(r, std::move(why));
    out.messages = std::move(o.messages);  // what time did still has to be persisted
    return out;
  };
  if (!post.id.empty()) {
    if (auto why = ValidateId(post.id); !why.empty()) return refuse(Refusal::kInvalid, "message " + why);
    for (std::string_view reserved : {"auto-", "decision-", "escalation-", "resolution-"}) {
      if (std::string_view(post.id).starts_with(reserved)) {
        return refuse(Refusal::kInvalid, "message ids starting with " + std::string(reserved) + " are the room's own");
      }
    }
    if (auto it = ids_.find(post.id); it != ids_.end()) {
      o.accepted = true;
      o.duplicate = true;
      o.duplicate_seq = it->second;
      return o;
    }
  }
  if (state_ != RoomState::kOpen) {
    return refuse(Refusal::kClosed, "room " + meta_.id + " is " + std::string(RoomStateName(state_)) +
                                        (state_ == RoomState::kEscalated ? ": waiting for an operator to resolve it"
                                                                         : ": it takes no more messages"));
  }
  if (auto why = ValidateAgent(post.agent); !why.empty()) return refuse(Refusal::kInvalid, why);
  if (post.node.empty()) return refuse(Refusal::kInvalid, "a message needs the node it came from");
  if (post.type == MessageType::kDecision) {
    return refuse(Refusal::kInvalid, "decisions are posted by the room (a plan accepted) or an operator (resolve)");
  }
  if (post.body.size() > rules_.max_message_bytes) {
    return refuse(Refusal::kTooLarge, "body of " + std::to_string(post.body.size()) + " bytes is over " +
                                          std::to_string(rules_.max_message_bytes));
  }
  if (post.hop_count < 0 || post.hop_count > rules_.hop_limit) {
    return refuse(Refusal::kHopLimit, "hop count " + std::to_string(post.hop_count) + " is over the limit of " +
                                          std::to_string(rules_.hop_limit));
  }
  if (!post.in_reply_to.empty() && !ids_.count(post.in_reply_to)) {
    return refuse(Refusal::kInvalid, "in_reply_to names no message of this room: " + post.in_reply_to);
  }
  const std::string who = post.agent + "@" + post.node;
  const bool member = std::any_of(participants_.begin(), participants_.end(),
                                  [&](const Participant& p) { return p.Key() == who; });
  if (!member && static_cast<int>(participants_.size()) >= rules_.max_participants) {
    return refuse(Refusal::kParticipants,
                  "room has its " + std::to_string(rules_.max_participants) + " participants already");
  }
  const bool answers_proposal = post.type == MessageType::kAgreement || post.type == MessageType::kObjection;
  if (answers_proposal && (!proposal_ || post.in_reply_to != proposal_->id)) {
    return refuse(Refusal::kInvalid, std::string(MessageTypeName(post.type)) +
                                         " must answer the open proposal" +
                                         (proposal_ ? " (" + proposal_->id + ")" : " (there is none)"));
  }
  // Rates last: a refused post does not spend the room's or the agent's tokens.
  Bucket& agent_bucket = agent_buckets_[who];
  Bucket room_before = room_bucket_;
  if (!Take(room_bucket_, rules_.room_rate, now_ms)) return refuse(Refusal::kRoomRate, "room is over its message rate");
  if (!Take(agent_bucket, rules_.agent_rate, now_ms)) {
    room_bucket_ = room_before;
    return refuse(Refusal::kAgentRate, "agent " + post.agent + " is over its message rate in this room");
  }

  if (!member) participants_.push_back({post.agent, post.node, now_ms});
  const std::string keyword = Keyword(post.body);
  o.messages.push_back(Append(std::move(post.id), post.type, post.agent, post.node, post.in_reply_to, post.body,
                              post.hop_count, now_ms));
  const MessageRow& m = o.messages.back();
  switch (post.type) {
    case MessageType::kPlanProposed:
      proposal_ = Proposal{m.id, who, now_ms, now_ms + rules_.objection_window_ms, {who}, {}};
      break;
    case MessageType::kAgreement:
      proposal_->agreed.insert(who);
      break;
    case MessageType::kObjection:
      // Only a new proposal answers an objection.
      proposal_->objected.insert(who);
      break;
    case MessageType::kEscalation:
      state_ = RoomState::kEscalated;
      escalation_reason_ = "requested";
      webhook_ = "pending";
      proposal_.reset();
      break;
    default:
      break;
  }
  if (state_ == RoomState::kOpen && !keyword.empty()) {
    Escalate("keyword", "\"" + keyword + "\" in " + m.id, now_ms, o.messages);
  }
  if (state_ == RoomState::kOpen && meta_.last_seq >= rules_.message_limit) {
    Escalate("message_limit", std::to_string(meta_.last_seq) + " messages", now_ms, o.messages);
  }
  meta_.state = std::string(RoomStateName(state_));
  o.accepted = true;
  return o;
}

std::vector<MessageRow> Room::Advance(std::int64_t now_ms) {
  std::vector<MessageRow> out;
  if (state_ == RoomState::kOpen && proposal_ && now_ms >= proposal_->closes_ms) {
    const Proposal p = *proposal_;
    proposal_.reset();
    std::size_t agreeing = 0;
    json agreed = json::array();
    for (const Participant& part : participants_) {
      if (p.agreed.count(part.Key())) {
        ++agreeing;
        agreed.push_back(part.Key());
      }
    }
    const auto required = static_cast<std::size_t>(
        std::max(1.0, std::ceil(rules_.quorum * static_cast<double>(participants_.size()) - 1e-9)));
    if (p.objected.empty() && agreeing >= required) {
      BZZZ_INVARIANT(decision_id_.empty(), "a room never holds two decisions");
      MessageRow d = Append("decision-" + p.id, MessageType::kDecision, std::string(kRoomAgent), meta_.owner_node,
                            p.id, "", 0, p.closes_ms);
      // The plan itself is in the proposal; the decision says why it stands.
      d.body = DumpJson(json{{"rule", "quorum"},
                             {"proposal", p.id},
                             {"agreed", agreed},
                             {"participants", participants_.size()},
                             {"required", required}});
      decision_id_ = d.id;
      state_ = RoomState::kDecided;
      closed_ms_ = p.closes_ms;
      out.push_back(std::move(d));
    }
  }
  if (state_ == RoomState::kOpen && now_ms >= meta_.created_ms + rules_.room_timeout_ms) {
    Escalate("timeout", "no decision " + std::to_string(rules_.room_timeout_ms / 1000) + " s after the room opened",
             now_ms, out);
  }
  if ((state_ == RoomState::kDecided || state_ == RoomState::kResolved) && now_ms >= closed_ms_ + rules_.room_ttl_ms) {
    state_ = RoomState::kArchived;
    meta_.updated_ms = std::max(meta_.updated_ms, now_ms);
  }
  meta_.state = std::string(RoomStateName(state_));
  return out;
}

std::int64_t Room::NextDeadline() const {
  switch (state_) {
    case RoomState::kOpen: {
      std::int64_t t = meta_.created_ms + rules_.room_timeout_ms;
      if (proposal_) t = std::min(t, proposal_->closes_ms);
      return t;
    }
    case RoomState::kDecided:
    case RoomState::kResolved:
      return closed_ms_ + rules_.room_ttl_ms;
    default:
      return 0;
  }
}

Status Room::Join(std::string_view agent, std::string_view node, std::int64_t now_ms) {
  if (auto why = ValidateAgent(agent); !why.empty()) return InvalidArgument(why);
  if (state_ != RoomState::kOpen) return FailedPrecondition("room " + meta_.id + " is " + std::string(RoomStateName(state_)));
  const std::string who = std::string(agent) + "@" + std::string(node);
  for (const auto& p : participants_) {
    if (p.Key() == who) return Status::Ok();
  }
  if (static_cast<int>(participants_.size()) >= rules_.max_participants) {
    return ResourceExhausted("room has its " + std::to_string(rules_.max_participants) + " participants already");
  }
  participants_.push_back({std::string(agent), std::string(node), now_ms});
  meta_.updated_ms = std::max(meta_.updated_ms, now_ms);
  return Status::Ok();
}

Status Room::Leave(std::string_view agent, std::string_view node, std::int64_t now_ms) {
  if (auto why = ValidateAgent(agent); !why.empty()) return InvalidArgument(why);
  const std::string who = std::string(agent) + "@" + std::string(node);
  const auto before = participants_.size();
  std::erase_if(participants_, [&](const Participant& p) { return p.Key() == who; });
  if (participants_.size() != before) meta_.updated_ms = std::max(meta_.updated_ms, now_ms);
  return Status::Ok();
}

Result<std::vector<MessageRow>> Room::Resolve(std::string_view kind, std::string_view text, std::string_view input,
                                              std::string_view by, std::int64_t now_ms) {
  if (kind != "answer" && kind != "decision" && kind != "retry") {
    return InvalidArgument("kind must be answer, decision or retry");
  }
  if (kind == "retry" && !input.empty() && ParseJson(input).is_discarded()) {
    return InvalidArgument("input must be JSON");
  }
  if (text.size() > rules_.max_message_bytes) return InvalidArgument("text is over " + std::to_string(rules_.max_message_bytes) + " bytes");
  std::vector<MessageRow> out = Advance(now_ms);
  if (state_ != RoomState::kOpen && state_ != RoomState::kEscalated) {
    return FailedPrecondition("room " + meta_.id + " is " + std::string(RoomStateName(state_)) + ": nothing to resolve");
  }
  BZZZ_INVARIANT(decision_id_.empty(), "a room never holds two decisions");
  json body = {{"resolution", kind}, {"text", text}, {"by", by}};
  if (!input.empty()) body["input"] = ParseJson(input);
  MessageRow d = Append("resolution-" + std::to_string(meta_.last_seq + 1), MessageType::kDecision,
                        "operator:" + std::string(by), meta_.owner_node, "", DumpJson(body), 0, now_ms);
  decision_id_ = d.id;
  state_ = RoomState::kResolved;
  closed_ms_ = now_ms;
  proposal_.reset();
  meta_.state = std::string(RoomStateName(state_));
  out.push_back(std::move(d));
  return out;
}

RoomRow Room::Row() const {
  RoomRow r = meta_;
  r.state = std::string(RoomStateName(state_));
  json parts = json::array();
  for (const auto& p : participants_) parts.push_back({{"agent", p.agent}, {"node", p.node}, {"joined_ms", p.joined_ms}});
  json ids = json::object();
  for (const auto& [id, seq] : ids_) ids[id] = seq;
  json doc = {{"v", 1},
              {"participants", parts},
              {"ids", ids},
              {"decision", decision_id_},
              {"escalation", escalation_reason_},
              {"webhook", webhook_},
              {"closed_ms", closed_ms_}};
  if (proposal_) {
    doc["proposal"] = {{"id", proposal_->id},
                       {"proposer", proposal_->proposer},
                       {"opened_ms", proposal_->opened_ms},
                       {"closes_ms", proposal_->closes_ms},
                       {"agreed", proposal_->agreed},
                       {"objected", proposal_->objected}};
  }
  r.doc = DumpJson(doc);
  return r;
}

Result<Room> Room::FromRow(const RoomRow& row, Rules rules) {
  const json doc = ParseJson(row.doc);
  auto state = ParseRoomState(row.state);
  if (!doc.is_object() || doc.value("v", 0) != 1 || !state) {
    return InvalidArgument("room " + row.id + ": stored state is not a room document");
  }
  Room room(row, std::move(rules));
  room.state_ = *state;
  try {
    for (const auto& p : doc.at("participants")) {
      room.participants_.push_back(
          {p.at("agent").get<std::string>(), p.at("node").get<std::string>(), p.at("joined_ms").get<std::int64_t>()});
    }
    for (const auto& [id, seq] : doc.at("ids").items()) room.ids_[id] = seq.get<std::int64_t>();
    room.decision_id_ = doc.at("decision").get<std::string>();
    room.escalation_reason_ = doc.at("escalation").get<std::string>();
    room.closed_ms_ = doc.at("closed_ms").get<std::int64_t>();
    room.webhook_ = doc.value("webhook", "");
    if (doc.contains("proposal")) {
      const json& p = doc["proposal"];
      Proposal prop{p.at("id").get<std::string>(), p.at("proposer").get<std::string>(),
                    p.at("opened_ms").get<std::int64_t>(), p.at("closes_ms").get<std::int64_t>(),
                    p.at("agreed").get<std::set<std::string>>(), p.at("objected").get<std::set<std::string>>()};
      room.proposal_ = std::move(prop);
    }
  } catch (const json::exception& e) {
    return InvalidArgument("room " + row.id + ": stored state: " + e.what());
  }
  return room;
}

}  // namespace bzzz::hmmm
