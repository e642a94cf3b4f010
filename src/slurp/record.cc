#include "slurp/record.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace bzzz::slurp {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxSummary = 1024;
constexpr std::size_t kMaxText = 16u << 10;
constexpr std::size_t kMaxAuthors = 32;
constexpr std::size_t kMaxCitations = 64;

bool KnownKind(const std::string& k) { return k == "task" || k == "message" || k == "record" || k == "event"; }

Result<std::string> Text(const json& j, const char* field, std::size_t min, std::size_t max) {
  auto it = j.find(field);
  if (it == j.end()) {
    if (min == 0) return std::string();
    return InvalidArgument(std::string("body.") + field + ": required");
  }
  if (!it->is_string()) return InvalidArgument(std::string("body.") + field + ": must be a string");
  std::string s = it->get<std::string>();
  if (s.size() < min || s.size() > max) {
    return InvalidArgument(std::string("body.") + field + ": " + std::to_string(min) + " to " + std::to_string(max) +
                           " bytes");
  }
  return s;
}

}  // namespace

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {
Result<ApiEvent> Parse(const std::string& body, bool stored);
}  // namespace

Result<ApiEvent> ParseApiEvent(const std::string& body) { return Parse(body, false); }

namespace {
Result<ApiEvent> Parse(const std::string& body, bool stored) {
  const json j = ParseJson(body);
  if (!j.is_object()) return InvalidArgument("body: must be a JSON object");
  static const char* kKnown[] = {"project", "task_id", "role", "summary", "decision", "rationale", "authors", "citations"};
  for (const auto& [k, v] : j.items()) {
    if (stored && k == "submitted_by") continue;  // set by the node, never by a caller
    if (std::find(std::begin(kKnown), std::end(kKnown), k) == std::end(kKnown)) {
      return InvalidArgument("body." + k + ": unknown field");
    }
  }
  ApiEvent e;
  if (stored && j.contains("submitted_by") && j["submitted_by"].is_string()) e.submitted_by = j["submitted_by"];
  auto project = Text(j, "project", 1, 64);
  if (!project.ok()) return project.status();
  if (!ValidName(*project)) return InvalidArgument("body.project: only letters, digits, _ and -");
  e.project = *project;
  auto task = Text(j, "task_id", 0, 64);
  if (!task.ok()) return task.status();
  if (!task->empty() && !ValidName(*task)) return InvalidArgument("body.task_id: only letters, digits, _ and -");
  e.task_id = *task;
  auto role = Text(j, "role", 0, 64);
  if (!role.ok()) return role.status();
  if (!role->empty() && !ValidName(*role)) return InvalidArgument("body.role: only letters, digits, _ and -");
  e.role = *role;
  auto summary = Text(j, "summary", 1, kMaxSummary);
  if (!summary.ok()) return summary.status();
  e.summary = *summary;
  auto decision = Text(j, "decision", 1, kMaxText);
  if (!decision.ok()) return decision.status();
  e.decision = *decision;
  auto rationale = Text(j, "rationale", 0, kMaxText);
  if (!rationale.ok()) return rationale.status();
  e.rationale = *rationale;
  if (auto a = j.find("authors"); a != j.end()) {
    if (!a->is_array() || a->size() > kMaxAuthors) return InvalidArgument("body.authors: an array of at most 32 names");
    for (const auto& name : *a) {
      if (!name.is_string() || name.get<std::string>().empty() || name.get<std::string>().size() > 128) {
        return InvalidArgument("body.authors: names of 1 to 128 bytes");
      }
      e.authors.push_back(name.get<std::string>());
    }
  }
  if (auto c = j.find("citations"); c != j.end()) {
    if (!c->is_array() || c->size() > kMaxCitations) return InvalidArgument("body.citations: an array of at most 64");
    for (const auto& cite : *c) {
      if (!cite.is_object()) return InvalidArgument("body.citations: objects {kind, id}");
      for (const auto& [k, v] : cite.items()) {
        if (k != "kind" && k != "id") return InvalidArgument("body.citations." + k + ": unknown field");
      }
      const std::string kind = cite.value("kind", json()).is_string() ? cite["kind"].get<std::string>() : "";
      const std::string id = cite.value("id", json()).is_string() ? cite["id"].get<std::string>() : "";
      if (!KnownKind(kind)) return InvalidArgument("body.citations.kind: task, message, record or event");
      if (id.empty() || id.size() > 200) return InvalidArgument("body.citations.id: 1 to 200 bytes");
      e.citations.push_back({kind, id, "", std::nullopt});
    }
  }
  return e;
}
}  // namespace

std::string ApiEventJson(const ApiEvent& e) {
  json cites = json::array();
  for (const auto& c : e.citations) cites.push_back({{"kind", c.kind}, {"id", c.id}});
  json j = {{"project", e.project}, {"summary", e.summary}, {"decision", e.decision}, {"authors", e.authors},
            {"citations", cites}};
  if (!e.task_id.empty()) j["task_id"] = e.task_id;
  if (!e.role.empty()) j["role"] = e.role;
  if (!e.rationale.empty()) j["rationale"] = e.rationale;
  if (!e.submitted_by.empty()) j["submitted_by"] = e.submitted_by;
  return DumpJson(j);
}

Result<ApiEvent> ApiEventFromJson(const std::string& payload) { return Parse(payload, true); }

std::string RecordAddress(const std::string& role, const std::string& project, const std::string& task_id,
                          std::int64_t seq) {
  return "ucxl://slurp:" + role + "@" + project + ":" + (task_id.empty() ? "general" : task_id) +
         "/*^/decisions/" + std::to_string(seq);
}

std::string RecordJson(const Record& r) {
  json cites = json::array();
  for (const auto& c : r.citations) {
    json one = {{"kind", c.kind}, {"id", c.id}, {"author", c.author}};
    one["term"] = c.term ? json(*c.term) : json(nullptr);
    cites.push_back(std::move(one));
  }
  json j = {{"summary", r.summary},
            {"decision", r.decision},
            {"rationale", r.rationale},
            {"citations", cites},
            {"authors", r.authors},
            {"term", r.term},
            {"created_at", r.created_ms},
            {"project", r.project},
            {"task_id", r.task_id.empty() ? json(nullptr) : json(r.task_id)},
            {"submitted_by", r.submitted_by.empty() ? json(nullptr) : json(r.submitted_by)},
            {"event", {{"seq", r.event_seq}, {"key", r.event_key}, {"source", r.source}}}};
  return DumpJson(j);
}

}  // namespace bzzz::slurp
