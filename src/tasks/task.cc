#include "tasks/task.h"

#include <array>
#include <cstdio>
#include <utility>

namespace bzzz::tasks {

namespace {

constexpr std::array<std::pair<TaskState, std::string_view>, 9> kTaskStates{{
    {TaskState::kQueued, "queued"},
    {TaskState::kAssigned, "assigned"},
    {TaskState::kRunning, "running"},
    {TaskState::kSucceeded, "succeeded"},
    {TaskState::kFailed, "failed"},
    {TaskState::kRetried, "retried"},
    {TaskState::kDead, "dead"},
    {TaskState::kCancelled, "cancelled"},
    {TaskState::kEscalated, "escalated"},
}};

constexpr std::array<std::pair<AttemptState, std::string_view>, 8> kAttemptStates{{
    {AttemptState::kAssigned, "assigned"},
    {AttemptState::kRunning, "running"},
    {AttemptState::kSucceeded, "succeeded"},
    {AttemptState::kFailed, "failed"},
    {AttemptState::kTimedOut, "timed_out"},
    {AttemptState::kLost, "lost"},
    {AttemptState::kCancelled, "cancelled"},
    {AttemptState::kHandedBack, "handed_back"},
}};

template <typename E, std::size_t N>
std::string_view NameOf(const std::array<std::pair<E, std::string_view>, N>& table, E value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename E, std::size_t N>
std::optional<E> Parse(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view name) {
  for (const auto& [v, n] : table) {
    if (n == name) return v;
  }
  return std::nullopt;
}

}  // namespace

std::string_view TaskStateName(TaskState state) { return NameOf(kTaskStates, state); }
std::optional<TaskState> ParseTaskState(std::string_view name) { return Parse(kTaskStates, name); }
std::string_view AttemptStateName(AttemptState state) { return NameOf(kAttemptStates, state); }
std::optional<AttemptState> ParseAttemptState(std::string_view name) { return Parse(kAttemptStates, name); }

bool IsTerminal(TaskState state) {
  return state == TaskState::kSucceeded || state == TaskState::kDead || state == TaskState::kCancelled ||
         state == TaskState::kEscalated;
}

bool CountsAsFailure(AttemptState state) {
  return state == AttemptState::kFailed || state == AttemptState::kTimedOut || state == AttemptState::kLost;
}

int Task::FailedAttempts() const {
  int n = 0;
  for (std::size_t i = static_cast<std::size_t>(attempt_base); i < attempts.size(); ++i) {
    n += CountsAsFailure(attempts[i].state);
  }
  return n;
}

Attempt* Task::Current() {
  if (attempts.empty()) return nullptr;
  Attempt& a = attempts.back();
  return a.state == AttemptState::kAssigned || a.state == AttemptState::kRunning ? &a : nullptr;
}

const Attempt* Task::Current() const { return const_cast<Task*>(this)->Current(); }

int Task::SuccessfulAttempts() const {
  int n = 0;
  for (const auto& a : attempts) n += a.state == AttemptState::kSucceeded;
  return n;
}

std::string Task::UcxlAddress() const {
  if (project.empty() || name.empty()) return "";
  return "ucxl://any:any@" + project + ":" + name + "/*^/";
}

void Task::AddEvent(std::int64_t at_ms, std::string type, std::string detail, int attempt) {
  if (events.size() >= kMaxEvents) events.erase(events.begin());
  events.push_back(TaskEvent{at_ms, std::move(type), std::move(detail), attempt});
  ++event_count;
}

std::string NewTaskId(std::int64_t now_ms, std::uint64_t random) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "t-%012llx%08x", static_cast<unsigned long long>(now_ms) & 0xffffffffffffULL,
                static_cast<unsigned>(random & 0xffffffffu));
  return buf;
}

}  // namespace bzzz::tasks
