// The `llm` executor: the BZZZ reasoning loop (SPEC §3.6) against an Ollama
// (/api/chat) or OpenAI-compatible (/v1/chat/completions) server. Each turn
// the model answers with one shell command, which runs in the sandbox (one
// work directory for the whole task); its output is the next user message.
// The loop ends when a reply contains TASK_COMPLETE (success, the text after
// it is the answer) or after max_iterations (failure).
#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "executors/executors.h"
#include "http/client.h"

namespace bzzz::executors {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kSystemPrompt =
    "You are a BZZZ agent working on a task in a Linux sandbox (a private /work directory, no network unless the "
    "task allows it). Each turn, answer with exactly one shell command in a ```sh fenced block; you will get its "
    "exit code and output. When the task is done, answer TASK_COMPLETE followed by the final answer.";

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

class LlmExecutor final : public Executor {
 public:
  LlmExecutor(config::LlmConfig llm, std::shared_ptr<Sandbox> sandbox) : llm_(std::move(llm)), sandbox_(std::move(sandbox)) {}
  std::string_view Kind() const override { return "llm"; }

  Status Validate(std::string_view input) const override {
    json j = ParseJson(input);
    if (!j.is_object()) return InvalidArgument("input: must be an object {\"prompt\": ...}");
    auto p = j.find("prompt");
    if (p == j.end() || !p->is_string() || p->get<std::string>().empty() || p->get<std::string>().size() > (256u << 10)) {
      return InvalidArgument("input.prompt: required non-empty string of at most 256 KiB");
    }
    if (auto m = j.find("model"); m != j.end() && (!m->is_string() || m->get<std::string>().empty())) {
      return InvalidArgument("input.model: a non-empty string");
    }
    if (auto m = j.find("max_iterations"); m != j.end() &&
        (!m->is_number_integer() || m->get<long long>() < 1 || m->get<long long>() > 1000)) {
      return InvalidArgument("input.max_iterations: an integer 1..1000");
    }
    if (auto n = j.find("network"); n != j.end()) {
      if (!n->is_boolean()) return InvalidArgument("input.network: must be a boolean");
      if (n->get<bool>() && !sandbox_->config().allow_network) {
        return InvalidArgument("input.network: this node does not allow network access to tasks");
      }
    }
    return Status::Ok();
  }

  ExecResult Execute(const ExecContext& ctx) override {
    json in = ParseJson(ctx.input);
    auto model = ChooseModel(in.value("model", ""), ctx);
    if (!model.ok()) return ExecResult::Failure(model.status().message());
    const int max_iterations = in.value("max_iterations", llm_.max_iterations);
    json messages = json::array({{{"role", "system"}, {"content", kSystemPrompt}},
                                 {{"role", "user"}, {"content", in["prompt"].get<std::string>()}}});
    json transcript = json::array();
    auto dir = sandbox_->MakeWorkdir(ctx.task_id, ctx.attempt);
    if (!dir.ok()) return ExecResult::Failure(dir.status().message());
    struct Cleanup {
      std::string path;
      ~Cleanup() { Sandbox::RemoveWorkdir(path); }
    } cleanup{*dir};
    for (int i = 1; i <= max_iterations; ++i) {
      if (ctx.cancel && ctx.cancel->load()) return {ExecResult::Outcome::kCancelled, {}, "cancelled"};
      if (Clock::now() >= ctx.deadline) return {ExecResult::Outcome::kTimedOut, {}, "timed out in iteration " + std::to_string(i)};
      auto reply = Chat(*model, messages, ctx);
      if (!reply.ok()) {
        if (reply.status().code() == StatusCode::kTimeout) return {ExecResult::Outcome::kTimedOut, {}, reply.status().message()};
        return ExecResult::Failure("iteration " + std::to_string(i) + ": " + reply.status().message());
      }
      messages.push_back({{"role", "assistant"}, {"content", *reply}});
      std::string answer;
      if (IsComplete(*reply, &answer)) {
        transcript.push_back({{"iteration", i}, {"reply", *reply}});
        json result = {{"answer", answer}, {"iterations", i}, {"model", *model}, {"transcript", transcript}};
        return ExecResult::Success(DumpJson(result));
      }
      const std::string command = ExtractCommand(*reply);
      if (command.empty()) {
        messages.push_back({{"role", "user"}, {"content", "No command found. Answer with one command in a ```sh block, or TASK_COMPLETE."}});
        transcript.push_back({{"iteration", i}, {"reply", *reply}, {"command", nullptr}});
        continue;
      }
      if (ctx.progress) ctx.progress("iteration " + std::to_string(i) + ": " + command.substr(0, 200));
      SandboxRequest r;
      r.argv = {"/bin/sh", "-c", command};
      r.network = in.value("network", false);
      r.workdir = *dir;
      r.deadline = std::min(ctx.deadline, Clock::now() + std::chrono::seconds(60));
      r.cancel = ctx.cancel;
      auto run = sandbox_->Run(r);
      if (!run.ok()) return ExecResult::Failure("sandbox: " + run.status().message());
      std::string feedback = "exit code " + std::to_string(run->exit_code) + (run->timed_out ? " (killed: time limit)" : "") +
                             "\nstdout:\n" + run->out + (run->stdout_truncated ? "\n[truncated]" : "") +
                             "\nstderr:\n" + run->err + (run->stderr_truncated ? "\n[truncated]" : "");
      transcript.push_back({{"iteration", i}, {"reply", *reply}, {"command", command}, {"exit_code", run->exit_code}});
      messages.push_back({{"role", "user"}, {"content", std::move(feedback)}});
    }
    json partial = {{"iterations", max_iterations}, {"model", *model}, {"transcript", transcript}};
    return ExecResult::Failure("no TASK_COMPLETE after " + std::to_string(max_iterations) + " iterations", DumpJson(partial));
  }

 private:
  http::ClientOptions Options(const ExecContext& ctx) const {
    http::ClientOptions o;
    o.url = llm_.endpoint;
    o.token = llm_.api_key;
    o.user_agent = "bzzz-llm";
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - Clock::now());
    o.timeout = std::max(std::chrono::milliseconds(1), std::min(llm_.request_timeout, left));
    return o;
  }

  // Model choice = the configured list ∩ what the server offers (first
  // configured wins); a task's own model must be offered.
  Result<std::string> ChooseModel(const std::string& wanted, const ExecContext& ctx) const {
    const bool ollama = llm_.api == "ollama";
    auto res = http::Call(Options(ctx), "GET", ollama ? "/api/tags" : "/v1/models");
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
      return FailedPrecondition("model " + wanted + " is not offered by " + llm_.endpoint);
    }
    for (const auto& m : llm_.models) {
      if (has(m)) return m;
    }
    if (llm_.models.empty() && !offered.empty()) return offered.front();
    return FailedPrecondition("none of the configured models (agents.llm.models) is offered by " + llm_.endpoint);
  }

  Result<std::string> Chat(const std::string& model, const json& messages, const ExecContext& ctx) const {
    const bool ollama = llm_.api == "ollama";
    json body = {{"model", model}, {"messages", messages}, {"stream", false}};
    auto res = http::Call(Options(ctx), "POST", ollama ? "/api/chat" : "/v1/chat/completions", DumpJson(body));
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

  config::LlmConfig llm_;
  std::shared_ptr<Sandbox> sandbox_;
};

}  // namespace

std::string ExtractCommand(const std::string& reply) {
  const auto fence = reply.find("```");
  if (fence != std::string::npos) {
    auto start = reply.find('\n', fence);
    const auto end = start == std::string::npos ? std::string::npos : reply.find("```", start);
    if (end != std::string::npos) return Trim(reply.substr(start + 1, end - start - 1));
  }
  std::size_t pos = 0;
  while (pos < reply.size()) {
    auto nl = reply.find('\n', pos);
    std::string line = Trim(reply.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (!line.empty()) return line;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return "";
}

bool IsComplete(const std::string& reply, std::string* answer) {
  const auto at = reply.find("TASK_COMPLETE");
  if (at == std::string::npos) return false;
  if (answer) *answer = Trim(reply.substr(at + std::string_view("TASK_COMPLETE").size()));
  return true;
}

std::unique_ptr<Executor> MakeLlmExecutor(config::LlmConfig llm, std::shared_ptr<Sandbox> sandbox) {
  return std::make_unique<LlmExecutor>(std::move(llm), std::move(sandbox));
}

}  // namespace bzzz::executors
