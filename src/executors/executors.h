// The executors a node offers, built from its configuration.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "config/config.h"
#include "executors/executor.h"
#include "executors/sandbox.h"
#include "executors/secrets.h"

namespace bzzz::executors {

// builtin, command (bubblewrap), http (webhook), and llm when
// agents.llm.endpoint is set.
std::unique_ptr<ExecutorRegistry> MakeRegistry(const config::Config& config);

// `secrets` resolves secret:// references in `env` (null: environment only).
std::unique_ptr<Executor> MakeCommandExecutor(std::shared_ptr<Sandbox> sandbox,
                                              std::shared_ptr<const SecretStore> secrets = nullptr);
// InvalidArgument for an agents.http.allow entry that is neither a host nor a CIDR.
// `secrets` resolves secret:// references in header values.
Result<std::unique_ptr<Executor>> MakeHttpExecutor(const config::WebhookConfig& config,
                                                   std::shared_ptr<const SecretStore> secrets = nullptr);
std::unique_ptr<Executor> MakeLlmExecutor(config::LlmConfig llm, std::shared_ptr<Sandbox> sandbox);

// The reasoning loop's parsing, exposed for tests: the shell command in a
// model's reply (the first fenced block, else the first non-empty line),
// and whether the reply ends the task (it contains TASK_COMPLETE).
std::string ExtractCommand(const std::string& reply);
bool IsComplete(const std::string& reply, std::string* answer);
// Whether the model says it is stuck (NEED_HELP); `question` gets what it
// asks (the text after the marker, else before it).
bool AsksForHelp(const std::string& reply, std::string* question);

// When the reasoning loop is stuck: `repeated_failures` failures of the same
// command, or `no_progress_iterations` iterations in a row without progress
// (progress: a command that succeeded with output not seen before from it).
class StuckDetector {
 public:
  StuckDetector(int no_progress_iterations, int repeated_failures);
  // One iteration: its command ("" when the reply held none), exit code and
  // output. Returns why the loop is stuck, or "" when it is not.
  std::string Observe(const std::string& command, int exit_code, const std::string& output);
  // After help was asked for: the counts start again.
  void Reset();

 private:
  int max_without_progress_;
  int max_failures_;
  int without_progress_ = 0;
  std::map<std::string, int> failures_;  // command -> failures since the last reset
  std::set<std::size_t> seen_;           // successful (command, output) pairs
};

}  // namespace bzzz::executors
