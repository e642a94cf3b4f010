#include "hmmm/service.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "base/threads.h"
#include "hmmm/probe.h"
#include "http/client.h"
#include "p2p/p2p.h"
#include "p2p/topics.h"
#include "security/authenticator.h"
#include "security/redact.h"

namespace bzzz::hmmm {
namespace {

using nlohmann::json;

constexpr SubsystemLog kLog{"hmmm"};
constexpr std::size_t kMaxPage = 1000;
constexpr std::string_view kHelpType = "hmmm.help";        // a help request announced on the meta topic
constexpr std::string_view kHelperAgent = "llm-helper";    // the agent name of this node's helper
constexpr std::size_t kMaxHelperQueue = 4;                 // help requests waiting for this node's model
constexpr std::size_t kHelpSeenMemory = 4096;              // requests remembered against duplicates
constexpr auto kAfterFirstAnswer = std::chrono::seconds(5);  // a request waits this much longer for more

// `s` cut to at most `max` bytes, never inside a UTF-8 sequence.
std::string CutUtf8(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }
http::Response BadRequest(const std::string& message, const std::string& request_id) {
  return http::ErrorResponse(400, "bad_request", message, request_id);
}

json MessageJson(const MessageRow& m) {
  json j = {{"room", m.room_id}, {"seq", m.seq},   {"id", m.id},       {"type", m.type},
            {"agent", m.agent},  {"node", m.node}, {"body", m.body},   {"created_ms", m.created_ms},
            {"hop_count", m.hop_count}};
  j["in_reply_to"] = m.in_reply_to.empty() ? json(nullptr) : json(m.in_reply_to);
  return j;
}

json RoomSummaryJson(const RoomRow& r) {
  return {{"id", r.id},
          {"task_id", r.task_id.empty() ? json(nullptr) : json(r.task_id)},
          {"project", r.project},
          {"title", r.title},
          {"owner", r.owner_node},
          {"state", r.state},
          {"messages", r.last_seq},
          {"created_ms", r.created_ms},
          {"updated_ms", r.updated_ms},
          {"topic", p2p::IssueTopic(r.id)}};
}

json ViewJson(const RoomView& v) {
  json j = RoomSummaryJson(v.row);
  j["owned"] = v.owned;
  json parts = json::array();
  for (const auto& p : v.participants) parts.push_back({{"agent", p.agent}, {"node", p.node}, {"joined_ms", p.joined_ms}});
  j["participants"] = std::move(parts);
  if (v.proposal) {
    j["proposal"] = {{"id", v.proposal->id},
                     {"proposer", v.proposal->proposer},
                     {"opened_ms", v.proposal->opened_ms},
                     {"closes_ms", v.proposal->closes_ms},
                     {"agreed", v.proposal->agreed},
                     {"objected", v.proposal->objected}};
  } else {
    j["proposal"] = nullptr;
  }
  j["decision"] = v.decision_id.empty() ? json(nullptr) : json(v.decision_id);
  j["escalation"] = v.escalation_reason.empty() ? json(nullptr) : json(v.escalation_reason);
  json msgs = json::array();
  for (const auto& m : v.messages) msgs.push_back(MessageJson(m));
  j["messages"] = std::move(msgs);
  j["next"] = v.messages.empty() ? json(nullptr) : json(v.messages.back().seq);
  return j;
}

// A post as the API and the direct messages carry it: strict, unknown
// fields refused.
Result<Post> ParsePost(const json& j) {
  if (!j.is_object()) return InvalidArgument("body must be a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (k != "id" && k != "type" && k != "agent" && k != "in_reply_to" && k != "body" && k != "hop_count") {
      return InvalidArgument("unknown field: " + k);
    }
  }
  Post p;
  auto text = [&](const char* name, std::string* out, bool required) -> Status {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
      return required ? InvalidArgument(std::string(name) + " is required") : Status::Ok();
    }
    if (!it->is_string()) return InvalidArgument(std::string(name) + " must be a string");
    *out = it->get<std::string>();
    return Status::Ok();
  };
  std::string type;
  for (Status s : {text("type", &type, true), text("agent", &p.agent, true), text("id", &p.id, false),
                   text("in_reply_to", &p.in_reply_to, false), text("body", &p.body, false)}) {
    if (!s.ok()) return s;
  }
  auto t = ParseMessageType(type);
  if (!t) return InvalidArgument("type must be one of plan_proposed, objection, help_request, help_response, "
                                 "agreement, dependency_alert, escalation (decision is the room's)");
  p.type = *t;
  if (auto it = j.find("hop_count"); it != j.end()) {
    if (!it->is_number_integer() || it->get<long long>() < 0 || it->get<long long>() > 255) {
      return InvalidArgument("hop_count must be an integer 0..255");
    }
    p.hop_count = it->get<int>();
  }
  return p;
}

json PostJson(const Post& p) {
  return {{"id", p.id},     {"type", MessageTypeName(p.type)}, {"agent", p.agent}, {"in_reply_to", p.in_reply_to},
          {"body", p.body}, {"hop_count", p.hop_count}};
}

Status RefusalStatus(Refusal r, const std::string& why) {
  switch (r) {
    case Refusal::kClosed:
      return FailedPrecondition(why);
    case Refusal::kParticipants:
    case Refusal::kRoomRate:
    case Refusal::kAgentRate:
      return ResourceExhausted(why);
    default:
      return InvalidArgument(why);
  }
}

}  // namespace

struct HmmmService::Impl {
  Options o;
  Rules rules;
  HmmmProbe probe;
  mutable std::mutex mu;
  std::map<std::string, Room> rooms;  // owned, not archived
  std::uint64_t archived = 0;
  bool stopping = false;
  std::condition_variable cv;
  std::thread ticker;
  std::unique_ptr<SerialQueue> inbox;  // posts forwarded to this node, off the P2P thread
  struct Watcher {
    std::string room;
    std::int64_t after = 0;
    SteadyTime deadline;
    std::function<void(Result<RoomView>)> done;
  };
  std::vector<Watcher> watchers;
  // Rooms whose escalation the webhook has yet to hear of.
  std::deque<std::string> webhook_queue;
  std::condition_variable webhook_cv;
  std::thread webhook_thread;
  // Help: askers wait on replies_cv (notified whenever a room takes
  // messages); other nodes' requests wait in `helper` for this node's model.
  std::condition_variable replies_cv;
  std::unique_ptr<SerialQueue> helper;
  std::size_t helper_pending = 0;     // under mu
  std::set<std::string> help_seen;    // under mu: "<from>/<room>/<request>"
  std::deque<std::string> help_seen_order;

  explicit Impl(Options opts) : o(std::move(opts)), rules(Rules::From(o.config.hmmm)), probe(o.metrics) {}

  std::int64_t Now() const { return o.now ? o.now() : UnixMillisNow(); }

  void UpdateGauges() {
    std::map<RoomState, int> by_state;
    for (const auto& [id, r] : rooms) by_state[r.state()]++;
    probe.Rooms(by_state, archived);
  }

  // Writes the room and `messages`; on failure puts the room back as it
  // was, so that memory never runs ahead of the store. Under mu.
  Status PersistLocked(Room& room, const Room& before, const std::vector<MessageRow>& messages) {
    Status s = o.store->SaveRoom(room.Row(), messages);
    if (!s.ok()) {
      room = before;
      return s;
    }
    for (const auto& m : messages) {
      probe.Accepted(m);
      if (m.type == "decision") {
        probe.Decided(static_cast<double>(m.created_ms - room.Row().created_ms) / 1000.0);
      }
    }
    return Status::Ok();
  }

  bool WebhookConfigured() const { return !o.config.hmmm.escalation_webhook.empty(); }

  // A room that just escalated: its task stops, the webhook will hear of it.
  void Escalated(const RoomRow& row) {
    if (!row.task_id.empty() && o.escalate_task) {
      const json doc = ParseJson(row.doc);
      const std::string reason = doc.is_object() ? doc.value("escalation", "") : "";
      if (Status s = o.escalate_task(row.task_id, "room " + row.id + " escalated (" + reason + ")"); !s.ok()) {
        kLog.warn("hmmm: room {} escalated but its task {} was not: {} (tried again at the next start)", row.id,
                  row.task_id, s.message());
      }
    }
    if (WebhookConfigured()) {
      std::lock_guard lock(mu);
      webhook_queue.push_back(row.id);
      webhook_cv.notify_all();
    }
  }

  // After a write: publish, announce state changes, wake watchers. Outside mu.
  void Announce(const RoomRow& row, const std::vector<MessageRow>& messages, bool state_changed) {
    if (state_changed && row.state == "escalated") Escalated(row);
    if (o.on_decided) {
      for (const auto& m : messages) {
        if (m.type == "decision") o.on_decided(row, m);
      }
    }
    if (o.p2p != nullptr) {
      for (const auto& m : messages) {
        if (Status s = o.p2p->Publish(p2p::IssueTopic(row.id), "hmmm.message", DumpJson(MessageJson(m))); !s.ok()) {
          kLog.debug("hmmm: publishing {} of {}: {}", m.id, row.id, s.message());
        }
      }
      if (state_changed) {
        (void)o.p2p->Publish(p2p::kMetaDiscussionTopic, "hmmm.room", DumpJson(RoomSummaryJson(row)));
      }
    }
    if (!messages.empty()) Wake(row.id);
  }

  void Wake(const std::string& room_id) {
    replies_cv.notify_all();
    std::vector<Watcher> ready;
    {
      std::lock_guard lock(mu);
      for (auto it = watchers.begin(); it != watchers.end();) {
        if (it->room == room_id) {
          ready.push_back(std::move(*it));
          it = watchers.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& w : ready) w.done(View(w.room, w.after, kMaxPage));
  }

  Result<RoomView> View(const std::string& id, std::int64_t after, std::size_t limit) {
    RoomView v;
    {
      std::lock_guard lock(mu);
      if (auto it = rooms.find(id); it != rooms.end()) {
        const Room& r = it->second;
        v.row = r.Row();
        v.owned = true;
        v.participants = r.participants();
        v.proposal = r.proposal();
        v.decision_id = r.decision_id();
        v.escalation_reason = r.escalation_reason();
      }
    }
    if (!v.owned) {
      auto row = o.store->GetRoom(id);
      if (!row.ok()) {
        if (row.status().IsNotFound()) return NotFound("no room " + id);
        return row.status();
      }
      v.row = *row;
      v.owned = row->owner_node == o.node_id;
      if (auto room = Room::FromRow(*row, rules); room.ok()) {
        v.participants = room->participants();
        v.proposal = room->proposal();
        v.decision_id = room->decision_id();
        v.escalation_reason = room->escalation_reason();
      }
    }
    auto msgs = o.store->ListMessages(id, after, limit);
    if (!msgs.ok()) return msgs.status();
    v.messages = std::move(*msgs);
    return v;
  }

  Result<PostResult> Forward(const std::string& room_id, hmmm::Post post) {
    auto row = o.store->GetRoom(room_id);
    if (!row.ok()) {
      if (row.status().IsNotFound()) return NotFound("no room " + room_id + " on this node");
      return row.status();
    }
    if (row->owner_node == o.node_id) {
      return FailedPrecondition("room " + room_id + " is " + row->state + ": it takes no more messages");
    }
    if (o.p2p == nullptr) return Unavailable("room " + room_id + " belongs to node " + row->owner_node);
    if (post.hop_count + 1 > rules.hop_limit) {
      probe.Refused(Refusal::kHopLimit);
      return InvalidArgument("hop count " + std::to_string(post.hop_count + 1) + " is over the limit of " +
                             std::to_string(rules.hop_limit));
    }
    return SendPost(row->owner_node, room_id, std::move(post));
  }

  // Sends `post` to room `room_id` of node `owner` (hop count + 1).
  Result<PostResult> SendPost(const std::string& owner, const std::string& room_id, hmmm::Post post) {
    post.hop_count += 1;
    if (post.id.empty()) post.id = "fwd-" + RandomHex(8);  // so that a resend is suppressed as a duplicate
    json body = {{"room", room_id}, {"post", PostJson(post)}};
    if (Status s = o.p2p->SendDirect(owner, "hmmm.post", DumpJson(body)); !s.ok()) return s;
    PostResult r;
    r.forwarded = true;
    r.owner = owner;
    r.message.room_id = room_id;
    r.message.id = post.id;
    r.message.type = std::string(MessageTypeName(post.type));
    r.message.agent = post.agent;
    r.message.node = o.node_id;
    r.message.hop_count = post.hop_count;
    return r;
  }

  void OnForwarded(const p2p::Message& m) {
    const json j = ParseJson(m.envelope.data);
    if (!j.is_object() || !j.contains("room") || !j["room"].is_string() || !j.contains("post")) {
      probe.Refused(Refusal::kInvalid);
      kLog.debug("hmmm: a forwarded post from {} is not a post", m.envelope.from);
      return;
    }
    auto post = ParsePost(j["post"]);
    if (!post.ok()) {
      probe.Refused(Refusal::kInvalid);
      kLog.debug("hmmm: a forwarded post from {}: {}", m.envelope.from, post.status().message());
      return;
    }
    post->node = m.envelope.from;  // the verified signer, never what the body says
    auto r = Accept(j["room"].get<std::string>(), std::move(*post));
    if (!r.ok()) kLog.debug("hmmm: a forwarded post from {}: {}", m.envelope.from, r.status().message());
  }

  Result<PostResult> Accept(const std::string& room_id, hmmm::Post post) {
    CheckMayBlock("hmmm: posting to a room");
    post.body = security::Redact(post.body, security::RedactionSite::kDiscussion);
    std::vector<MessageRow> written;
    RoomRow row;
    bool changed = false;
    PostResult result;
    {
      std::unique_lock lock(mu);
      auto it = rooms.find(room_id);
      if (it == rooms.end()) {
        lock.unlock();
        // Not ours: forward it to the owner (once more when it was
        // forwarded here by mistake; the hop limit ends any loop).
        return Forward(room_id, std::move(post));
      }
      Room& room = it->second;
      const Room before = room;
      const RoomState was = room.state();
      Outcome out = room.Accept(std::move(post), Now());
      if (!out.messages.empty() || room.state() != was) {
        if (Status s = PersistLocked(room, before, out.messages); !s.ok()) return s;
      }
      written = out.messages;
      row = room.Row();
      changed = room.state() != was;
      if (!out.accepted) {
        probe.Refused(out.refusal);
        lock.unlock();
        Announce(row, written, changed);
        return RefusalStatus(out.refusal, out.why);
      }
      if (out.duplicate) {
        result.duplicate = true;
        lock.unlock();
        Announce(row, written, changed);
        auto orig = o.store->ListMessages(room_id, out.duplicate_seq - 1, 1);
        if (!orig.ok()) return orig.status();
        if (orig->empty()) return Internal("message " + std::to_string(out.duplicate_seq) + " of " + room_id + " is missing");
        result.message = orig->front();
        return result;
      }
      // The post is the first message this call accepted (time may have
      // produced some before it).
      for (const auto& m : written) {
        if (m.agent != "hmmm" && m.type != "decision") {
          result.message = m;
        }
      }
      if (room.state() == RoomState::kArchived) {
        rooms.erase(it);
        ++archived;
      }
      UpdateGauges();
    }
    Announce(row, written, changed);
    return result;
  }

  // The tasks of the rooms loaded at start: an escalated room's task is
  // escalated, a resolved room's task resumed (both idempotent), repairing
  // a crash between a room's write and its task's change.
  void Reconcile() {
    for (const auto& [id, room] : rooms) {
      const RoomRow row = room.Row();
      if (row.task_id.empty()) continue;
      if (room.state() == RoomState::kEscalated && o.escalate_task) {
        if (Status s = o.escalate_task(row.task_id, "room " + id + " escalated (" + room.escalation_reason() + ")");
            !s.ok()) {
          kLog.warn("hmmm: room {} is escalated; its task {}: {}", id, row.task_id, s.message());
        }
      } else if (room.state() == RoomState::kResolved && o.resume_task) {
        auto last = o.store->ListMessages(id, row.last_seq - 1, 1);
        if (!last.ok() || last->empty() || last->front().type != "decision") continue;
        const json body = ParseJson(last->front().body);
        if (!body.is_object() || !body.contains("resolution")) continue;
        const std::string kind = body.value("resolution", "");
        const std::string input = kind == "retry" && body.contains("input") ? DumpJson(body["input"]) : "";
        const std::string note = "room " + id + " resolved by " + body.value("by", "") + " (" + kind + ")";
        // A task that resumed already is not escalated any more: nothing to do.
        if (Status s = o.resume_task(row.task_id, note, input, /*dry_run=*/false); !s.ok()) {
          kLog.debug("hmmm: task {} of resolved room {}: {}", row.task_id, id, s.message());
        }
      }
    }
  }

  // Another node's help request (hmmm.help on the meta topic), on the P2P
  // dispatcher thread: checked, remembered, queued for this node's model.
  void OnHelpRequest(const p2p::Message& m) {
    if (m.envelope.type != kHelpType) return;
    const json j = ParseJson(m.envelope.data);
    const auto text = [&](const char* key) {
      return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    const std::string room = text("room"), request = text("request"), question = text("question");
    bool valid = ValidateId(room).empty() && ValidateId(request).empty() && !question.empty() &&
                 question.size() <= rules.max_message_bytes && j.contains("expires_ms") &&
                 j["expires_ms"].is_number_integer();
    std::vector<std::string> needs;
    if (valid && j.contains("capabilities")) {
      valid = j["capabilities"].is_array() && j["capabilities"].size() <= 64;
      for (const auto& c : valid ? j["capabilities"] : json::array()) {
        if (!c.is_string()) valid = false;
        else needs.push_back(c.get<std::string>());
      }
    }
    if (!valid) {
      probe.HelpSeen("skipped");
      kLog.debug("hmmm: a help request from {} is malformed", m.envelope.from);
      return;
    }
    const std::int64_t expires = j["expires_ms"].get<std::int64_t>();
    const bool able = std::all_of(needs.begin(), needs.end(), [&](const std::string& c) {
      return std::find(o.capabilities.begin(), o.capabilities.end(), c) != o.capabilities.end();
    });
    if (!able || expires <= Now()) {
      probe.HelpSeen("skipped");
      return;
    }
    // The room's owner is the request's verified sender, never what it says.
    const std::string owner = m.envelope.from;
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      const std::string key = owner + "/" + room + "/" + request;
      if (!help_seen.insert(key).second) {
        probe.HelpSeen("skipped");
        return;
      }
      help_seen_order.push_back(key);
      if (help_seen_order.size() > kHelpSeenMemory) {
        help_seen.erase(help_seen_order.front());
        help_seen_order.pop_front();
      }
      if (helper_pending >= kMaxHelperQueue) {
        probe.HelpSeen("busy");
        kLog.info("hmmm: help request {} of room {} from {} dropped: {} already wait for the model", request, room,
                  owner, helper_pending);
        return;
      }
      ++helper_pending;
    }
    helper->Post([this, owner, room, request, question, expires] { Help(owner, room, request, question, expires); });
  }

  // This node's model answers a help request; the answer goes to the room's
  // owner as a help_response.
  void Help(const std::string& owner, const std::string& room, const std::string& request, const std::string& question,
            std::int64_t expires_ms) {
    struct Done {
      Impl* n;
      ~Done() {
        std::lock_guard lock(n->mu);
        --n->helper_pending;
      }
    } done{this};
    {
      std::lock_guard lock(mu);
      if (stopping) return;
    }
    const std::int64_t left = expires_ms - Now();
    if (left <= 0) {
      probe.HelpSeen("skipped");
      return;
    }
    auto answer = o.answer_help(question, std::chrono::steady_clock::now() + std::chrono::milliseconds(left));
    if (!answer.ok() || answer->empty()) {
      probe.HelpSeen("failed");
      kLog.warn("hmmm: answering help request {} of room {}: {}", request, room,
                answer.ok() ? "the model said nothing" : answer.status().message());
      return;
    }
    hmmm::Post post;
    post.id = CutUtf8("re-" + o.node_id.substr(0, 16) + "-" + request, 64);
    post.type = MessageType::kHelpResponse;
    post.agent = std::string(kHelperAgent);
    post.node = o.node_id;
    post.in_reply_to = request;
    post.body = CutUtf8(security::Redact(*answer, security::RedactionSite::kDiscussion), rules.max_message_bytes);
    auto sent = SendPost(owner, room, std::move(post));
    probe.HelpSeen(sent.ok() ? "answered" : "failed");
    if (!sent.ok()) kLog.warn("hmmm: sending the answer to help request {} to {}: {}", request, owner, sent.status().message());
  }

  void WebhookLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      webhook_cv.wait(lock, [this] { return stopping || !webhook_queue.empty(); });
      if (stopping) break;
      const std::string id = webhook_queue.front();
      webhook_queue.pop_front();
      lock.unlock();
      Deliver(id);
      lock.lock();
    }
  }

  // Tells the webhook of room `id`'s escalation, with retries; records the
  // outcome in the room. Gives up when the room is resolved meanwhile.
  void Deliver(const std::string& id) {
    const auto& h = o.config.hmmm;
    Backoff backoff(o.webhook_retry_base, std::max(o.webhook_retry_base, std::chrono::milliseconds(60000)));
    for (int attempt = 1; attempt <= o.webhook_attempts; ++attempt) {
      RoomRow row;
      std::string reason;
      {
        std::lock_guard lock(mu);
        auto it = rooms.find(id);
        if (it == rooms.end() || it->second.state() != RoomState::kEscalated || it->second.webhook() != "pending") {
          return;
        }
        row = it->second.Row();
        reason = it->second.escalation_reason();
      }
      auto history = o.store->ListMessages(id, 0, static_cast<std::size_t>(std::max(1, rules.message_limit)) + 8);
      std::string agent = "hmmm", escalation_id;
      json msgs = json::array();
      if (history.ok()) {
        for (const auto& m : *history) {
          msgs.push_back(MessageJson(m));
          if (m.type == "escalation") {
            agent = m.agent;
            escalation_id = m.id;
          }
        }
      }
      const json payload = {{"event", "hmmm.escalation"},
                            {"room", id},
                            {"task_id", row.task_id.empty() ? json(nullptr) : json(row.task_id)},
                            {"task_title", row.title},
                            {"project", row.project},
                            {"node", o.node_id},
                            {"escalation_agent", agent},
                            {"reason", reason},
                            {"history", msgs},
                            {"resolve", "POST /api/v1/hmmm/rooms/" + id + "/resolve"},
                            {"sent_ms", UnixMillisNow()}};
      const std::string body = DumpJson(payload);
      http::ClientOptions co;
      co.url = h.escalation_webhook;
      co.timeout = std::chrono::milliseconds(10000);
      co.user_agent = "bzzz-hmmm";
      co.headers = {"X-Bzzz-Event: hmmm.escalation", "X-Bzzz-Delivery: " + id + ":" + escalation_id};
      if (!h.escalation_webhook_secret.empty()) {
        co.headers.push_back("X-Bzzz-Signature: sha256=" + security::HmacSha256Hex(h.escalation_webhook_secret, body));
      }
      auto res = http::Call(co, "POST", "", body);
      const bool ok = res.ok() && res->status >= 200 && res->status < 300;
      if (ok) {
        probe.Webhook("delivered");
        MarkWebhook(id, "delivered");
        kLog.info("hmmm: escalation of room {} delivered to the webhook", id);
        return;
      }
      const std::string why = res.ok() ? "HTTP " + std::to_string(res->status) : res.status().message();
      if (attempt == o.webhook_attempts) break;
      probe.Webhook("retried");
      const auto wait = backoff.Next();
      kLog.warn("hmmm: escalation webhook for room {}: {} (attempt {} of {}, next in {} ms)", id, why, attempt,
                o.webhook_attempts, wait.count());
      std::unique_lock lock(mu);
      if (webhook_cv.wait_for(lock, wait, [this] { return stopping; })) return;
    }
    probe.Webhook("failed");
    MarkWebhook(id, "failed");
    kLog.error("hmmm: escalation webhook for room {}: gave up after {} attempts", id, o.webhook_attempts);
  }

  void MarkWebhook(const std::string& id, const std::string& state) {
    std::lock_guard lock(mu);
    auto it = rooms.find(id);
    if (it == rooms.end()) return;
    const Room before = it->second;
    it->second.set_webhook(state);
    if (Status s = PersistLocked(it->second, before, {}); !s.ok()) {
      kLog.warn("hmmm: room {}: recording the webhook's {}: {}", id, state, s.message());
    }
  }

  // Join or leave, after what time did (a window that closed before the
  // change counts the participants of that moment).
  Status ChangeMembership(const std::string& room_id, bool join, const std::string& agent, const std::string& node) {
    RoomRow row;
    std::vector<MessageRow> msgs;
    bool changed = false;
    Status result;
    {
      std::lock_guard lock(mu);
      auto it = rooms.find(room_id);
      if (it == rooms.end()) return NotFound("no room " + room_id + " of this node");
      Room& room = it->second;
      const Room before = room;
      const RoomState was = room.state();
      msgs = room.Advance(Now());
      result = join ? room.Join(agent, node, Now()) : room.Leave(agent, node, Now());
      if (Status s = PersistLocked(room, before, msgs); !s.ok()) return s;
      row = room.Row();
      changed = room.state() != was;
      UpdateGauges();
    }
    Announce(row, msgs, changed);
    return result;
  }

  void TickOnce() {
    const std::int64_t now = Now();
    std::vector<std::tuple<RoomRow, std::vector<MessageRow>, bool>> done;
    std::vector<Watcher> expired;
    {
      std::lock_guard lock(mu);
      for (auto it = rooms.begin(); it != rooms.end();) {
        Room& room = it->second;
        const std::int64_t due = room.NextDeadline();
        if (due == 0 || due > now) {
          ++it;
          continue;
        }
        const Room before = room;
        const RoomState was = room.state();
        auto msgs = room.Advance(now);
        if (msgs.empty() && room.state() == was) {
          ++it;
          continue;
        }
        if (Status s = PersistLocked(room, before, msgs); !s.ok()) {
          kLog.warn("hmmm: room {}: {} (retrying)", room.id(), s.message());
          ++it;
          continue;
        }
        done.emplace_back(room.Row(), std::move(msgs), room.state() != was);
        if (room.state() == RoomState::kArchived) {
          it = rooms.erase(it);
          ++archived;
        } else {
          ++it;
        }
      }
      if (!done.empty()) UpdateGauges();
      const auto steady = std::chrono::steady_clock::now();
      for (auto it = watchers.begin(); it != watchers.end();) {
        if (it->deadline <= steady || stopping) {
          expired.push_back(std::move(*it));
          it = watchers.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& [row, msgs, changed] : done) Announce(row, msgs, changed);
    for (auto& w : expired) w.done(View(w.room, w.after, kMaxPage));
  }

  void Run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping; });
      if (stopping) break;
      lock.unlock();
      TickOnce();
      lock.lock();
    }
  }
};

Result<std::shared_ptr<HmmmService>> HmmmService::Start(Options options) {
  if (!options.store) return InvalidArgument("hmmm: a store is required");
  auto svc = std::shared_ptr<HmmmService>(new HmmmService());
  svc->impl_ = std::make_shared<Impl>(std::move(options));
  Impl& n = *svc->impl_;
  for (RoomState st : {RoomState::kOpen, RoomState::kEscalated, RoomState::kDecided, RoomState::kResolved}) {
    RoomQuery q;
    q.state = std::string(RoomStateName(st));
    q.limit = 1u << 30;
    auto rows = n.o.store->ListRooms(q);
    if (!rows.ok()) return rows.status();
    for (const auto& row : *rows) {
      if (row.owner_node != n.o.node_id) continue;
      auto room = Room::FromRow(row, n.rules);
      if (!room.ok()) {
        kLog.warn("hmmm: skipping room {}: {}", row.id, room.status().message());
        continue;
      }
      n.rooms.emplace(row.id, std::move(*room));
    }
  }
  if (!n.rooms.empty()) kLog.info("hmmm: {} room(s) of this node loaded", n.rooms.size());
  n.UpdateGauges();
  if (n.o.p2p != nullptr) {
    n.inbox = std::make_unique<SerialQueue>("hmmm-inbox");
    std::weak_ptr<Impl> weak = svc->impl_;
    n.o.p2p->OnDirect("hmmm.post", [weak](const p2p::Message& m) {
      auto impl = weak.lock();
      if (!impl) return;
      impl->inbox->Post([weak, m] {
        if (auto i = weak.lock()) i->OnForwarded(m);
      });
    });
  }
  if (n.o.p2p != nullptr && n.o.answer_help && n.o.config.hmmm.answer_help) {
    n.helper = std::make_unique<SerialQueue>("hmmm-helper");
    std::weak_ptr<Impl> weak = svc->impl_;
    Status s = n.o.p2p->Subscribe(p2p::kMetaDiscussionTopic, "hmmm-help", [weak](const p2p::Message& m) {
      if (auto impl = weak.lock()) impl->OnHelpRequest(m);
    });
    if (!s.ok()) return s;
  }
  n.Reconcile();
  if (n.WebhookConfigured()) {
    for (const auto& [id, room] : n.rooms) {
      if (room.state() == RoomState::kEscalated && room.webhook() == "pending") n.webhook_queue.push_back(id);
    }
    n.webhook_thread = NamedThread("hmmm-webhooks", [impl = svc->impl_.get()] { impl->WebhookLoop(); });
  }
  if (n.o.ticker) n.ticker = NamedThread("hmmm-ticker", [impl = svc->impl_.get()] { impl->Run(); });
  return svc;
}

HmmmService::~HmmmService() { Stop(); }

void HmmmService::Stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->webhook_cv.notify_all();
  impl_->replies_cv.notify_all();
  if (impl_->helper) {
    impl_->o.p2p->Unsubscribe(p2p::kMetaDiscussionTopic, "hmmm-help");
    impl_->helper->Stop();  // what waits is skipped; a model call under way finishes
  }
  if (impl_->ticker.joinable()) impl_->ticker.join();
  if (impl_->webhook_thread.joinable()) impl_->webhook_thread.join();
  if (impl_->inbox) impl_->inbox->Stop();
  impl_->TickOnce();  // answers the watchers still waiting
}

void HmmmService::Tick() { impl_->TickOnce(); }

Result<std::vector<MessageRow>> HmmmService::AskForHelp(HelpQuery q) {
  Impl& n = *impl_;
  CheckMayBlock("hmmm: asking for help");
  if (auto why = ValidateId(q.task_id); !why.empty()) return InvalidArgument("task_id: " + why);
  Post post;
  post.id = "help-" + RandomHex(8);
  post.type = MessageType::kHelpRequest;
  post.agent = q.agent.empty() ? "agent" : q.agent;
  post.node = n.o.node_id;
  post.body = CutUtf8(security::Redact(q.question, security::RedactionSite::kDiscussion), n.rules.max_message_bytes);
  const auto failed = [&n](Status s) {
    n.probe.HelpAsked("failed");
    return s;
  };
  // Into the task's room: opened by this request, or already open here.
  std::int64_t request_seq = 0;
  bool open_here;
  {
    std::lock_guard lock(n.mu);
    open_here = n.rooms.count(q.task_id) > 0;
  }
  if (!open_here) {
    OpenRequest req;
    req.task_id = q.task_id;
    req.project = q.project;
    req.title = q.title.empty() ? "help for task " + q.task_id : q.title;
    req.seed = post;
    auto opened = Open(std::move(req));
    if (opened.ok()) {
      for (const auto& m : opened->messages) {
        if (m.id == post.id) request_seq = m.seq;
      }
    } else if (opened.status().code() != StatusCode::kConflict) {
      return failed(opened.status());
    } else {
      std::lock_guard lock(n.mu);
      if (!n.rooms.count(q.task_id)) {
        return failed(FailedPrecondition("the room of task " + q.task_id + " is closed: " + opened.status().message()));
      }
      open_here = true;  // opened meanwhile by another call
    }
  }
  if (open_here) {
    auto posted = n.Accept(q.task_id, post);
    if (!posted.ok()) return failed(posted.status());
    if (posted->forwarded) return failed(FailedPrecondition("the room of task " + q.task_id + " belongs to another node"));
    request_seq = posted->message.seq;
  }
  const auto now_steady = std::chrono::steady_clock::now();
  const std::int64_t wait_ms =
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(q.until - now_steady).count());
  if (n.o.p2p != nullptr) {
    json caps = json::array();
    for (const auto& c : q.capabilities) caps.push_back(c);
    const json announce = {{"room", q.task_id},         {"request", post.id},     {"task_id", q.task_id},
                           {"project", q.project},       {"title", q.title},       {"reason", q.reason},
                           {"question", post.body},      {"capabilities", caps},   {"expires_ms", n.Now() + wait_ms}};
    if (Status s = n.o.p2p->Publish(p2p::kMetaDiscussionTopic, kHelpType, DumpJson(announce)); !s.ok()) {
      kLog.warn("hmmm: announcing help request {} of task {}: {}", post.id, q.task_id, s.message());
    }
  }
  kLog.info("hmmm: task {} asks for help ({}): request {}", q.task_id, q.reason, post.id);
  // Wait for the answers.
  std::vector<MessageRow> answers;
  std::int64_t after = request_seq;
  auto deadline = q.until;
  const auto help_answers = static_cast<std::size_t>(std::max(1, n.o.config.hmmm.help_answers));
  while (true) {
    auto more = n.o.store->ListMessages(q.task_id, after, kMaxPage);
    if (!more.ok()) return failed(more.status());
    for (auto& m : *more) {
      after = m.seq;
      if (m.type == "help_response" && m.in_reply_to == post.id) {
        if (answers.empty()) deadline = std::min(deadline, std::chrono::steady_clock::now() + kAfterFirstAnswer);
        answers.push_back(std::move(m));
      }
    }
    if (answers.size() >= help_answers) break;
    if (q.cancel != nullptr && q.cancel->load()) break;
    std::unique_lock lock(n.mu);
    if (n.stopping || std::chrono::steady_clock::now() >= deadline) break;
    n.replies_cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  }
  n.probe.HelpAsked(answers.empty() ? "unanswered" : "answered");
  kLog.info("hmmm: help request {} of task {}: {} answer(s)", post.id, q.task_id, answers.size());
  return answers;
}

Result<RoomView> HmmmService::Open(OpenRequest req) {
  Impl& n = *impl_;
  CheckMayBlock("hmmm: opening a room");
  if (!req.task_id.empty()) {
    if (auto why = ValidateId(req.task_id); !why.empty()) return InvalidArgument("task_id: " + why);
    if (!req.id.empty() && req.id != req.task_id) return InvalidArgument("a task's room has the task's id");
    req.id = req.task_id;
  }
  if (!req.task_id.empty() && n.o.check_task) {
    if (Status s = n.o.check_task(req.task_id); !s.ok()) return s;
  }
  if (req.id.empty()) req.id = "room-" + RandomHex(8);
  if (auto why = ValidateId(req.id); !why.empty()) return InvalidArgument("room " + why);
  if (req.title.size() > 512) return InvalidArgument("title must be at most 512 bytes");
  if (req.project.size() > 128) return InvalidArgument("project must be at most 128 bytes");
  req.seed.body = security::Redact(req.seed.body, security::RedactionSite::kDiscussion);
  if (req.seed.node.empty()) req.seed.node = n.o.node_id;
  RoomRow meta;
  meta.id = req.id;
  meta.task_id = req.task_id;
  meta.project = req.project;
  meta.title = security::Redact(req.title, security::RedactionSite::kDiscussion);
  meta.owner_node = n.o.node_id;
  RoomRow row;
  std::vector<MessageRow> messages;
  {
    std::lock_guard lock(n.mu);
    if (n.rooms.count(req.id)) return Conflict("room " + req.id + " exists");
    if (auto existing = n.o.store->GetRoom(req.id); existing.ok()) {
      return Conflict("room " + req.id + " exists (owner " + existing->owner_node + ", " + existing->state + ")");
    } else if (!existing.status().IsNotFound()) {
      return existing.status();
    }
    auto opened = Room::Open(meta, n.rules, std::move(req.seed), n.Now());
    if (!opened.ok()) return opened.status();
    auto& [room, msgs] = *opened;
    if (Status s = n.o.store->SaveRoom(room.Row(), msgs); !s.ok()) return s;
    for (const auto& m : msgs) n.probe.Accepted(m);
    row = room.Row();
    messages = msgs;
    n.rooms.emplace(req.id, std::move(room));
    n.UpdateGauges();
  }
  n.Announce(row, messages, /*state_changed=*/true);
  return n.View(req.id, 0, kMaxPage);
}

Result<PostResult> HmmmService::PostMessage(const std::string& room_id, Post post) {
  if (post.node.empty()) post.node = impl_->o.node_id;
  return impl_->Accept(room_id, std::move(post));
}

Status HmmmService::Join(const std::string& room_id, const std::string& agent, const std::string& node) {
  return impl_->ChangeMembership(room_id, /*join=*/true, agent, node);
}

Status HmmmService::Leave(const std::string& room_id, const std::string& agent, const std::string& node) {
  return impl_->ChangeMembership(room_id, /*join=*/false, agent, node);
}

Result<RoomView> HmmmService::Resolve(const std::string& room_id, const std::string& kind, const std::string& text,
                                      const std::string& input, const std::string& by) {
  Impl& n = *impl_;
  CheckMayBlock("hmmm: resolving a room");
  RoomRow row;
  std::vector<MessageRow> msgs;
  std::string note;
  {
    std::lock_guard lock(n.mu);
    auto it = n.rooms.find(room_id);
    if (it == n.rooms.end()) {
      auto stored = n.o.store->GetRoom(room_id);
      if (stored.ok() && stored->owner_node != n.o.node_id) {
        return FailedPrecondition("room " + room_id + " belongs to node " + stored->owner_node +
                                  ": resolve it there (only the owner changes a room)");
      }
      if (stored.ok()) return FailedPrecondition("room " + room_id + " is " + stored->state + ": nothing to resolve");
      return NotFound("no room " + room_id);
    }
    Room& room = it->second;
    const Room before = room;
    const std::string clean = security::Redact(text, security::RedactionSite::kDiscussion);
    auto resolved = room.Resolve(kind, clean, input, by, n.Now());
    if (!resolved.ok()) return resolved.status();
    const std::string task_id = room.Row().task_id;
    note = "room " + room_id + " resolved by " + by + " (" + kind + ")" + (clean.empty() ? "" : ": " + clean);
    if (!task_id.empty() && n.o.resume_task) {
      // The task must be able to take the answer (its owner, escalated, a
      // valid input) before the room records it.
      if (Status s = n.o.resume_task(task_id, note, kind == "retry" ? input : "", /*dry_run=*/true); !s.ok()) {
        room = before;
        return s;
      }
    }
    if (Status s = n.PersistLocked(room, before, *resolved); !s.ok()) return s;
    row = room.Row();
    msgs = std::move(*resolved);
    n.UpdateGauges();
  }
  n.Announce(row, msgs, /*state_changed=*/true);
  if (!row.task_id.empty() && n.o.resume_task) {
    if (Status s = n.o.resume_task(row.task_id, note, kind == "retry" ? input : "", /*dry_run=*/false); !s.ok()) {
      kLog.warn("hmmm: room {} resolved but its task {} did not resume: {} (tried again at the next start)", room_id,
                row.task_id, s.message());
    }
  }
  return n.View(room_id, 0, kMaxPage);
}

Result<RoomView> HmmmService::Get(const std::string& room_id, std::int64_t after_seq, std::size_t limit) {
  return impl_->View(room_id, after_seq, std::min(limit, kMaxPage));
}

Result<std::vector<RoomRow>> HmmmService::List(const RoomQuery& query) { return impl_->o.store->ListRooms(query); }

void HmmmService::Watch(const std::string& room_id, std::int64_t after_seq, std::chrono::milliseconds wait,
                        std::function<void(Result<RoomView>)> done) {
  Impl& n = *impl_;
  {
    std::lock_guard lock(n.mu);
    auto it = n.rooms.find(room_id);
    if (it != n.rooms.end() && it->second.message_count() <= after_seq && wait.count() > 0 && !n.stopping) {
      n.watchers.push_back({room_id, after_seq, std::chrono::steady_clock::now() + wait, std::move(done)});
      return;
    }
  }
  done(n.View(room_id, after_seq, kMaxPage));
}

std::string HmmmService::StatusJson(std::string_view section) const {
  if (section != "hmmm") return "{}";
  const Impl& n = *impl_;
  std::lock_guard lock(n.mu);
  std::map<std::string, int> counts;
  for (const auto& [id, r] : n.rooms) counts[std::string(RoomStateName(r.state()))]++;
  json by_state = counts;
  json escalated = json::array();
  for (const auto& [id, r] : n.rooms) {
    if (r.state() == RoomState::kEscalated) escalated.push_back({{"id", id}, {"reason", r.escalation_reason()}});
  }
  return DumpJson(json{{"enabled", n.o.config.hmmm.enabled},
                       {"rooms", by_state},
                       {"archived_since_start", n.archived},
                       {"escalated", escalated},
                       {"watchers", n.watchers.size()}});
}

std::vector<ops::ShutdownStep> HmmmService::ShutdownSteps(const config::Config&) {
  std::weak_ptr<ops::Component> weak = weak_from_this();
  return {{"hmmm.stop", ops::kPriorityStopServices, std::chrono::milliseconds(2000), [weak] {
             if (auto self = weak.lock()) static_cast<HmmmService*>(self.get())->Stop();
             return Status::Ok();
           }}};
}

Status HmmmService::RegisterRoutes(http::Router& router) {
  std::shared_ptr<Impl> impl = impl_;
  HmmmService* self = this;
  http::RouteTable routes(router, "hmmm");
  using http::Method;
  routes.AddBlocking(Method::kGet, "/api/v1/hmmm/rooms", "hmmm:read", "rooms (?state=&task=&project=&limit=)",
                     [self](http::Request& req) {
                       RoomQuery q;
                       q.state = req.QueryParam("state").value_or("");
                       q.task_id = req.QueryParam("task").value_or("");
                       q.project = req.QueryParam("project").value_or("");
                       if (!q.state.empty() && !ParseRoomState(q.state)) {
                         return BadRequest("state must be open, decided, escalated, resolved or archived", req.request_id);
                       }
                       auto limit = req.IntParam("limit", 100, 1, 1000);
                       if (!limit.ok()) return BadRequest(limit.status().message(), req.request_id);
                       q.limit = static_cast<std::size_t>(*limit);
                       auto rows = self->List(q);
                       if (!rows.ok()) return http::ErrorFromStatus(rows.status(), req.request_id);
                       json out = json::array();
                       for (const auto& r : *rows) out.push_back(RoomSummaryJson(r));
                       return JsonOk(200, {{"rooms", std::move(out)}, {"count", rows->size()}});
                     });
  routes.AddBlocking(Method::kPost, "/api/v1/hmmm/rooms", "hmmm:write",
                     "open a room ({title, project?, task_id?, id?, seed:{type, agent, body}})",
                     [self](http::Request& req) {
                       const json j = ParseJson(req.body);
                       if (!j.is_object()) return BadRequest("body must be a JSON object", req.request_id);
                       for (const auto& [k, v] : j.items()) {
                         if (k != "id" && k != "task_id" && k != "project" && k != "title" && k != "seed") {
                           return BadRequest("unknown field: " + k, req.request_id);
                         }
                         if (k != "seed" && !v.is_string()) return BadRequest(k + " must be a string", req.request_id);
                       }
                       if (!j.contains("seed")) return BadRequest("seed is required", req.request_id);
                       auto seed = ParsePost(j["seed"]);
                       if (!seed.ok()) return BadRequest("seed: " + seed.status().message(), req.request_id);
                       OpenRequest open;
                       open.id = j.value("id", "");
                       open.task_id = j.value("task_id", "");
                       open.project = j.value("project", "");
                       open.title = j.value("title", "");
                       open.seed = std::move(*seed);
                       auto v = self->Open(std::move(open));
                       if (!v.ok()) return http::ErrorFromStatus(v.status(), req.request_id);
                       return JsonOk(201, ViewJson(*v));
                     });
  routes.AddBlocking(Method::kGet, "/api/v1/hmmm/rooms/:id", "hmmm:read",
                     "one room: state, participants, proposal, decision, messages (?after=&limit=)",
                     [self](http::Request& req) {
                       auto after = req.IntParam("after", 0, 0, INT64_MAX);
                       auto limit = req.IntParam("limit", 1000, 1, 1000);
                       if (!after.ok() || !limit.ok()) {
                         return BadRequest((!after.ok() ? after : limit).status().message(), req.request_id);
                       }
                       auto v = self->Get(std::string(req.Param("id")), *after, static_cast<std::size_t>(*limit));
                       if (!v.ok()) return http::ErrorFromStatus(v.status(), req.request_id);
                       return JsonOk(200, ViewJson(*v));
                     });
  routes.AddBlocking(Method::kGet, "/api/v1/hmmm/rooms/:id/messages", "hmmm:read",
                     "messages after the N-th (?after=N), waiting up to wait_ms for new ones", nullptr,
                     [self](http::Request& req, http::Responder respond) {
                       auto after = req.IntParam("after", 0, 0, INT64_MAX);
                       auto wait = req.IntParam("wait_ms", 0, 0, 30000);
                       if (!after.ok() || !wait.ok()) {
                         respond(BadRequest((!after.ok() ? after : wait).status().message(), req.request_id));
                         return;
                       }
                       self->Watch(std::string(req.Param("id")), *after, std::chrono::milliseconds(*wait),
                                   [respond, rid = req.request_id](Result<RoomView> v) {
                                     if (!v.ok()) {
                                       respond(http::ErrorFromStatus(v.status(), rid));
                                       return;
                                     }
                                     json msgs = json::array();
                                     for (const auto& m : v->messages) msgs.push_back(MessageJson(m));
                                     respond(JsonOk(200, {{"room", v->row.id},
                                                          {"state", v->row.state},
                                                          {"messages", std::move(msgs)},
                                                          {"next", v->messages.empty() ? json(nullptr)
                                                                                       : json(v->messages.back().seq)}}));
                                   });
                     });
  routes.AddBlocking(Method::kPost, "/api/v1/hmmm/rooms/:id/messages", "hmmm:write",
                     "post a message ({type, agent, body, in_reply_to?, id?, hop_count?})",
                     [self](http::Request& req) {
                       auto post = ParsePost(ParseJson(req.body));
                       if (!post.ok()) return BadRequest(post.status().message(), req.request_id);
                       auto r = self->PostMessage(std::string(req.Param("id")), std::move(*post));
                       if (!r.ok()) return http::ErrorFromStatus(r.status(), req.request_id);
                       if (r->forwarded) {
                         return JsonOk(202, {{"forwarded_to", r->owner}, {"id", r->message.id},
                                             {"hop_count", r->message.hop_count}});
                       }
                       return JsonOk(r->duplicate ? 200 : 201, MessageJson(r->message));
                     });
  for (const char* verb : {"join", "leave"}) {
    const bool join = std::string_view(verb) == "join";
    routes.AddBlocking(Method::kPost, std::string("/api/v1/hmmm/rooms/:id/") + verb, "hmmm:write",
                       join ? "join a room ({agent})" : "leave a room ({agent})", [self, join](http::Request& req) {
                         const json j = ParseJson(req.body);
                         if (!j.is_object() || !j.contains("agent") || !j["agent"].is_string() || j.size() != 1) {
                           return BadRequest("body must be {\"agent\": \"...\"}", req.request_id);
                         }
                         const std::string id(req.Param("id"));
                         const std::string agent = j["agent"];
                         Status s = join ? self->Join(id, agent, self->impl_->o.node_id)
                                         : self->Leave(id, agent, self->impl_->o.node_id);
                         if (!s.ok()) return http::ErrorFromStatus(s, req.request_id);
                         auto v = self->Get(id, INT64_MAX - 1, 1);
                         if (!v.ok()) return http::ErrorFromStatus(v.status(), req.request_id);
                         return JsonOk(200, ViewJson(*v));
                       });
  }
  routes.AddBlocking(Method::kPost, "/api/v1/hmmm/rooms/:id/resolve", "hmmm:admin",
                     "resolve a room ({kind: answer|decision|retry, text, input?})", [self](http::Request& req) {
                       const json j = ParseJson(req.body);
                       if (!j.is_object()) return BadRequest("body must be a JSON object", req.request_id);
                       for (const auto& [k, v] : j.items()) {
                         if (k != "kind" && k != "text" && k != "input") return BadRequest("unknown field: " + k, req.request_id);
                       }
                       if (!j.contains("kind") || !j["kind"].is_string()) return BadRequest("kind is required", req.request_id);
                       if (j.contains("text") && !j["text"].is_string()) return BadRequest("text must be a string", req.request_id);
                       const std::string input = j.contains("input") ? DumpJson(j["input"]) : "";
                       auto v = self->Resolve(std::string(req.Param("id")), j["kind"], j.value("text", ""), input,
                                              req.identity.principal);
                       if (!v.ok()) return http::ErrorFromStatus(v.status(), req.request_id);
                       return JsonOk(200, ViewJson(*v));
                     });
  (void)impl;
  return routes.Done();
}

}  // namespace bzzz::hmmm
