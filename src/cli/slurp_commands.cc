#include "cli/slurp_commands.h"

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

void PrintEvent(const json& e) {
  std::printf("#%-6lld %-6s %-6s %-20s %s%s\n", e.value("seq", 0LL), Str(e, "state").c_str(), Str(e, "source").c_str(),
              Str(e, "project").c_str(), Str(e, "key").c_str(),
              e["error"].is_string() ? ("  (" + e["error"].get<std::string>() + ")").c_str() : "");
}

int Print(const std::optional<json>& body, int code, bool as_json, void (*human)(const json&)) {
  if (!body) return code;
  if (as_json || human == nullptr) {
    std::cout << body->dump(2) << "\n";
  } else {
    human(*body);
  }
  return kExitOk;
}

void PrintEvents(const json& body) {
  for (const auto& e : body["events"]) PrintEvent(e);
}

void PrintRecords(const json& body) {
  for (const auto& r : body["records"]) {
    const json& rec = r["record"];
    std::printf("#%-6lld term %-4lld %s\n        %s\n        decision: %s\n", r.value("event_seq", 0LL),
                r.value("term", 0LL), Str(r, "address").c_str(), Str(rec, "summary").c_str(),
                Str(rec, "decision").c_str());
  }
  if (body.value("withheld", 0) > 0) {
    std::printf("(%d record(s) withheld: sealed for roles this token does not hold)\n", body.value("withheld", 0));
  }
}

void PrintStatus(const json& s) {
  std::printf("admin        %s (term %lld)%s\n", Str(s, "admin").c_str(), s.value("term", 0LL),
              s.value("is_admin", false) ? " - this node" : "");
  std::printf("processing   %s\n", s.value("running_term", 0LL) > 0
                                       ? ("for term " + std::to_string(s.value("running_term", 0LL))).c_str()
                                       : "no");
  if (s["error"].is_string()) std::printf("error        %s\n", s["error"].get<std::string>().c_str());
  if (s.contains("queue")) {
    const json& q = s["queue"];
    std::printf("queue        %lld queued, %lld dead, %lld done (capacity %lld)\n", q.value("queued", 0LL),
                q.value("dead", 0LL), q.value("done", 0LL), q.value("capacity", 0LL));
  }
  if (s["last_processed"].is_object()) {
    std::printf("last         #%lld %s\n", s["last_processed"].value("seq", 0LL),
                Str(s["last_processed"], "address").c_str());
  }
}

}  // namespace

struct SlurpCommands::Args {
  ClientArgs client;
  bool as_json = false;
  std::string state, source, project, task, author, key, body;
  long long since = 0, after = 0, seq = 0;
  CLI::App* status = nullptr;
  CLI::App* events = nullptr;
  CLI::App* event = nullptr;
  CLI::App* post = nullptr;
  CLI::App* records = nullptr;
  CLI::App* dlq = nullptr;
  CLI::App* dlq_list = nullptr;
  CLI::App* dlq_replay = nullptr;
  CLI::App* dlq_purge = nullptr;
};

SlurpCommands::SlurpCommands(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  auto* slurp = app.add_subcommand("slurp", "SLURP: decision records curated by the admin");
  slurp->require_subcommand(1);
  a.status = slurp->add_subcommand("status", "the admin, its term, the queue, the last event processed");
  a.events = slurp->add_subcommand("events", "events, oldest first");
  a.events->add_option("--state", a.state, "queued, done or dead");
  a.events->add_option("--source", a.source, "api, task or hmmm");
  a.event = slurp->add_subcommand("event", "one event");
  a.event->add_option("seq", a.seq, "event number")->required();
  a.post = slurp->add_subcommand("post", "post an event: a JSON body {project, summary, decision, ...}");
  a.post->add_option("body", a.body, "the event, JSON")->required();
  a.post->add_option("--key", a.key, "Idempotency-Key: the same key posts the same event once");
  a.records = slurp->add_subcommand("records", "decision records this token may read, oldest first");
  a.records->add_option("--project", a.project, "of one project");
  a.records->add_option("--task", a.task, "of one task");
  a.records->add_option("--author", a.author, "with this author");
  a.records->add_option("--since", a.since, "created at or after (Unix ms)");
  a.dlq = slurp->add_subcommand("dlq", "SLURP's dead-letter queue");
  a.dlq->require_subcommand(1);
  a.dlq_list = a.dlq->add_subcommand("list", "dead events");
  a.dlq_replay = a.dlq->add_subcommand("replay", "queue a dead event again (slurp:admin)");
  a.dlq_replay->add_option("seq", a.seq, "event number")->required();
  a.dlq_purge = a.dlq->add_subcommand("purge", "delete one dead event, or every one without SEQ (slurp:admin)");
  a.dlq_purge->add_option("seq", a.seq, "event number");
  for (auto* c : {a.events, a.records, a.dlq_list}) c->add_option("--after", a.after, "after this event number");
  for (auto* c : {a.status, a.events, a.event, a.post, a.records, a.dlq_list, a.dlq_replay, a.dlq_purge}) {
    AddClientOptions(c, a.client);
    c->add_flag("--json", a.as_json, "print JSON");
  }
}

SlurpCommands::~SlurpCommands() = default;

std::optional<int> SlurpCommands::Run() {
  Args& a = *args_;
  ClientOptions o = ClientFrom(a.client);
  int code = kExitOk;
  const auto query = [&](std::initializer_list<std::pair<const char*, std::string>> params) {
    std::string q = "?limit=1000";
    for (const auto& [k, v] : params) {
      if (!v.empty() && v != "0") q += std::string("&") + k + "=" + PercentEncode(v);
    }
    return q;
  };
  if (*a.status) return Print(CallJson(o, "GET", "/api/v1/slurp/status", "", &code), code, a.as_json, PrintStatus);
  if (*a.events) {
    const std::string q = query({{"state", a.state}, {"source", a.source}, {"after", std::to_string(a.after)}});
    return Print(CallJson(o, "GET", "/api/v1/slurp/events" + q, "", &code), code, a.as_json, PrintEvents);
  }
  if (*a.event) {
    return Print(CallJson(o, "GET", "/api/v1/slurp/events/" + std::to_string(a.seq), "", &code), code, true, nullptr);
  }
  if (*a.post) {
    if (ParseJson(a.body).is_discarded()) {
      PrintError("the event must be JSON");
      return kExitUsage;
    }
    if (!a.key.empty()) o.headers.push_back("Idempotency-Key: " + a.key);
    auto body = CallJson(o, "POST", "/api/v1/slurp/events", a.body, &code);
    if (body && !a.as_json && body->contains("event")) {
      PrintEvent((*body)["event"]);
      return kExitOk;
    }
    return Print(body, code, true, nullptr);
  }
  if (*a.records) {
    const std::string q = query({{"project", a.project}, {"task", a.task}, {"author", a.author},
                                 {"since", std::to_string(a.since)}, {"after", std::to_string(a.after)}});
    return Print(CallJson(o, "GET", "/api/v1/slurp/records" + q, "", &code), code, a.as_json, PrintRecords);
  }
  if (*a.dlq_list) {
    const std::string q = query({{"after", std::to_string(a.after)}});
    return Print(CallJson(o, "GET", "/api/v1/slurp/dlq" + q, "", &code), code, a.as_json, PrintEvents);
  }
  if (*a.dlq_replay) {
    return Print(CallJson(o, "POST", "/api/v1/slurp/dlq/" + std::to_string(a.seq) + "/replay", "", &code), code,
                 a.as_json, [](const json& b) { PrintEvent(b["event"]); });
  }
  if (*a.dlq_purge) {
    const std::string path = a.seq > 0 ? "/api/v1/slurp/dlq/" + std::to_string(a.seq) : "/api/v1/slurp/dlq";
    return Print(CallJson(o, "DELETE", path, "", &code), code, a.as_json,
                 [](const json& b) { std::printf("purged %lld\n", b.value("purged", 0LL)); });
  }
  return std::nullopt;
}

}  // namespace bzzz::cli
