// Executors: what an agent runs a task with (SPEC §3.6).
//
//   builtin  {"op":"echo","value":...} | {"op":"sleep","ms":N} | {"op":"fail","message"?}
//   command  {"argv":[...], "network"?, "env"?, "stdin"?, "memory_mb"?, "max_output_bytes"?}
//            in a bubblewrap sandbox (executors/command.h)
//   http     {"url", "headers"?, "body"?}: POSTs the task to a webhook
//   llm      {"prompt", "model"?, "max_iterations"?, "network"?}: the BZZZ reasoning loop
//
// An executor validates a task's input when it is submitted (a bad input
// gets 400 and no task) and runs it later on an agent's thread. Execute
// must return when the deadline passes or `cancel` becomes true.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace bzzz::executors {

// A stuck task asking other agents for help (HMMM rooms, docs/hmmm.md).
struct HelpRequest {
  std::string reason;    // why the task is stuck, one line
  std::string question;  // the task, what was tried and what went wrong
  std::chrono::steady_clock::time_point until;  // stop waiting for answers
  const std::atomic<bool>* cancel = nullptr;
};
struct HelpAnswer {
  std::string agent;
  std::string node;  // the node that answered, as its signature says
  std::string body;
};
using AskHelp = std::function<Result<std::vector<HelpAnswer>>(const HelpRequest&)>;

struct ExecContext {
  std::string task_id;
  int attempt = 0;
  std::string input;  // JSON text, already validated
  std::chrono::steady_clock::time_point deadline;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(std::string_view)> progress;  // optional: a line for the task's events
  // Optional: asks other agents for help and waits for their answers (the
  // llm loop, when it is stuck). Null when no one can be asked.
  AskHelp ask_help;
};

struct ExecResult {
  enum class Outcome { kSucceeded, kFailed, kTimedOut, kCancelled };
  Outcome outcome = Outcome::kSucceeded;
  std::string result;  // JSON text (on success; failures may carry one too)
  std::string error;   // on failure: why

  static ExecResult Success(std::string json) { return {Outcome::kSucceeded, std::move(json), {}}; }
  static ExecResult Failure(std::string why, std::string json = {}) {
    return {Outcome::kFailed, std::move(json), std::move(why)};
  }
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::string_view Kind() const = 0;
  // InvalidArgument naming the field at fault.
  virtual Status Validate(std::string_view input) const = 0;
  virtual ExecResult Execute(const ExecContext& context) = 0;
};

class ExecutorRegistry {
 public:
  void Add(std::unique_ptr<Executor> executor);
  Executor* Find(std::string_view kind) const;
  // InvalidArgument for an unknown kind or a bad input.
  Status Validate(std::string_view kind, std::string_view input) const;
  std::vector<std::string> Kinds() const;

 private:
  std::map<std::string, std::unique_ptr<Executor>, std::less<>> executors_;
};

std::unique_ptr<Executor> MakeBuiltinExecutor();

// Sleeps until `deadline` or `cancel`, whichever first; true when cancelled.
bool SleepCancellable(std::chrono::steady_clock::time_point until, const std::atomic<bool>* cancel);

}  // namespace bzzz::executors
