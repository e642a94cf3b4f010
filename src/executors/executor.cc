#include "executors/executor.h"
#include "base/json.h"

#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace bzzz::executors {

using nlohmann::json;

void ExecutorRegistry::Add(std::unique_ptr<Executor> executor) {
  std::string kind(executor->Kind());
  executors_[kind] = std::move(executor);
}

Executor* ExecutorRegistry::Find(std::string_view kind) const {
  auto it = executors_.find(kind);
  return it == executors_.end() ? nullptr : it->second.get();
}

Status ExecutorRegistry::Validate(std::string_view kind, std::string_view input) const {
  const Executor* e = Find(kind);
  if (!e) {
    std::string known;
    for (const auto& [k, _] : executors_) known += (known.empty() ? "" : ", ") + k;
    return InvalidArgument("executor: unknown kind \"" + std::string(kind) + "\" (this node runs: " + known + ")");
  }
  return e->Validate(input);
}

std::vector<std::string> ExecutorRegistry::Kinds() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : executors_) out.push_back(k);
  return out;
}

bool SleepCancellable(std::chrono::steady_clock::time_point until, const std::atomic<bool>* cancel) {
  using namespace std::chrono;
  while (steady_clock::now() < until) {
    if (cancel && cancel->load()) return true;
    std::this_thread::sleep_for(std::min<steady_clock::duration>(milliseconds(10), until - steady_clock::now()));
  }
  return cancel && cancel->load();
}

namespace {

class BuiltinExecutor final : public Executor {
 public:
  std::string_view Kind() const override { return "builtin"; }

  Status Validate(std::string_view input) const override {
    json j = ParseJson(input);
    if (!j.is_object()) return InvalidArgument("input: builtin needs an object {\"op\": ...}");
    auto op = j.find("op");
    if (op == j.end() || !op->is_string()) return InvalidArgument("input.op: required string (echo, sleep, fail)");
    const auto name = op->get<std::string>();
    if (name == "echo") {
      if (auto p = j.find("progress"); p != j.end()) {
        if (!p->is_array() || p->size() > 100) return InvalidArgument("input.progress: an array of at most 100 strings");
        for (const auto& line : *p) {
          if (!line.is_string()) return InvalidArgument("input.progress: an array of at most 100 strings");
        }
      }
      return Status::Ok();
    }
    if (name == "sleep") {
      auto ms = j.find("ms");
      if (ms == j.end() || !ms->is_number_integer() || ms->get<std::int64_t>() < 0 ||
          ms->get<std::int64_t>() > 24LL * 3600 * 1000) {
        return InvalidArgument("input.ms: required integer 0..86400000");
      }
      return Status::Ok();
    }
    if (name == "fail") {
      if (auto m = j.find("message"); m != j.end() && !m->is_string()) {
        return InvalidArgument("input.message: must be a string");
      }
      return Status::Ok();
    }
    return InvalidArgument("input.op: unknown builtin op \"" + name + "\" (echo, sleep, fail)");
  }

  ExecResult Execute(const ExecContext& ctx) override {
    json j = ParseJson(ctx.input);
    const std::string op = j.value("op", "");
    if (op == "echo") {
      if (auto p = j.find("progress"); p != j.end() && p->is_array() && ctx.progress) {
        for (const auto& line : *p) {
          if (line.is_string()) ctx.progress(line.get<std::string>());
        }
      }
      json out = {{"value", j.contains("value") ? j["value"] : json(nullptr)}};
      return ExecResult::Success(out.dump());
    }
    if (op == "sleep") {
      const auto ms = std::chrono::milliseconds(j.value("ms", 0LL));
      const auto until = std::chrono::steady_clock::now() + ms;
      if (until > ctx.deadline) {
        if (SleepCancellable(ctx.deadline, ctx.cancel)) return {ExecResult::Outcome::kCancelled, {}, "cancelled"};
        return {ExecResult::Outcome::kTimedOut, {}, "sleep outlasted the task's timeout"};
      }
      if (SleepCancellable(until, ctx.cancel)) return {ExecResult::Outcome::kCancelled, {}, "cancelled"};
      return ExecResult::Success(json{{"slept_ms", ms.count()}}.dump());
    }
    return ExecResult::Failure(j.value("message", std::string("builtin fail")));
  }
};

}  // namespace

std::unique_ptr<Executor> MakeBuiltinExecutor() { return std::make_unique<BuiltinExecutor>(); }

}  // namespace bzzz::executors
