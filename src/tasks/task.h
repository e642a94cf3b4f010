// The task model of SPEC §3.6: a task, its attempts and its events, and the
// names of their states.
//
// State machine of a task (docs/tasks.md):
//
//   queued ──dispatch──> assigned ──agent starts──> running ──> succeeded
//     ^                                                  │
//     │                                                  └──> failed ──> retried ──backoff──> queued
//     │                                                                └─> dead (dead-letter queue)
//     └──────────────── replay (dead-letter queue) <─────────────────────────┘
//   queued | retried | assigned | running ──cancel──> cancelled
//
// `failed` is where an attempt's failure is decided: the task moves on at
// once to `retried` (another attempt after a backoff) or `dead` (attempts
// exhausted). `escalated` belongs to HMMM (a task a human must look at).
// succeeded, dead, cancelled and escalated are terminal (a dead task can be
// replayed, which starts a new attempt budget).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bzzz::tasks {

enum class TaskState { kQueued, kAssigned, kRunning, kSucceeded, kFailed, kRetried, kDead, kCancelled, kEscalated };

// How one attempt ended (or that it has not).
enum class AttemptState {
  kAssigned,    // leased to an agent, not started
  kRunning,
  kSucceeded,
  kFailed,      // the executor reported a failure
  kTimedOut,    // ran past the task's timeout
  kLost,        // the lease expired or the node restarted under it
  kCancelled,
  kHandedBack,  // the agent gave it back unfinished (draining); not counted
};

std::string_view TaskStateName(TaskState state);
std::optional<TaskState> ParseTaskState(std::string_view name);
std::string_view AttemptStateName(AttemptState state);
std::optional<AttemptState> ParseAttemptState(std::string_view name);

// Terminal: nothing happens to the task any more unless an operator acts.
bool IsTerminal(TaskState state);
// An attempt that counts against max_attempts when it ends this way.
bool CountsAsFailure(AttemptState state);

struct Attempt {
  int number = 0;             // 1, 2, ... per task
  std::string agent_id;
  std::string node_id;
  AttemptState state = AttemptState::kAssigned;
  std::int64_t assigned_ms = 0;
  std::int64_t started_ms = 0;
  std::int64_t finished_ms = 0;
  std::int64_t lease_expiry_ms = 0;
  std::string result;         // JSON text of a success, "" otherwise
  std::string error;          // why it failed
  bool operator==(const Attempt&) const = default;
};

struct TaskEvent {
  std::int64_t at_ms = 0;
  std::string type;    // "created", "assigned", "running", "progress", "succeeded", ...
  std::string detail;  // human text
  int attempt = 0;     // 0 when not about an attempt
  bool operator==(const TaskEvent&) const = default;
};

struct Task {
  std::string id;               // "t-" + 12 hex ms + 8 hex random: sortable, unique
  std::string idempotency_key;  // "" when none
  std::string executor;         // "builtin", "command", "http", "llm"
  std::string input = "{}";     // JSON text, what the executor gets
  int priority = 0;             // higher first
  std::vector<std::string> capabilities;  // an agent must have every one
  std::string role;             // "" = any agent role
  std::int64_t timeout_ms = 0;
  int max_attempts = 0;
  std::string project;          // with name: the task's UCXL address
  std::string name;

  TaskState state = TaskState::kQueued;
  std::vector<Attempt> attempts;
  int attempt_base = 0;         // attempts before the last replay (not counted again)
  std::string result;           // JSON text of the successful attempt
  std::string error;            // last failure
  std::string submitter;        // the principal that submitted it ("" for tasks from before it was recorded)
  std::string owner_node;       // the node that holds it durably
  std::string assigned_agent;   // of the current attempt
  std::int64_t lease_expiry_ms = 0;
  std::string hmmm_room;        // "bzzz/meta/issue/<id>"
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t finished_ms = 0;
  std::int64_t not_before_ms = 0;  // retried: when it may run again
  bool cancel_requested = false;
  bool escalate_requested = false;  // HMMM escalated it while an attempt ran: no retry after it
  std::int64_t seq = 0;            // creation order on the owner
  std::vector<TaskEvent> events;   // the last kMaxEvents
  std::int64_t event_count = 0;    // events ever added; events[i] is number event_count - events.size() + i

  static constexpr std::size_t kMaxEvents = 64;

  // Attempts that count against max_attempts since the last replay.
  int FailedAttempts() const;
  // The attempt in flight (assigned or running), if any.
  Attempt* Current();
  const Attempt* Current() const;
  int SuccessfulAttempts() const;
  // "ucxl://any:any@<project>:<name>/*^/" when both are set, else "".
  std::string UcxlAddress() const;
  void AddEvent(std::int64_t at_ms, std::string type, std::string detail, int attempt = 0);

  bool operator==(const Task&) const = default;
};

// A new task's id: sortable by creation time, unique with overwhelming
// probability (32 random bits per millisecond and node).
std::string NewTaskId(std::int64_t now_ms, std::uint64_t random);

}  // namespace bzzz::tasks
