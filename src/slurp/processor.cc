#include "slurp/processor.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "base/backoff.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "hmmm/repository.h"
#include "slurp/probe.h"
#include "ucxl/address.h"
#include "ucxl/context_store.h"

namespace bzzz::slurp {

using nlohmann::json;

namespace {

constexpr SubsystemLog kLog{"slurp"};
constexpr std::size_t kRoomMessages = 1u << 20;  // a room's messages, all of them
constexpr std::int64_t kRepairWindowMs = 3600000;  // records checked at the start of a term

void AddAuthor(std::vector<std::string>& authors, const std::string& who) {
  if (!who.empty() && std::find(authors.begin(), authors.end(), who) == authors.end()) authors.push_back(who);
}

std::int64_t ParseSeq(const std::string& s) {
  if (s.empty() || s.size() > 18) return 0;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

Result<std::vector<hmmm::MessageRow>> RoomMessages(const Sources& sources, const std::string& room) {
  if (!sources.rooms) return InvalidArgument("HMMM rooms are not available on this node");
  return sources.rooms->ListMessages(room, 0, kRoomMessages);
}

// Resolves `c` in place. InvalidArgument when it names nothing.
Status Resolve(Citation& c, const Sources& sources, SlurpRepository& store) {
  if (c.kind == "task") {
    if (!sources.task) return InvalidArgument("citation task " + c.id + ": tasks are not available on this node");
    auto t = sources.task(c.id);
    if (!t.ok()) {
      if (t.status().IsNotFound()) return InvalidArgument("citation task " + c.id + ": no such task");
      return t.status();
    }
    c.author = t->submitter;
    return Status::Ok();
  }
  if (c.kind == "message") {
    const auto slash = c.id.find('/');
    if (slash == std::string::npos) return InvalidArgument("citation message " + c.id + ": not <room>/<message id>");
    auto msgs = RoomMessages(sources, c.id.substr(0, slash));
    if (!msgs.ok()) return msgs.status();
    for (const auto& m : *msgs) {
      if (m.id == c.id.substr(slash + 1)) {
        c.author = m.agent + "@" + m.node;
        return Status::Ok();
      }
    }
    return InvalidArgument("citation message " + c.id + ": no such message");
  }
  const std::int64_t seq = ParseSeq(c.id);
  if (seq <= 0) return InvalidArgument("citation " + c.kind + " " + c.id + ": not an event number");
  if (c.kind == "record") {
    auto r = store.GetRecord(seq);
    if (!r.ok()) {
      if (r.status().IsNotFound()) return InvalidArgument("citation record " + c.id + ": no such record");
      return r.status();
    }
    c.author = "slurp";
    c.term = r->term;
    return Status::Ok();
  }
  if (c.kind == "event") {
    auto e = store.GetEvent(seq);
    if (!e.ok()) {
      if (e.status().IsNotFound()) return InvalidArgument("citation event " + c.id + ": no such event");
      return e.status();
    }
    c.author = e->accepted_by;
    if (e->term > 0) c.term = e->term;
    return Status::Ok();
  }
  return InvalidArgument("citation kind " + c.kind + " is unknown");
}

Status CurateApi(const EventRow& e, const Sources& sources, SlurpRepository& store, Curated& out) {
  auto api = ApiEventFromJson(e.payload);
  if (!api.ok()) return InvalidArgument("stored payload: " + api.status().message());
  Record& r = out.record;
  r.summary = api->summary;
  r.decision = api->decision;
  r.rationale = api->rationale;
  r.authors = api->authors;
  r.submitted_by = api->submitted_by;
  for (Citation c : api->citations) {
    if (Status s = Resolve(c, sources, store); !s.ok()) return s;
    r.citations.push_back(std::move(c));
  }
  if (!api->role.empty()) out.role = api->role;
  return Status::Ok();
}

Status CurateTask(const EventRow& e, const Sources& sources, SlurpRepository& store, Curated& out) {
  Citation c{"task", e.task_id, "", std::nullopt};
  if (Status s = Resolve(c, sources, store); !s.ok()) return s;
  auto t = sources.task(e.task_id);
  if (!t.ok()) return t.status();
  const json payload = ParseJson(e.payload);
  const std::string state = payload.is_object() ? payload.value("state", t->state) : t->state;
  const int attempts = payload.is_object() ? payload.value("attempts", t->attempts) : t->attempts;
  Record& r = out.record;
  r.summary = "Task " + t->id + (t->name.empty() ? "" : " \"" + t->name + "\"") + " (" + t->executor + ") " + state +
              " after " + std::to_string(attempts) + " attempt" + (attempts == 1 ? "" : "s");
  r.decision = state;
  r.rationale = t->outcome;
  for (const auto& a : t->agents) AddAuthor(r.authors, a);
  r.citations.push_back(std::move(c));
  return Status::Ok();
}

Status CurateRoom(const EventRow& e, const Sources& sources, Curated& out) {
  const json payload = ParseJson(e.payload);
  if (!payload.is_object() || !payload.contains("room") || !payload.contains("decision")) {
    return InvalidArgument("stored payload: not {room, decision}");
  }
  const std::string room = payload.value("room", ""), decision_id = payload.value("decision", "");
  auto msgs = RoomMessages(sources, room);
  if (!msgs.ok()) return msgs.status();
  const auto find = [&](const std::string& id) -> const hmmm::MessageRow* {
    for (const auto& m : *msgs) {
      if (m.id == id) return &m;
    }
    return nullptr;
  };
  const hmmm::MessageRow* decision = find(decision_id);
  if (decision == nullptr) return InvalidArgument("room " + room + " has no message " + decision_id);
  Record& r = out.record;
  auto cite = [&](const hmmm::MessageRow& m) {
    r.citations.push_back({"message", room + "/" + m.id, m.agent + "@" + m.node, std::nullopt});
  };
  auto title = sources.rooms->GetRoom(room);
  r.summary = title.ok() && !title->title.empty() ? title->title : "room " + room;
  const json body = ParseJson(decision->body);
  if (decision->agent == "hmmm") {
    // A plan accepted by the room's rule: the plan, who agreed, the rule.
    const hmmm::MessageRow* plan = find(decision->in_reply_to);
    if (plan == nullptr) return InvalidArgument("room " + room + " has no proposal " + decision->in_reply_to);
    r.decision = plan->body;
    r.rationale = "accepted by quorum: " + decision->body;
    AddAuthor(r.authors, plan->agent + "@" + plan->node);
    cite(*plan);
    for (const auto& m : *msgs) {
      if (m.type == "agreement" && m.in_reply_to == plan->id) {
        AddAuthor(r.authors, m.agent + "@" + m.node);
        cite(m);
      }
    }
  } else {
    // An operator's resolution.
    r.decision = body.is_object() ? body.value("text", decision->body) : decision->body;
    r.rationale = "resolved by an operator (" + (body.is_object() ? body.value("resolution", "") : "") + ")";
    AddAuthor(r.authors, decision->agent);
    for (const auto& m : *msgs) {
      if (m.type == "escalation") cite(m);
    }
  }
  cite(*decision);
  if (r.decision.empty()) r.decision = "(empty)";
  return Status::Ok();
}

}  // namespace

Result<Curated> Curate(const EventRow& e, const Sources& sources, SlurpRepository& store, const std::string& default_role,
                       std::uint64_t term, std::int64_t now_ms) {
  Curated out;
  out.role = default_role;
  Status s;
  if (e.source == "api") {
    s = CurateApi(e, sources, store, out);
  } else if (e.source == "task") {
    s = CurateTask(e, sources, store, out);
  } else if (e.source == "hmmm") {
    s = CurateRoom(e, sources, out);
  } else {
    s = InvalidArgument("unknown event source " + e.source);
  }
  if (!s.ok()) return s;
  Record& r = out.record;
  r.term = term;
  r.created_ms = now_ms;
  r.event_seq = e.seq;
  r.event_key = e.key;
  r.source = e.source;
  r.project = e.project;
  r.task_id = e.task_id;
  if (!ValidName(out.role)) return InvalidArgument("role " + out.role + " cannot be part of an address");
  if (!ValidName(e.project)) return InvalidArgument("project " + e.project + " cannot be part of an address");
  if (!e.task_id.empty() && !ValidName(e.task_id)) return InvalidArgument("task " + e.task_id + " cannot be part of an address");
  out.address = RecordAddress(out.role, e.project, e.task_id, e.seq);
  return out;
}

Processor::Processor(ProcessorOptions options, std::uint64_t term) : o_(std::move(options)), term_(term) {}

std::int64_t Processor::Now() const { return o_.now ? o_.now() : UnixMillisNow(); }

Status Processor::Begin() {
  auto admitted = o_.store->AdmitTerm(term_);
  if (!admitted.ok()) {
    if (admitted.status().code() == StatusCode::kFailedPrecondition) fenced_ = true;
    return admitted.status();
  }
  // Records an earlier term committed and did not write (it died between
  // the two): written now.
  if (Status s = Repair(Now() - kRepairWindowMs); !s.ok()) kLog.warn("slurp: repair pass: {}", s.message());
  return Status::Ok();
}

Result<std::size_t> Processor::RunOnce(std::size_t limit) {
  if (fenced_) return FailedPrecondition("term " + std::to_string(term_) + " is fenced");
  if (!unwritten_.empty()) {
    std::vector<std::int64_t> retry;
    retry.swap(unwritten_);
    for (std::int64_t seq : retry) {
      auto row = o_.store->GetRecord(seq);
      if (!row.ok() || !Rewrite(*row).ok()) unwritten_.push_back(seq);
    }
  }
  auto due = o_.store->DueEvents(Now(), limit);
  if (!due.ok()) return due.status();
  std::size_t n = 0;
  for (const auto& e : *due) {
    if (Status s = Process(e); !s.ok()) return s;
    ++n;
  }
  return n;
}

Status Processor::Failed(const EventRow& e, const Status& why) {
  const int attempts = e.attempts + 1;
  const bool dead = why.code() == StatusCode::kInvalidArgument || attempts > o_.max_retries;
  const std::int64_t delay = BackoffMs(attempts, o_.retry_base.count(), o_.retry_max.count(), UniformJitter());
  Status s = o_.store->Fail(e.seq, term_, why.message(), Now() + delay, dead);
  if (s.code() == StatusCode::kFailedPrecondition) {
    fenced_ = true;
    return s;
  }
  if (!s.ok() && s.code() != StatusCode::kConflict) return s;
  if (o_.probe) o_.probe->Event(e.source, dead ? "dead" : "retried");
  if (dead) {
    kLog.warn("slurp: event {} ({}) is dead after {} attempt(s): {}", e.seq, e.key, attempts, why.message());
  } else {
    kLog.info("slurp: event {} failed ({}); retrying in {} ms", e.seq, why.message(), delay);
  }
  return Status::Ok();
}

Status Processor::Process(const EventRow& e) {
  if (fenced_) return FailedPrecondition("term " + std::to_string(term_) + " is fenced");
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t now = Now();
  auto curated = Curate(e, o_.sources, *o_.store, o_.default_role, term_, now);
  if (!curated.ok()) return Failed(e, curated.status());
  if (o_.context == nullptr) return Failed(e, Unavailable("no context store to write records to (ucxi.enabled)"));
  RecordRow row;
  row.event_seq = e.seq;
  row.address = curated->address;
  row.project = e.project;
  row.task_id = e.task_id;
  row.authors = DumpJson(json(curated->record.authors));
  row.roles = DumpJson(json::array({curated->role}));
  row.term = term_;
  row.created_ms = now;
  // The commit point: the event becomes done under the fence, in one
  // transaction with its record row. Only then is the record written, so
  // that no content of a stale term ever reaches UCXL.
  Status s = o_.store->Complete(e.seq, term_, row, now);
  if (s.code() == StatusCode::kFailedPrecondition) {
    fenced_ = true;
    kLog.warn("slurp: term {} is fenced: {}", term_, s.message());
    return s;
  }
  if (s.code() == StatusCode::kConflict) return Status::Ok();  // another term completed it
  if (!s.ok()) return Failed(e, s);
  if (Status w = Write(*curated); !w.ok()) {
    kLog.warn("slurp: the record of event {} is committed but not written yet ({}); writing it again later", e.seq,
              w.message());
    unwritten_.push_back(e.seq);
  }
  if (o_.probe) {
    o_.probe->Event(e.source, "processed");
    o_.probe->Processed(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  last_seq_ = e.seq;
  last_ms_ = now;
  last_address_ = curated->address;
  return Status::Ok();
}

Status Processor::Write(const Curated& c) {
  auto address = ucxl::Parse(c.address);
  if (!address.ok()) return address.status();
  // A version there is this record already (a deposed admin that completed
  // the event may have written it late; the content is the same).
  auto history = o_.context->History(*address);
  if (history.ok() && !history->empty()) return Status::Ok();
  if (!history.ok() && !history.status().IsNotFound()) return history.status();
  auto put = o_.context->Put(*address, ucxl::Author{"slurp", c.role}, "application/json", RecordJson(c.record));
  if (!put.ok()) return put.status();
  if (o_.probe) o_.probe->RecordWritten();
  if (Status a = o_.context->Announce(*address); !a.ok()) {
    kLog.debug("slurp: announcing {}: {}", c.address, a.message());
  }
  return Status::Ok();
}

Status Processor::Rewrite(const RecordRow& row) {
  auto e = o_.store->GetEvent(row.event_seq);
  if (!e.ok()) return e.status();
  auto curated = Curate(*e, o_.sources, *o_.store, o_.default_role, row.term, row.created_ms);
  if (!curated.ok()) return curated.status();
  curated->address = row.address;
  return Write(*curated);
}

Status Processor::Repair(std::int64_t since_ms) {
  if (o_.context == nullptr) return Status::Ok();
  RecordQuery q;
  q.since_ms = since_ms;
  q.limit = 1000;
  std::size_t repaired = 0;
  while (true) {
    auto rows = o_.store->ListRecords(q);
    if (!rows.ok()) return rows.status();
    for (const auto& r : *rows) {
      auto address = ucxl::Parse(r.address);
      if (!address.ok()) continue;
      auto history = o_.context->History(*address);
      if (history.ok() && !history->empty()) continue;
      if (Status s = Rewrite(r); !s.ok()) {
        kLog.warn("slurp: writing the record of event {} again: {}", r.event_seq, s.message());
        unwritten_.push_back(r.event_seq);
      } else {
        ++repaired;
      }
    }
    if (rows->size() < q.limit) break;
    q.after_seq = rows->back().event_seq;
  }
  if (repaired > 0) kLog.info("slurp: wrote {} committed record(s) that had not been written", repaired);
  return Status::Ok();
}

}  // namespace bzzz::slurp
