// The `command` executor: argv in the bubblewrap sandbox.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/log.h"
#include "executors/executors.h"

namespace bzzz::executors {

using nlohmann::json;

namespace {

constexpr SubsystemLog kLog{"executors"};

Status ValidateCommandInput(const json& j, bool need_argv) {
  if (!j.is_object()) return InvalidArgument("input: must be an object");
  if (need_argv) {
    auto argv = j.find("argv");
    if (argv == j.end() || !argv->is_array() || argv->empty() || argv->size() > 256) {
      return InvalidArgument("input.argv: required array of 1..256 strings");
    }
    for (const auto& a : *argv) {
      if (!a.is_string() || a.get<std::string>().size() > 65536) return InvalidArgument("input.argv: strings only, each at most 64 KiB");
    }
    if ((*argv)[0].get<std::string>().empty()) return InvalidArgument("input.argv[0]: empty program");
  }
  if (auto n = j.find("network"); n != j.end() && !n->is_boolean()) return InvalidArgument("input.network: must be a boolean");
  if (auto e = j.find("env"); e != j.end()) {
    if (!e->is_object()) return InvalidArgument("input.env: must be an object of strings");
    for (const auto& [k, v] : e->items()) {
      if (!v.is_string()) return InvalidArgument("input.env." + k + ": must be a string");
    }
  }
  if (auto s = j.find("stdin"); s != j.end() && (!s->is_string() || s->get<std::string>().size() > (1u << 20))) {
    return InvalidArgument("input.stdin: a string of at most 1 MiB");
  }
  if (auto m = j.find("memory_mb"); m != j.end() && (!m->is_number_integer() || m->get<long long>() < 16)) {
    return InvalidArgument("input.memory_mb: an integer >= 16");
  }
  if (auto m = j.find("max_output_bytes"); m != j.end() && (!m->is_number_integer() || m->get<long long>() < 1)) {
    return InvalidArgument("input.max_output_bytes: an integer >= 1");
  }
  return Status::Ok();
}

class CommandExecutor final : public Executor {
 public:
  CommandExecutor(std::shared_ptr<Sandbox> sandbox, std::shared_ptr<const SecretStore> secrets)
      : sandbox_(std::move(sandbox)), secrets_(std::move(secrets)) {}
  std::string_view Kind() const override { return "command"; }

  Status Validate(std::string_view input) const override {
    json j = ParseJson(input);
    if (Status s = ValidateCommandInput(j, true); !s.ok()) return s;
    if (j.value("network", false) && !sandbox_->config().allow_network) {
      return InvalidArgument("input.network: this node does not allow network access to tasks (agents.sandbox.allow_network)");
    }
    return Status::Ok();
  }

  ExecResult Execute(const ExecContext& ctx) override {
    json j = ParseJson(ctx.input);
    SandboxRequest r;
    r.argv = j["argv"].get<std::vector<std::string>>();
    r.network = j.value("network", false);
    if (j.contains("env")) r.env = j["env"].get<std::map<std::string, std::string>>();
    for (auto& [name, value] : r.env) {
      auto secret = secrets_->Resolve(value);
      if (!secret.ok()) return ExecResult::Failure("input.env." + name + ": " + secret.status().message());
      value = std::move(secret).value();
    }
    r.stdin_data = j.value("stdin", "");
    r.memory_mb = j.value("memory_mb", 0);
    r.max_output_bytes = j.value("max_output_bytes", std::size_t{0});
    r.deadline = ctx.deadline;
    r.cancel = ctx.cancel;
    auto dir = sandbox_->MakeWorkdir(ctx.task_id, ctx.attempt);
    if (!dir.ok()) return ExecResult::Failure(dir.status().message());
    r.workdir = *dir;
    auto res = sandbox_->Run(r);
    Sandbox::RemoveWorkdir(*dir);
    if (!res.ok()) return ExecResult::Failure(res.status().message());
    json out = {{"exit_code", res->exit_code},       {"signal", res->signal},
                {"stdout", res->out},                {"stderr", res->err},
                {"stdout_truncated", res->stdout_truncated}, {"stderr_truncated", res->stderr_truncated},
                {"duration_ms", res->duration_ms}};
    if (res->cancelled) return {ExecResult::Outcome::kCancelled, DumpJson(out), "cancelled"};
    if (res->timed_out) return {ExecResult::Outcome::kTimedOut, DumpJson(out), "killed at the task's timeout"};
    if (res->exit_code == 0) return ExecResult::Success(DumpJson(out));
    std::string why = res->signal ? "killed by signal " + std::to_string(res->signal)
                                  : "exit code " + std::to_string(res->exit_code);
    const std::string tail = res->err.size() > 400 ? res->err.substr(res->err.size() - 400) : res->err;
    if (!tail.empty()) why += ": " + tail;
    return ExecResult::Failure(why, DumpJson(out));
  }

 private:
  std::shared_ptr<Sandbox> sandbox_;
  std::shared_ptr<const SecretStore> secrets_;
};

}  // namespace

std::unique_ptr<Executor> MakeCommandExecutor(std::shared_ptr<Sandbox> sandbox,
                                              std::shared_ptr<const SecretStore> secrets) {
  if (!secrets) secrets = std::make_shared<SecretStore>();
  return std::make_unique<CommandExecutor>(std::move(sandbox), std::move(secrets));
}

std::unique_ptr<ExecutorRegistry> MakeRegistry(const config::Config& config) {
  auto registry = std::make_unique<ExecutorRegistry>();
  auto sandbox = std::make_shared<Sandbox>(config.agents.sandbox, config.node.data_dir);
  registry->Add(MakeBuiltinExecutor());
  auto secrets = std::make_shared<const SecretStore>(config.agents.secrets_file);
  registry->Add(MakeCommandExecutor(sandbox, secrets));
  if (auto http = MakeHttpExecutor(config.agents.http, secrets); http.ok()) {
    registry->Add(std::move(http).value());
  } else {
    kLog.error("executors: no http executor: {}", http.status().ToString());
  }
  if (!config.agents.llm.endpoint.empty()) registry->Add(MakeLlmExecutor(config.agents.llm, sandbox));
  return registry;
}

}  // namespace bzzz::executors
