// SLURP's decision records as pure functions (docs/slurp.md): what an event
// posted through the API may say, the UCXL address a record is written to,
// and the record itself. No I/O: the processor (slurp/processor.h) resolves
// citations and writes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace bzzz::slurp {

// What a record cites. kind: "task" (a task id), "message" ("<room>/<message
// id>" of an HMMM room), "record" (the event seq of another record),
// "event" (a SLURP event seq).
struct Citation {
  std::string kind;
  std::string id;
  std::string author;               // filled when the citation resolves
  std::optional<std::uint64_t> term;  // the admin term that wrote it (records, events)
};

// The body of POST /api/v1/slurp/events, checked.
struct ApiEvent {
  std::string project;
  std::string task_id;  // "" when none
  std::string role;     // "" for slurp.default_role
  std::string summary;
  std::string decision;
  std::string rationale;
  std::vector<std::string> authors;
  std::vector<Citation> citations;  // author and term empty
  // Who posted it: the authenticated principal, set by the node (never
  // taken from the body); "" in events stored before it was recorded.
  std::string submitted_by;
};

// InvalidArgument naming the field at fault. Limits: project and task 1..64
// of [A-Za-z0-9_-]; role likewise; summary 1..1024 bytes; decision 1..16 KiB;
// rationale up to 16 KiB; at most 32 authors of 1..128 bytes; at most 64
// citations of a known kind with a non-empty id of at most 200 bytes;
// unknown fields refused.
Result<ApiEvent> ParseApiEvent(const std::string& body);
// The event's payload as stored (JSON, with submitted_by), and back.
std::string ApiEventJson(const ApiEvent& event);
Result<ApiEvent> ApiEventFromJson(const std::string& payload);

// ucxl://slurp:<role>@<project>:<task or "general">/*^/decisions/<seq>
std::string RecordAddress(const std::string& role, const std::string& project, const std::string& task_id,
                          std::int64_t seq);
// Whether `s` may be a project, task or role part of an address.
bool ValidName(const std::string& s);

struct Record {
  std::string summary;
  std::string decision;
  std::string rationale;
  std::vector<Citation> citations;  // every one resolved
  std::vector<std::string> authors;
  std::uint64_t term = 0;
  std::int64_t created_ms = 0;
  std::int64_t event_seq = 0;
  std::string event_key;
  std::string source;
  std::string project;
  std::string task_id;
  std::string submitted_by;  // API events: the principal that posted it
};
std::string RecordJson(const Record& record);

}  // namespace bzzz::slurp
