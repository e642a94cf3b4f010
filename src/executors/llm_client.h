// LlmClient: one LLM server, spoken to with the Ollama (/api/tags,
// /api/chat) or the OpenAI-compatible (/v1/models, /v1/chat/completions)
// protocol, as agents.llm configures. Used by the `llm` executor's reasoning
// loop and by HMMM, whose helpers answer other agents' help requests with
// the node's own model. Stateless apart from its configuration; thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"
#include "config/config.h"

namespace bzzz::executors {

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

class LlmClient {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  explicit LlmClient(config::LlmConfig config) : config_(std::move(config)) {}

  const config::LlmConfig& config() const { return config_; }

  // The model to use: `wanted` when the server offers it (else
  // FailedPrecondition); with no `wanted`, the first of agents.llm.models the
  // server offers, or the server's first model when none is configured.
  // Unavailable when the server cannot be asked.
  Result<std::string> ChooseModel(const std::string& wanted, Deadline deadline) const;
  // One chat completion (no streaming): the assistant's reply. Timeout when
  // the deadline (or agents.llm.request_timeout) passes first.
  Result<std::string> Chat(const std::string& model, const std::vector<ChatMessage>& messages, Deadline deadline) const;

 private:
  config::LlmConfig config_;
};

// A helper's answer to another agent's help request (docs/hmmm.md): one
// call to the model with the helper's instructions and the request's text.
Result<std::string> AnswerHelpRequest(const LlmClient& client, const std::string& question, LlmClient::Deadline deadline);

}  // namespace bzzz::executors
