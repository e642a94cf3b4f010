// SLURP's routes (docs/slurp.md "API").
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "http/message.h"
#include "http/router.h"
#include "slurp/service.h"
#include "ucxl/address.h"
#include "ucxl/context_store.h"

namespace bzzz::slurp {
namespace {

using nlohmann::json;

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }
http::Response BadRequest(const std::string& message, const std::string& request_id) {
  return http::ErrorFromStatus(InvalidArgument(message), request_id);
}

json EventJson(const EventRow& e) {
  json payload = ParseJson(e.payload);
  return {{"seq", e.seq},
          {"key", e.key},
          {"source", e.source},
          {"project", e.project},
          {"task_id", e.task_id.empty() ? json(nullptr) : json(e.task_id)},
          {"payload", payload.is_discarded() ? json(e.payload) : payload},
          {"state", e.state},
          {"attempts", e.attempts},
          {"next_ms", e.next_ms},
          {"accepted_ms", e.accepted_ms},
          {"accepted_by", e.accepted_by},
          {"error", e.error.empty() ? json(nullptr) : json(e.error)},
          {"term", e.term},
          {"address", e.address.empty() ? json(nullptr) : json(e.address)},
          {"processed_ms", e.processed_ms}};
}

Result<std::int64_t> Seq(const http::Request& req) {
  const std::string_view s = req.Param("seq");
  std::int64_t v = 0;
  if (s.empty() || s.size() > 18) return InvalidArgument("seq: an event number");
  for (char c : s) {
    if (c < '0' || c > '9') return InvalidArgument("seq: an event number");
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return InvalidArgument("seq: an event number");
  return v;
}

// A page of events: `q` with ?after= and ?limit= applied.
http::Response EventPage(SlurpRepository& store, const http::Request& req, EventQuery q) {
  auto after = req.IntParam("after", 0, 0, INT64_MAX);
  auto limit = req.IntParam("limit", 100, 1, 1000);
  if (!after.ok() || !limit.ok()) return BadRequest((!after.ok() ? after : limit).status().message(), req.request_id);
  q.after_seq = *after;
  q.limit = static_cast<std::size_t>(*limit);
  auto rows = store.ListEvents(q);
  if (!rows.ok()) return http::ErrorFromStatus(rows.status(), req.request_id);
  json out = json::array();
  for (const auto& e : *rows) out.push_back(EventJson(e));
  return JsonOk(200, {{"events", std::move(out)}, {"count", rows->size()}});
}

// A 503 that says when to come back.
http::Response Unavailable503(const Status& s, const std::string& request_id) {
  http::Response r = http::ErrorFromStatus(s, request_id);
  r.headers.Set("Retry-After", "5");
  return r;
}

}  // namespace

Status SlurpService::RegisterRoutes(http::Router& router) {
  SlurpService* self = this;
  SlurpRepository* store = &this->store();
  ucxl::ContextStore* context = this->context();
  http::RouteTable routes(router, "slurp");
  using http::Method;
  routes.AddBlocking(Method::kPost, "/api/v1/slurp/events", "slurp:write",
                     "an event to curate ({project, summary, decision, task_id?, role?, rationale?, authors?, "
                     "citations?}; Idempotency-Key header)",
                     [self](http::Request& req) {
                       const std::string* key = req.headers.Find("Idempotency-Key");
                       auto added = self->Submit(key ? *key : "", req.body, req.identity.principal);
                       if (!added.ok()) {
                         if (added.status().code() == StatusCode::kUnavailable) {
                           return Unavailable503(added.status(), req.request_id);
                         }
                         return http::ErrorFromStatus(added.status(), req.request_id);
                       }
                       return JsonOk(added->second ? 202 : 200, {{"event", EventJson(added->first)}});
                     });
  routes.AddBlocking(Method::kGet, "/api/v1/slurp/events", "slurp:read",
                     "events (?state=queued|done|dead&source=api|task|hmmm&after=SEQ&limit=)",
                     [store](http::Request& req) {
                       EventQuery q;
                       q.state = req.QueryParam("state").value_or("");
                       q.source = req.QueryParam("source").value_or("");
                       if (!q.state.empty() && q.state != "queued" && q.state != "done" && q.state != "dead") {
                         return BadRequest("state must be queued, done or dead", req.request_id);
                       }
                       if (!q.source.empty() && q.source != "api" && q.source != "task" && q.source != "hmmm") {
                         return BadRequest("source must be api, task or hmmm", req.request_id);
                       }
                       return EventPage(*store, req, q);
                     });
  routes.AddBlocking(Method::kGet, "/api/v1/slurp/events/:seq", "slurp:read", "one event", [store](http::Request& req) {
    auto seq = Seq(req);
    if (!seq.ok()) return BadRequest(seq.status().message(), req.request_id);
    auto e = store->GetEvent(*seq);
    if (!e.ok()) return http::ErrorFromStatus(e.status(), req.request_id);
    return JsonOk(200, {{"event", EventJson(*e)}});
  });
  routes.AddBlocking(Method::kGet, "/api/v1/slurp/status", "slurp:read", "admin, term, queue, last processed",
                     [self](http::Request&) { return http::Response::Json(200, self->StatusJson("slurp")); });
  routes.AddBlocking(
      Method::kGet, "/api/v1/slurp/records", "slurp:read",
      "records the caller may read (?project=&task=&author=&since=MS&after=SEQ&limit=)",
      [store, context](http::Request& req) {
        RecordQuery q;
        q.project = req.QueryParam("project").value_or("");
        q.task_id = req.QueryParam("task").value_or("");
        q.author = req.QueryParam("author").value_or("");
        auto since = req.IntParam("since", 0, 0, INT64_MAX);
        auto after = req.IntParam("after", 0, 0, INT64_MAX);
        auto limit = req.IntParam("limit", 100, 1, 1000);
        for (const auto* p : {&since, &after, &limit}) {
          if (!p->ok()) return BadRequest(p->status().message(), req.request_id);
        }
        q.since_ms = *since;
        q.after_seq = *after;
        q.limit = static_cast<std::size_t>(*limit);
        auto rows = store->ListRecords(q);
        if (!rows.ok()) return http::ErrorFromStatus(rows.status(), req.request_id);
        ucxl::Reader reader;
        reader.roles = req.identity.roles;
        reader.all = req.Allowed("context:read_any");
        json out = json::array();
        std::size_t hidden = 0;
        for (const auto& r : *rows) {
          if (context == nullptr) break;
          auto address = ucxl::Parse(r.address);
          if (!address.ok()) continue;
          auto entry = context->Get(*address, reader);
          if (!entry.ok()) {
            ++hidden;  // sealed for roles the caller does not hold, or not reachable
            continue;
          }
          json record = ParseJson(entry->content);
          out.push_back({{"event_seq", r.event_seq},
                         {"address", entry->address},
                         {"project", r.project},
                         {"task_id", r.task_id.empty() ? json(nullptr) : json(r.task_id)},
                         {"term", r.term},
                         {"created_ms", r.created_ms},
                         {"record", record.is_discarded() ? json(entry->content) : record}});
        }
        json next = rows->size() == q.limit && !rows->empty() ? json(rows->back().event_seq) : json(nullptr);
        const std::size_t count = out.size();
        return JsonOk(200, {{"records", std::move(out)}, {"count", count}, {"withheld", hidden}, {"next", next}});
      });
  routes.AddBlocking(Method::kGet, "/api/v1/slurp/dlq", "slurp:read", "dead events (?after=SEQ&limit=)",
                     [store](http::Request& req) {
                       EventQuery q;
                       q.state = "dead";
                       return EventPage(*store, req, q);
                     });
  routes.AddBlocking(Method::kPost, "/api/v1/slurp/dlq/:seq/replay", "slurp:admin",
                     "queue a dead event again", [self, store](http::Request& req) {
                       auto seq = Seq(req);
                       if (!seq.ok()) return BadRequest(seq.status().message(), req.request_id);
                       if (Status s = self->Replay(*seq); !s.ok()) return http::ErrorFromStatus(s, req.request_id);
                       auto e = store->GetEvent(*seq);
                       if (!e.ok()) return http::ErrorFromStatus(e.status(), req.request_id);
                       return JsonOk(200, {{"event", EventJson(*e)}});
                     });
  routes.AddBlocking(Method::kDelete, "/api/v1/slurp/dlq/:seq", "slurp:admin", "delete one dead event",
                     [store](http::Request& req) {
                       auto seq = Seq(req);
                       if (!seq.ok()) return BadRequest(seq.status().message(), req.request_id);
                       auto n = store->Purge(*seq);
                       if (!n.ok()) return http::ErrorFromStatus(n.status(), req.request_id);
                       return JsonOk(200, {{"purged", *n}});
                     });
  routes.AddBlocking(Method::kDelete, "/api/v1/slurp/dlq", "slurp:admin", "delete every dead event",
                     [store](http::Request& req) {
                       auto n = store->Purge(0);
                       if (!n.ok()) return http::ErrorFromStatus(n.status(), req.request_id);
                       return JsonOk(200, {{"purged", *n}});
                     });
  return routes.Done();
}

}  // namespace bzzz::slurp
