#include "executors/llm_client.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "http/client.h"

namespace bzzz::executors {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kHelperPrompt =
    "You are a BZZZ agent. Another agent working on a task in a Linux sandbox is stuck and asks for help. "
    "Read its task and what it tried, then answer briefly: the cause you suspect and the shell command(s) it "
    "should try next, in a ```sh fenced block. You cannot run anything yourself. Do not answer TASK_COMPLETE.";

http::ClientOptions Options(const config::LlmConfig& llm, LlmClient::Deadline deadline) {
  http::ClientOptions o;
  o.url = llm.endpoint;
  o.token = llm.api_key;
  o.user_agent = "bzzz-llm";
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  o.timeout = std::max(std::chrono::milliseconds(1), std::min(llm.request_timeout, left));
  return o;
}

}  // namespace

Result<std::string> LlmClient::ChooseModel(const std::string& wanted, Deadline deadline) const {
  const bool ollama = config_.api == "ollama";
  auto res = http::Call(Options(config_, deadline), "GET", ollama ? "/api/tags" : "/v1/models");
  if (!res.ok()) return res.status();
  if (res->status != 200) return Unavailable("model list: server answered " + std::to_string(res->status));
  json j = ParseJson(res->body);
  std::vector<std::string> offered;
  try {
    for (const auto& m : ollama ? j.at("models") : j.at("data")) {
      offered.push_back(m.at(ollama ? "name" : "id").get<std::string>());
    }
  } catch (const json::exception&) {
    return Unavailable("model list: unexpected answer from the server");
  }
  const auto has = [&](const std::string& m) { return std::find(offered.begin(), offered.end(), m) != offered.end(); };
  if (!wanted.empty()) {
    if (has(wanted)) return wanted;
    return FailedPrecondition("model " + wanted + " is not offered by " + config_.endpoint);
  }
  for (const auto& m : config_.models) {
    if (has(m)) return m;
  }
  if (config_.models.empty() && !offered.empty()) return offered.front();
  return FailedPrecondition("none of the configured models (agents.llm.models) is offered by " + config_.endpoint);
}

Result<std::string> LlmClient::Chat(const std::string& model, const std::vector<ChatMessage>& messages,
                                    Deadline deadline) const {
  const bool ollama = config_.api == "ollama";
  json list = json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  json body = {{"model", model}, {"messages", std::move(list)}, {"stream", false}};
  auto res = http::Call(Options(config_, deadline), "POST", ollama ? "/api/chat" : "/v1/chat/completions", DumpJson(body));
  if (!res.ok()) return res.status();
  if (res->status != 200) return Unavailable("chat: server answered " + std::to_string(res->status) + ": " + res->body.substr(0, 200));
  json j = ParseJson(res->body);
  try {
    return ollama ? j.at("message").at("content").get<std::string>()
                  : j.at("choices").at(0).at("message").at("content").get<std::string>();
  } catch (const json::exception&) {
    return Unavailable("chat: unexpected answer from the server");
  }
}

Result<std::string> AnswerHelpRequest(const LlmClient& client, const std::string& question, LlmClient::Deadline deadline) {
  auto model = client.ChooseModel("", deadline);
  if (!model.ok()) return model.status();
  return client.Chat(*model, {{"system", std::string(kHelperPrompt)}, {"user", question}}, deadline);
}

}  // namespace bzzz::executors
