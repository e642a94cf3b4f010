// HmmmService: the HMMM rooms this node owns, in the running node
// (SPEC §3.7, docs/hmmm.md).
//
// - A room is owned by the node that opened it: that node alone applies the
//   room's rules (hmmm/room.h) and writes it. Every change is written to the
//   store (hmmm/repository.h) before the call that made it returns, so a
//   201 means the message is durable; a room survives restarts of its node.
// - Accepted messages are published, signed, on the room's topic
//   bzzz/meta/issue/<room id>; rooms opening, deciding, escalating, being
//   resolved and archived are announced on hmmm/meta-discussion/v1.
// - A node asked to post to a room it does not own but can read (a shared
//   PostgreSQL store) forwards the post to the owner over a direct message
//   (hop count + 1; the hop limit stops relay loops); the owner records the
//   forwarding node, verified by the P2P layer, as the message's node.
// - A task's room is opened on the task's owner. When it escalates, the task
//   is escalated (automation on it stops); when an operator resolves the
//   room, the task runs again. Both are applied again at start for the
//   rooms loaded, so a crash between the room's write and the task's change
//   is repaired by the next start.
// - Escalations are POSTed to hmmm.escalation_webhook with the room's
//   history, signed (X-Bzzz-Signature: sha256=<hex HMAC-SHA256 of the body
//   under hmmm.escalation_webhook_secret>), retried with backoff; whether
//   it was delivered is part of the stored room, so a restart goes on
//   delivering what was pending.
// - Time is injectable (Options::now) for tests; a ticker applies what time
//   does (objection windows closing, timeouts, archival) every 100 ms.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "hmmm/repository.h"
#include "hmmm/room.h"
#include "ops/component.h"

namespace prometheus {
class Registry;
}
namespace bzzz::p2p {
class P2pNode;
}

namespace bzzz::hmmm {

struct OpenRequest {
  std::string id;       // "" for a free room ("room-<hex>"); the task id for a task's room
  std::string task_id;  // "" for a free room; when set, the room's id is the task id
  std::string project;
  std::string title;
  Post seed;
};

// A room as the API shows it: its row, rule state and a page of messages.
struct RoomView {
  RoomRow row;
  bool owned = false;                    // this node owns (and writes) it
  std::vector<Participant> participants;  // as of the row (not filled for another node's room)
  std::optional<Proposal> proposal;
  std::string decision_id;
  std::string escalation_reason;
  std::vector<MessageRow> messages;      // seq > after, oldest first
};

// A stuck task of this node asking other agents for help.
struct HelpQuery {
  std::string task_id;
  std::string project;
  std::string title;
  std::vector<std::string> capabilities;  // a helper's node must have every one
  std::string agent;                      // the asking agent
  std::string reason;                     // why the task is stuck
  std::string question;                   // cut to hmmm.max_message_bytes
  std::chrono::steady_clock::time_point until;
  const std::atomic<bool>* cancel = nullptr;
};

struct PostResult {
  bool duplicate = false;   // the id was accepted before; `message` is the original
  bool forwarded = false;   // sent to `owner`, which applies the rules (no message here)
  std::string owner;
  MessageRow message;
};

class HmmmService : public ops::Component {
 public:
  struct Options {
    config::Config config;
    std::string node_id;
    std::shared_ptr<HmmmRepository> store;
    prometheus::Registry* metrics = nullptr;
    p2p::P2pNode* p2p = nullptr;          // null: no publishing, no forwarding
    std::function<std::int64_t()> now;    // Unix ms; null: the real clock
    bool ticker = true;                    // false: tests call Tick()
    // The tasks of task rooms (the node wires them to tasks::TaskServices);
    // null: rooms do not touch tasks. check_task: the task exists and is
    // this node's (a task's room is opened on its owner). escalate_task:
    // automation on it stops (idempotent). resume_task: it runs again,
    // with `input` (JSON) instead of its own when not empty; with dry_run
    // only checks that it could.
    std::function<Status(const std::string& task_id)> check_task;
    std::function<Status(const std::string& task_id, const std::string& reason)> escalate_task;
    std::function<Status(const std::string& task_id, const std::string& note, const std::string& input, bool dry_run)>
        resume_task;
    // Help (docs/hmmm.md "Stuck agents ask for help"): this node's
    // capabilities (node.capabilities), and the model call that answers
    // another node's help request (the request's text in, the answer out;
    // null: this node does not answer).
    std::vector<std::string> capabilities;
    std::function<Result<std::string>(const std::string& question, std::chrono::steady_clock::time_point deadline)>
        answer_help;
    // Called after a decision (a plan accepted, or an operator's
    // resolution) is written: SLURP's HMMM events. Must not block.
    std::function<void(const RoomRow& room, const MessageRow& decision)> on_decided;
    // Escalation webhook retries: the first after webhook_retry_base,
    // doubling up to 60 s, at most webhook_attempts in all.
    std::chrono::milliseconds webhook_retry_base{1000};
    int webhook_attempts = 10;
  };

  // Loads the rooms this node owns that are not archived.
  static Result<std::shared_ptr<HmmmService>> Start(Options options);
  ~HmmmService() override;
  void Stop();

  // InvalidArgument for a bad request, Conflict when the room exists.
  Result<RoomView> Open(OpenRequest request);
  // Refusals come back as errors (FailedPrecondition: closed; ResourceExhausted:
  // rates and participants; InvalidArgument: the rest), counted by reason.
  Result<PostResult> PostMessage(const std::string& room_id, Post post);
  Status Join(const std::string& room_id, const std::string& agent, const std::string& node);
  Status Leave(const std::string& room_id, const std::string& agent, const std::string& node);
  Result<RoomView> Resolve(const std::string& room_id, const std::string& kind, const std::string& text,
                           const std::string& input, const std::string& by);
  Result<RoomView> Get(const std::string& room_id, std::int64_t after_seq, std::size_t limit);
  Result<std::vector<RoomRow>> List(const RoomQuery& query);
  // Answers with the messages after `after_seq` as soon as there are some,
  // or after `wait` with none.
  void Watch(const std::string& room_id, std::int64_t after_seq, std::chrono::milliseconds wait,
             std::function<void(Result<RoomView>)> done);
  // Posts a help_request in the task's room (opening it when the task has
  // none; FailedPrecondition when it is closed), announces it to the other
  // nodes on hmmm/meta-discussion/v1 (type hmmm.help), and waits for the
  // help_response messages answering it: until hmmm.help_answers of them
  // arrived, 5 s after the first, `until`, cancellation or Stop, whichever
  // comes first. The answers come back in the order the room took them.
  Result<std::vector<MessageRow>> AskForHelp(HelpQuery query);
  // What time does, now (the ticker's work).
  void Tick();

  // ops::Component
  std::string_view Name() const override { return "hmmm"; }
  Status RegisterRoutes(http::Router& router) override;
  std::vector<std::string> StatusSections() const override { return {"hmmm"}; }
  std::string StatusJson(std::string_view section) const override;
  std::vector<ops::ShutdownStep> ShutdownSteps(const config::Config& config) override;

  struct Impl;

 private:
  HmmmService() = default;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::hmmm
