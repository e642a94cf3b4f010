// The executors a node offers, built from its configuration.
#pragma once

#include <memory>
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

}  // namespace bzzz::executors
