#include "cli/task_commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "base/json.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace bzzz::cli {

using nlohmann::json;

namespace {


void PrintTaskLine(const json& t) {
  std::printf("%-22s %-10s %-8s %3zu  %s\n", t.value("id", "").c_str(), t.value("state", "").c_str(),
              t.value("executor", "").c_str(), t.contains("attempts") ? t["attempts"].size() : 0,
              t.value("error", "").substr(0, 60).c_str());
}

void PrintTask(const json& t) {
  std::printf("task %s: %s (executor %s, priority %d, owner %s)\n", t.value("id", "").c_str(),
              t.value("state", "").c_str(), t.value("executor", "").c_str(), t.value("priority", 0),
              t.value("owner_node", "").substr(0, 12).c_str());
  for (const auto& a : t["attempts"]) {
    std::printf("  attempt %d: %-11s agent %s%s%s\n", a.value("number", 0), a.value("state", "").c_str(),
                a.value("agent_id", "").c_str(), a.value("error", "").empty() ? "" : "  ",
                a.value("error", "").c_str());
  }
  if (!t["result"].is_null()) std::printf("result: %s\n", t["result"].dump().c_str());
  if (!t.value("error", "").empty()) std::printf("error: %s\n", t.value("error", "").c_str());
}

}  // namespace

struct TaskCommands::Args {
  ClientArgs client;
  bool as_json = false;
  // submit
  std::string executor, input = "{}", input_file, key, project, name, role;
  int priority = 0, max_attempts = 0;
  long long task_timeout_ms = 0;
  std::vector<std::string> capabilities;
  bool wait = false;
  // get / cancel / watch / replay / purge
  std::string id;
  // list
  std::string state, filter_executor, filter_project;
  int limit = 50;
  long long before = 0;
  // scale
  int agents = -1;
  CLI::App *submit, *get, *list, *cancel, *watch, *stats, *dlq_list, *dlq_replay, *dlq_purge, *agents_list,
      *agents_scale;

  ClientOptions Options() const { return ClientFrom(client); }

  int Submit() {
    json body = {{"executor", executor}};
    std::string text = input;
    if (!input_file.empty()) {
      std::ifstream f(input_file);
      if (!f) {
        PrintError("cannot read " + input_file);
        return kExitUsage;
      }
      std::stringstream ss;
      ss << f.rdbuf();
      text = ss.str();
    }
    json in = ParseJson(text);
    if (in.is_discarded()) {
      PrintError("--input: not valid JSON");
      return kExitUsage;
    }
    body["input"] = in;
    if (!key.empty()) body["idempotency_key"] = key;
    if (priority) body["priority"] = priority;
    if (max_attempts) body["max_attempts"] = max_attempts;
    if (task_timeout_ms) body["timeout_ms"] = task_timeout_ms;
    if (!project.empty()) body["project"] = project;
    if (!name.empty()) body["name"] = name;
    if (!role.empty()) body["role"] = role;
    if (!capabilities.empty()) body["capabilities"] = capabilities;
    int code = kExitOk;
    auto t = CallJson(Options(), "POST", "/api/v1/tasks", body.dump(), &code);
    if (!t) return code;
    if (!wait) {
      if (as_json) {
        std::cout << t->dump(2) << "\n";
      } else {
        std::printf("%s %s\n", t->value("id", "").c_str(), t->value("state", "").c_str());
      }
      return kExitOk;
    }
    id = t->value("id", "");
    return Watch();
  }

  // Follows the task's events (long poll) until it finishes; exit 0 when
  // it succeeded, 1 when it ended otherwise.
  int Watch() {
    long long next = 0;
    for (;;) {
      int code = kExitOk;
      ClientOptions o = Options();
      o.timeout = std::max(o.timeout, std::chrono::milliseconds(15000));
      auto r = CallJson(o, "GET", "/api/v1/tasks/" + PercentEncode(id) + "/events?after=" + std::to_string(next) + "&wait_ms=10000",
                        "", &code);
      if (!r) return code;
      for (const auto& e : (*r)["events"]) {
        if (as_json) {
          std::cout << e.dump() << "\n";
        } else {
          std::printf("[%lld] %-16s %s%s\n", e.value("at_ms", 0LL), e.value("type", "").c_str(),
                      e.value("attempt", 0) ? ("attempt " + std::to_string(e.value("attempt", 0)) + " ").c_str() : "",
                      e.value("detail", "").c_str());
        }
        std::fflush(stdout);
      }
      next = r->value("next", next);
      if (r->value("finished", false)) {
        auto t = CallJson(Options(), "GET", "/api/v1/tasks/" + PercentEncode(id), "", &code);
        if (!t) return code;
        if (!as_json) PrintTask(*t);
        return t->value("state", "") == "succeeded" ? kExitOk : kExitFailure;
      }
    }
  }

  int Show(const char* method, const std::string& path, bool one) {
    int code = kExitOk;
    auto r = CallJson(Options(), method, path, method[0] == 'P' ? "{}" : "", &code);
    if (!r) return code;
    if (as_json) {
      std::cout << r->dump(2) << "\n";
    } else if (one) {
      PrintTask(*r);
    } else {
      std::printf("%-22s %-10s %-8s %3s  %s\n", "ID", "STATE", "EXECUTOR", "ATT", "ERROR");
      for (const auto& t : (*r)["tasks"]) PrintTaskLine(t);
      if (!(*r)["next_before"].is_null()) std::printf("(more: --before %s)\n", (*r)["next_before"].dump().c_str());
    }
    return kExitOk;
  }

  int List() {
    std::string q = "/api/v1/tasks?limit=" + std::to_string(limit);
    if (before > 0) q += "&before=" + std::to_string(before);
    if (!state.empty()) q += "&state=" + PercentEncode(state);
    if (!filter_executor.empty()) q += "&executor=" + PercentEncode(filter_executor);
    if (!filter_project.empty()) q += "&project=" + PercentEncode(filter_project);
    return Show("GET", q, false);
  }

  int Agents() {
    int code = kExitOk;
    auto r = CallJson(Options(), "GET", "/api/v1/agents", "", &code);
    if (!r) return code;
    if (as_json) {
      std::cout << r->dump(2) << "\n";
      return kExitOk;
    }
    const auto& s = (*r)["summary"];
    std::printf("%d agents: %d busy, %d idle, %d failed (healthy %.2f); last scaling: %s\n", s.value("size", 0),
                s.value("active", 0), s.value("idle", 0), s.value("failed", 0), s.value("healthy_ratio", 1.0),
                s.value("last_decision", "").c_str());
    for (const auto& a : (*r)["agents"]) {
      std::printf("  %-20s %-8s done %-8llu ok %-8llu score %.2f %s\n", a.value("id", "").c_str(),
                  a.value("state", "").c_str(), a["stats"].value("completed", 0ull),
                  a["stats"].value("succeeded", 0ull), a["stats"].value("performance_score", 0.0),
                  a["current_task"].is_null() ? "" : a["current_task"].get<std::string>().c_str());
    }
    return kExitOk;
  }
};

TaskCommands::TaskCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  auto* task = app.add_subcommand("task", "submit and follow tasks");
  task->require_subcommand(1);
  auto client = [&a](CLI::App* c) {
    AddClientOptions(c, a.client);
    c->add_flag("--json", a.as_json, "print JSON");
    return c;
  };
  a.submit = client(task->add_subcommand("submit", "submit a task (201 new, 200 known idempotency key)"));
  a.submit->add_option("--executor,-e", a.executor, "builtin, command, http or llm")->required();
  a.submit->add_option("--input,-i", a.input, "the executor's input as JSON")->capture_default_str();
  a.submit->add_option("--input-file", a.input_file, "read the input JSON from a file");
  a.submit->add_option("--idempotency-key,-k", a.key, "same key, same task");
  a.submit->add_option("--priority", a.priority, "higher runs first (-1000..1000)");
  a.submit->add_option("--max-attempts", a.max_attempts, "attempts before the dead-letter queue");
  a.submit->add_option("--task-timeout-ms", a.task_timeout_ms, "run time limit of one attempt");
  a.submit->add_option("--project", a.project, "project (with --name: the task's UCXL address)");
  a.submit->add_option("--name", a.name, "task name");
  a.submit->add_option("--role", a.role, "only agents of this role");
  a.submit->add_option("--capability", a.capabilities, "needed agent capability (repeatable)");
  a.submit->add_flag("--wait,-w", a.wait, "follow it until it finishes (like task watch)");
  a.get = client(task->add_subcommand("get", "one task with its attempts"));
  a.get->add_option("id", a.id, "task id")->required();
  a.list = client(task->add_subcommand("list", "tasks, newest first"));
  a.list->add_option("--state", a.state, "queued, running, succeeded, dead, ...");
  a.list->add_option("--executor", a.filter_executor, "executor kind");
  a.list->add_option("--project", a.filter_project, "project");
  a.list->add_option("--limit", a.limit, "at most this many")->check(CLI::Range(1, 1000))->capture_default_str();
  a.list->add_option("--before", a.before, "only tasks older than this seq (the next page)");
  a.cancel = client(task->add_subcommand("cancel", "cancel a task that has not finished"));
  a.cancel->add_option("id", a.id, "task id")->required();
  a.watch = client(task->add_subcommand("watch", "print a task's events live until it finishes"));
  a.watch->add_option("id", a.id, "task id")->required();
  a.stats = client(task->add_subcommand("stats", "task counts by state"));

  auto* dlq = app.add_subcommand("dlq", "the dead-letter queue");
  dlq->require_subcommand(1);
  a.dlq_list = client(dlq->add_subcommand("list", "dead tasks"));
  a.dlq_list->add_option("--limit", a.limit, "at most this many")->check(CLI::Range(1, 1000));
  a.dlq_list->add_option("--before", a.before, "only tasks older than this seq (the next page)");
  a.dlq_replay = client(dlq->add_subcommand("replay", "queue a dead task again with fresh attempts"));
  a.dlq_replay->add_option("id", a.id, "task id")->required();
  a.dlq_purge = client(dlq->add_subcommand("purge", "delete a dead task"));
  a.dlq_purge->add_option("id", a.id, "task id")->required();

  auto* agents = app.add_subcommand("agents", "the agent pool");
  agents->require_subcommand(1);
  a.agents_list = client(agents->add_subcommand("list", "agents and their states"));
  a.agents_scale = client(agents->add_subcommand("scale", "set the number of agents"));
  a.agents_scale->add_option("count", a.agents, "agents")->required()->check(CLI::Range(0, 100000));
}

TaskCommands::~TaskCommands() = default;

std::optional<int> TaskCommands::Run() {
  Args& a = *args_;
  if (*a.submit) return a.Submit();
  if (*a.get) return a.Show("GET", "/api/v1/tasks/" + PercentEncode(a.id), true);
  if (*a.list) return a.List();
  if (*a.cancel) return a.Show("POST", "/api/v1/tasks/" + PercentEncode(a.id) + "/cancel", true);
  if (*a.watch) return a.Watch();
  if (*a.stats) return Report(Call(a.Options(), "GET", "/api/v1/tasks/stats"));
  if (*a.dlq_list) {
    return a.Show("GET",
                  "/api/v1/dlq?limit=" + std::to_string(a.limit) +
                      (a.before > 0 ? "&before=" + std::to_string(a.before) : std::string()),
                  false);
  }
  if (*a.dlq_replay) return a.Show("POST", "/api/v1/dlq/" + PercentEncode(a.id) + "/replay", true);
  if (*a.dlq_purge) return Report(Call(a.Options(), "DELETE", "/api/v1/dlq/" + PercentEncode(a.id)));
  if (*a.agents_list) return a.Agents();
  if (*a.agents_scale) {
    return Report(Call(a.Options(), "POST", "/api/v1/agents/scale", json{{"agents", a.agents}}.dump()));
  }
  return std::nullopt;
}

}  // namespace bzzz::cli
