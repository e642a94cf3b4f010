// The `llm` executor: the BZZZ reasoning loop (SPEC §3.6) against an Ollama
// (/api/chat) or OpenAI-compatible (/v1/chat/completions) server. Each turn
// the model answers with one shell command, which runs in the sandbox (one
// work directory for the whole task); its output is the next user message.
// The loop ends when a reply contains TASK_COMPLETE (success, the text after
// it is the answer) or after max_iterations (failure).
//
// A loop that is stuck (StuckDetector, or the model answering NEED_HELP)
// asks other agents for help through ExecContext::ask_help (an HMMM room,
// docs/hmmm.md) and reads their answers into its next prompt.
#include <algorithm>
#include <functional>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "executors/executors.h"
#include "executors/llm_client.h"

namespace bzzz::executors {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kSystemPrompt =
    "You are a BZZZ agent working on a task in a Linux sandbox (a private /work directory, no network unless the "
    "task allows it). Each turn, answer with exactly one shell command in a ```sh fenced block; you will get its "
    "exit code and output. When the task is done, answer TASK_COMPLETE followed by the final answer. If you are "
    "stuck, answer NEED_HELP followed by what you need to know: other agents will be asked.";
constexpr std::string_view kHelpMarker = "NEED_HELP";
constexpr std::size_t kQuestionPromptBytes = 2000;  // of the task's prompt, in a help request
constexpr std::size_t kQuestionOutputBytes = 600;   // of each step's output
constexpr int kQuestionSteps = 3;                   // the last steps shown

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string Head(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(0, n) + " [...]"; }
std::string Tail(const std::string& s, std::size_t n) { return s.size() <= n ? s : "[...] " + s.substr(s.size() - n); }

struct Step {
  std::string command;
  int exit_code = 0;
  std::string output;
};

// What a help request says: the task, why it is stuck, the last steps.
std::string Question(const std::string& prompt, const std::string& reason, const std::string& asked,
                     const std::vector<Step>& steps) {
  std::string q = "Task: " + Head(prompt, kQuestionPromptBytes) + "\nWhy help is needed: " + reason + "\n";
  if (!asked.empty()) q += "The agent asks: " + Head(asked, kQuestionPromptBytes) + "\n";
  if (!steps.empty()) {
    q += "Last steps:\n";
    const std::size_t from = steps.size() > kQuestionSteps ? steps.size() - kQuestionSteps : 0;
    for (std::size_t i = from; i < steps.size(); ++i) {
      q += "$ " + Head(steps[i].command, 500) + "\nexit code " + std::to_string(steps[i].exit_code) + "\n" +
           Tail(steps[i].output, kQuestionOutputBytes) + "\n";
    }
  }
  return q;
}

std::string AnswersPrompt(const std::string& reason, const std::vector<HelpAnswer>& answers) {
  std::string p = "You asked other agents for help (" + reason + ").";
  if (answers.empty()) {
    p += " None answered in time.";
  } else {
    p += " Their answers:\n";
    for (const auto& a : answers) p += "\n--- " + a.agent + " on node " + a.node + ":\n" + a.body + "\n";
    p += "---\nUse what helps.";
  }
  return p + " Answer with one command in a ```sh block, or TASK_COMPLETE.";
}

class LlmExecutor final : public Executor {
 public:
  LlmExecutor(config::LlmConfig llm, std::shared_ptr<Sandbox> sandbox) : client_(std::move(llm)), sandbox_(std::move(sandbox)) {}
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
    if (auto h = j.find("help"); h != j.end() && !h->is_boolean()) {
      return InvalidArgument("input.help: must be a boolean");
    }
    return Status::Ok();
  }

  ExecResult Execute(const ExecContext& ctx) override {
    const config::LlmConfig& llm = client_.config();
    json in = ParseJson(ctx.input);
    auto model = client_.ChooseModel(in.value("model", ""), ctx.deadline);
    if (!model.ok()) return ExecResult::Failure(model.status().message());
    const int max_iterations = in.value("max_iterations", llm.max_iterations);
    const std::string prompt = in["prompt"].get<std::string>();
    const bool may_ask = ctx.ask_help != nullptr && in.value("help", true);
    std::vector<ChatMessage> messages = {{"system", std::string(kSystemPrompt)}, {"user", prompt}};
    json transcript = json::array();
    std::vector<Step> steps;
    StuckDetector stuck(llm.stuck_iterations, llm.stuck_repeats);
    int help_requests = 0;
    auto dir = sandbox_->MakeWorkdir(ctx.task_id, ctx.attempt);
    if (!dir.ok()) return ExecResult::Failure(dir.status().message());
    struct Cleanup {
      std::string path;
      ~Cleanup() { Sandbox::RemoveWorkdir(path); }
    } cleanup{*dir};
    for (int i = 1; i <= max_iterations; ++i) {
      if (ctx.cancel && ctx.cancel->load()) return {ExecResult::Outcome::kCancelled, {}, "cancelled"};
      if (Clock::now() >= ctx.deadline) return {ExecResult::Outcome::kTimedOut, {}, "timed out in iteration " + std::to_string(i)};
      auto reply = client_.Chat(*model, messages, ctx.deadline);
      if (!reply.ok()) {
        if (reply.status().code() == StatusCode::kTimeout) return {ExecResult::Outcome::kTimedOut, {}, reply.status().message()};
        return ExecResult::Failure("iteration " + std::to_string(i) + ": " + reply.status().message());
      }
      messages.push_back({"assistant", *reply});
      std::string answer;
      if (IsComplete(*reply, &answer)) {
        transcript.push_back({{"iteration", i}, {"reply", *reply}});
        json result = {{"answer", answer}, {"iterations", i}, {"model", *model}, {"transcript", transcript},
                       {"help_requests", help_requests}};
        return ExecResult::Success(DumpJson(result));
      }
      json step = {{"iteration", i}, {"reply", *reply}};
      std::string why;    // stuck: why
      std::string asked;  // what the model asked for
      if (AsksForHelp(*reply, &asked)) {
        why = "the model asked for help";
        step["command"] = nullptr;
      } else if (const std::string command = ExtractCommand(*reply); command.empty()) {
        messages.push_back({"user", "No command found. Answer with one command in a ```sh block, or TASK_COMPLETE."});
        step["command"] = nullptr;
        why = stuck.Observe("", 1, "");
      } else {
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
        step["command"] = command;
        step["exit_code"] = run->exit_code;
        steps.push_back({command, run->exit_code, run->out + run->err});
        why = stuck.Observe(command, run->exit_code, run->out + run->err);
        messages.push_back({"user", std::move(feedback)});
      }
      if (!why.empty() && may_ask && help_requests < llm.max_help_requests) {
        ++help_requests;
        stuck.Reset();
        if (ctx.progress) ctx.progress("stuck (" + why + "): asking other agents for help");
        HelpRequest hr;
        hr.reason = why;
        hr.question = Question(prompt, why, asked, steps);
        hr.until = std::min(ctx.deadline, Clock::now() + llm.help_wait);
        hr.cancel = ctx.cancel;
        auto answers = ctx.ask_help(hr);
        if (ctx.cancel && ctx.cancel->load()) return {ExecResult::Outcome::kCancelled, {}, "cancelled"};
        if (answers.ok()) {
          json nodes = json::array();
          for (const auto& a : *answers) nodes.push_back(a.node);
          step["help"] = {{"reason", why}, {"answers", answers->size()}, {"nodes", nodes}};
          if (ctx.progress) ctx.progress("help: " + std::to_string(answers->size()) + " answer(s)");
          messages.push_back({"user", AnswersPrompt(why, *answers)});
        } else {
          step["help"] = {{"reason", why}, {"error", answers.status().message()}};
          if (ctx.progress) ctx.progress("help unavailable: " + answers.status().message());
          if (!asked.empty() || why == "the model asked for help") {
            messages.push_back({"user", "No other agent can be asked (" + answers.status().message() +
                                            "). Go on by yourself: one command in a ```sh block, or TASK_COMPLETE."});
          }
        }
      } else if (why == "the model asked for help") {
        stuck.Observe("", 1, "");
        messages.push_back({"user", "No other agent can be asked now. Go on by yourself: one command in a ```sh "
                                    "block, or TASK_COMPLETE."});
      }
      transcript.push_back(std::move(step));
    }
    json partial = {{"iterations", max_iterations}, {"model", *model}, {"transcript", transcript},
                    {"help_requests", help_requests}};
    return ExecResult::Failure("no TASK_COMPLETE after " + std::to_string(max_iterations) + " iterations", DumpJson(partial));
  }

 private:
  LlmClient client_;
  std::shared_ptr<Sandbox> sandbox_;
};

}  // namespace

StuckDetector::StuckDetector(int no_progress_iterations, int repeated_failures)
    : max_without_progress_(std::max(1, no_progress_iterations)), max_failures_(std::max(1, repeated_failures)) {}

std::string StuckDetector::Observe(const std::string& command, int exit_code, const std::string& output) {
  if (!command.empty() && exit_code == 0) {
    const std::size_t seen = std::hash<std::string>{}(command + '\0' + output);
    if (seen_.insert(seen).second) {
      without_progress_ = 0;
      return "";
    }
  }
  ++without_progress_;
  if (!command.empty() && exit_code != 0 && ++failures_[command] >= max_failures_) {
    return "the same command failed " + std::to_string(failures_[command]) + " times: " + Head(command, 100);
  }
  if (without_progress_ >= max_without_progress_) {
    return "no progress in " + std::to_string(without_progress_) + " iterations";
  }
  return "";
}

void StuckDetector::Reset() {
  without_progress_ = 0;
  failures_.clear();
}

bool AsksForHelp(const std::string& reply, std::string* question) {
  const auto at = reply.find(kHelpMarker);
  if (at == std::string::npos) return false;
  if (question) {
    *question = Trim(reply.substr(at + kHelpMarker.size()));
    if (question->empty()) *question = Trim(reply.substr(0, at));
  }
  return true;
}

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
