#include "cli/hmmm_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "base/json.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace bzzz::cli {

using nlohmann::json;

namespace {

std::string Str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string("-");
}

void PrintMessage(const json& m) {
  std::printf("#%-4lld %-16s %s@%s%s%s\n", m.value("seq", 0LL), Str(m, "type").c_str(), Str(m, "agent").c_str(),
              Str(m, "node").substr(0, 12).c_str(),
              m["in_reply_to"].is_string() ? (" re " + m["in_reply_to"].get<std::string>()).c_str() : "",
              m.value("hop_count", 0) > 0 ? (" hops " + std::to_string(m.value("hop_count", 0))).c_str() : "");
  const std::string body = Str(m, "body");
  if (!body.empty() && body != "-") std::printf("      %s\n", body.c_str());
}

void PrintRoom(const json& r) {
  std::printf("room      %s (%s)%s\n", Str(r, "id").c_str(), Str(r, "state").c_str(),
              r["task_id"].is_string() ? (" task " + r["task_id"].get<std::string>()).c_str() : "");
  std::printf("title     %s\nproject   %s\nowner     %s%s\n", Str(r, "title").c_str(), Str(r, "project").c_str(),
              Str(r, "owner").c_str(), r.value("owned", false) ? " (this node)" : "");
  std::printf("topic     %s\n", Str(r, "topic").c_str());
  if (r["proposal"].is_object()) {
    const json& p = r["proposal"];
    std::printf("proposal  %s by %s, window closes at %lld, agreed %zu, objected %zu\n", Str(p, "id").c_str(),
                Str(p, "proposer").c_str(), p.value("closes_ms", 0LL), p["agreed"].size(), p["objected"].size());
  }
  if (r["decision"].is_string()) std::printf("decision  %s\n", r["decision"].get<std::string>().c_str());
  if (r["escalation"].is_string()) std::printf("escalated %s\n", r["escalation"].get<std::string>().c_str());
  std::printf("participants (%zu):", r["participants"].size());
  for (const auto& p : r["participants"]) std::printf(" %s@%s", Str(p, "agent").c_str(), Str(p, "node").substr(0, 12).c_str());
  std::printf("\n");
  for (const auto& m : r["messages"]) PrintMessage(m);
}

int Rooms(const ClientOptions& o, const std::string& state, const std::string& task, const std::string& project,
          bool as_json) {
  std::string query = "?limit=1000";
  for (auto [k, v] : {std::pair{"state", &state}, {"task", &task}, {"project", &project}}) {
    if (!v->empty()) query += std::string("&") + k + "=" + PercentEncode(*v);
  }
  int code = kExitOk;
  auto body = CallJson(o, "GET", "/api/v1/hmmm/rooms" + query, "", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& r : (*body)["rooms"]) {
    std::printf("%-28s %-9s %5lld msg  %-20s %s\n", Str(r, "id").c_str(), Str(r, "state").c_str(),
                r.value("messages", 0LL), Str(r, "project").c_str(), Str(r, "title").c_str());
  }
  return kExitOk;
}

int Show(const ClientOptions& o, const std::string& room, bool as_json) {
  int code = kExitOk;
  auto body = CallJson(o, "GET", "/api/v1/hmmm/rooms/" + PercentEncode(room), "", &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
  } else {
    PrintRoom(*body);
  }
  return kExitOk;
}

int Send(const ClientOptions& o, const std::string& method_path, const json& request, bool as_json) {
  int code = kExitOk;
  auto body = CallJson(o, "POST", method_path, request.dump(), &code);
  if (!body) return code;
  if (as_json) {
    std::cout << body->dump(2) << "\n";
  } else if (body->contains("forwarded_to")) {
    std::printf("forwarded %s to the room's owner %s\n", Str(*body, "id").c_str(), Str(*body, "forwarded_to").c_str());
  } else if (body->contains("seq") && !body->contains("participants")) {
    PrintMessage(*body);
  } else {
    PrintRoom(*body);
  }
  return kExitOk;
}

// Long-polls the room's messages and prints them as they come, until the
// room is closed (decided, resolved or archived) and has nothing more to
// show, or the node cannot be reached.
int Watch(const ClientOptions& options, const std::string& room, long long after, bool as_json) {
  ClientOptions o = options;
  o.timeout = std::chrono::milliseconds(40000);
  for (;;) {
    int code = kExitOk;
    auto body = CallJson(o, "GET",
                         "/api/v1/hmmm/rooms/" + PercentEncode(room) + "/messages?wait_ms=25000&after=" + std::to_string(after),
                         "", &code);
    if (!body) return code;
    for (const auto& m : (*body)["messages"]) {
      if (as_json) {
        std::cout << m.dump() << "\n";
      } else {
        PrintMessage(m);
      }
      after = std::max(after, m.value("seq", after));
    }
    std::cout.flush();
    const std::string state = Str(*body, "state");
    if (state != "open" && state != "escalated" && (*body)["messages"].empty()) {
      std::fprintf(stderr, "room %s is %s\n", room.c_str(), state.c_str());
      return kExitOk;
    }
  }
}

}  // namespace

struct HmmmCommands::Args {
  ClientArgs client;
  std::string room, state, task, project, title, type = "help_request", agent = "cli", body, reply, id, kind, input;
  long long after = 0;
  bool as_json = false;
  CLI::App *rooms = nullptr, *show = nullptr, *open = nullptr, *post = nullptr, *join = nullptr, *leave = nullptr,
           *resolve = nullptr, *watch = nullptr;
};

HmmmCommands::HmmmCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  auto* hmmm = app.add_subcommand("hmmm", "HMMM rooms: agents' discussions, decisions and escalations");
  hmmm->require_subcommand(1);
  a.rooms = hmmm->add_subcommand("rooms", "list rooms (newest first)");
  a.rooms->add_option("--state", a.state, "open, decided, escalated, resolved or archived");
  a.rooms->add_option("--task", a.task, "the rooms of one task");
  a.rooms->add_option("--project", a.project, "the rooms of one project");
  a.show = hmmm->add_subcommand("show", "one room: state, participants, proposal, decision, messages");
  a.open = hmmm->add_subcommand("open", "open a room with a seed message");
  a.open->add_option("--title", a.title, "what the room is about")->required();
  a.open->add_option("--project", a.project, "project");
  a.open->add_option("--task", a.task, "the task whose room it is (the room's id is the task id)");
  a.post = hmmm->add_subcommand("post", "post a message");
  a.join = hmmm->add_subcommand("join", "join a room as --agent");
  a.leave = hmmm->add_subcommand("leave", "leave a room as --agent");
  a.resolve = hmmm->add_subcommand("resolve", "resolve an escalated room (hmmm:admin)");
  a.resolve->add_option("--kind", a.kind, "answer, decision or retry")->required();
  a.resolve->add_option("--input", a.input, "retry: the new input, JSON");
  a.watch = hmmm->add_subcommand("watch", "print a room's messages as they come");
  a.watch->add_option("--after", a.after, "start after this message number");
  for (auto* c : {a.show, a.post, a.join, a.leave, a.resolve, a.watch}) {
    c->add_option("room", a.room, "room id")->required();
  }
  for (auto* c : {a.open, a.post}) {
    c->add_option("--type", a.type,
                  "plan_proposed, objection, help_request, help_response, agreement, dependency_alert, escalation");
    c->add_option("--reply-to", a.reply, "the message answered (agreement and objection: the proposal)");
    c->add_option("--id", a.id, "a message id of your own (a resend with it is a duplicate)");
  }
  for (auto* c : {a.open, a.post, a.resolve}) c->add_option("body", a.body, "the message (resolve: the text)");
  for (auto* c : {a.open, a.post, a.join, a.leave}) c->add_option("--agent", a.agent, "the agent speaking");
  for (auto* c : {a.rooms, a.show, a.open, a.post, a.join, a.leave, a.resolve, a.watch}) {
    AddClientOptions(c, a.client);
    c->add_flag("--json", a.as_json, "print JSON");
  }
}

HmmmCommands::~HmmmCommands() = default;

std::optional<int> HmmmCommands::Run() {
  Args& a = *args_;
  const ClientOptions o = ClientFrom(a.client);
  auto post_json = [&] {
    json p = {{"type", a.type}, {"agent", a.agent}, {"body", a.body}};
    if (!a.reply.empty()) p["in_reply_to"] = a.reply;
    if (!a.id.empty()) p["id"] = a.id;
    return p;
  };
  const std::string room_path = "/api/v1/hmmm/rooms/" + PercentEncode(a.room);
  if (*a.rooms) return Rooms(o, a.state, a.task, a.project, a.as_json);
  if (*a.show) return Show(o, a.room, a.as_json);
  if (*a.open) {
    json req = {{"title", a.title}, {"project", a.project}, {"seed", post_json()}};
    if (!a.task.empty()) req["task_id"] = a.task;
    return Send(o, "/api/v1/hmmm/rooms", req, a.as_json);
  }
  if (*a.post) return Send(o, room_path + "/messages", post_json(), a.as_json);
  if (*a.join) return Send(o, room_path + "/join", json{{"agent", a.agent}}, a.as_json);
  if (*a.leave) return Send(o, room_path + "/leave", json{{"agent", a.agent}}, a.as_json);
  if (*a.resolve) {
    json req = {{"kind", a.kind}, {"text", a.body}};
    if (!a.input.empty()) {
      const json input = ParseJson(a.input);
      if (input.is_discarded()) {
        PrintError("--input must be JSON");
        return kExitUsage;
      }
      req["input"] = input;
    }
    return Send(o, room_path + "/resolve", req, a.as_json);
  }
  if (*a.watch) return Watch(o, a.room, a.after, a.as_json);
  return std::nullopt;
}

}  // namespace bzzz::cli
