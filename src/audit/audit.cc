#include "audit/audit.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>

#include "base/clock.h"
#include "base/hex.h"
#include "base/json.h"
#include "base/log.h"
#include "base/threads.h"
#include "http/router.h"
#include "security/redact.h"

namespace bzzz::audit {

namespace {

constexpr SubsystemLog kLog{"audit"};

using nlohmann::json;

constexpr std::size_t kMaxField = 512;  // bytes kept of a target, reason or action

std::string RedactAudit(std::string_view text) { return security::Redact(text, security::RedactionSite::kAudit); }

// `text` with bytes that are not UTF-8 replaced by U+FFFD, so that the
// entry reads back from the API exactly as it was hashed.
std::string ValidUtf8(const std::string& text) {
  return json::parse(DumpJson(json(text))).get<std::string>();
}

// A field as the log keeps it: at most kMaxField bytes, secrets redacted,
// valid UTF-8.
std::string Bounded(std::string_view text) {
  std::string out = RedactAudit(text.substr(0, kMaxField));
  if (text.size() > kMaxField) out += "...";
  return ValidUtf8(out);
}

// The message of an error envelope ({"error": {"message"}} or UCXI's
// {"error": {"message"}} / {"message"}), "" when there is none.
std::string ErrorMessage(std::string_view body) {
  if (body.empty()) return {};
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return {};
  if (auto e = j.find("error"); e != j.end()) {
    if (e->is_object()) {
      if (auto m = e->find("message"); m != e->end() && m->is_string()) return m->get<std::string>();
    }
    if (e->is_string()) return e->get<std::string>();
  }
  if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  return {};
}

json RowJson(const AuditRow& r) {
  json details = json::parse(r.details, nullptr, false);
  if (details.is_discarded()) details = r.details;
  return {{"seq", r.seq},         {"time_ms", r.time_ms},       {"node_id", r.node_id},
          {"kind", r.kind},       {"principal", r.principal},   {"action", r.action},
          {"target", r.target},   {"outcome", r.outcome},       {"client", r.client},
          {"request_id", r.request_id}, {"details", details},   {"prev_hash", r.prev_hash},
          {"hash", r.hash},       {"signature", r.signature}};
}

http::Response JsonOk(const json& body) { return http::Response::Json(200, DumpJson(body)); }

}  // namespace

AuditEvent SystemEvent(std::string action, std::string details) {
  AuditEvent e;
  e.kind = "lifecycle";
  e.principal = "system";
  e.action = std::move(action);
  e.outcome = "ok";
  e.details = std::move(details);
  return e;
}

bool IsAdminAction(std::string_view method, std::string_view permission) {
  if (method == "GET" || method == "HEAD" || method == "OPTIONS") return false;
  const auto colon = permission.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view resource = permission.substr(0, colon);
  const std::string_view action = permission.substr(colon + 1);
  if (action == "admin") return true;
  static const std::set<std::string_view> kResources = {"admin",    "dlq",  "agents", "cluster", "election",
                                                        "keys",     "tokens", "audit"};
  return kResources.count(resource) > 0;
}

struct AuditLog::Impl {
  explicit Impl(p2p::NodeIdentity id) : identity(std::move(id)) {}

  std::shared_ptr<AuditRepository> repository;
  p2p::NodeIdentity identity;
  AuditOptions options;

  // Metrics (null without a registry).
  prometheus::Family<prometheus::Counter>* entries_family = nullptr;
  prometheus::Counter* dropped_rate = nullptr;
  prometheus::Counter* dropped_queue = nullptr;
  prometheus::Counter* dropped_store = nullptr;
  prometheus::Counter* write_errors = nullptr;

  mutable std::mutex mu;
  std::condition_variable cv;       // the writer waits for work
  std::condition_variable done_cv;  // Flush waits for the writer
  std::deque<AuditEvent> pending;
  std::uint64_t accepted = 0;  // events queued so far
  std::uint64_t settled = 0;   // of those, written or given up
  AuditHead head;
  bool stopping = false;
  std::string last_error;      // of the last failed write; "" once one succeeds
  double tokens = 0;           // refusal bucket
  std::int64_t refilled_ms = 0;
  std::uint64_t suppressed = 0;  // refusals not recorded since the last one that was
  std::thread writer;

  // Admin-action routes, built from the router on first use (its routes
  // are fixed once the server runs).
  const http::Router* router = nullptr;
  std::once_flag routes_once;
  std::set<std::pair<std::string, std::string>> admin_routes;  // (method, pattern)

  void Count(std::string_view kind) {
    if (entries_family) entries_family->Add({{"kind", std::string(kind)}}).Increment();
  }

  // Takes one refusal token; false when the bucket is empty.
  bool TakeRefusalToken() {
    const std::int64_t now = MonotonicMillisNow();
    tokens = std::min(options.refusal_burst,
                      tokens + static_cast<double>(now - refilled_ms) / 1000.0 * options.refusals_per_second);
    refilled_ms = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  void Run() {
    const std::string node_id = identity.node_id();
    std::chrono::milliseconds backoff{100};
    for (;;) {
      std::vector<AuditEvent> batch;
      AuditHead start;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || !pending.empty(); });
        if (pending.empty()) return;
        const std::size_t n = std::min(options.batch, pending.size());
        batch.assign(std::make_move_iterator(pending.begin()), std::make_move_iterator(pending.begin() + n));
        pending.erase(pending.begin(), pending.begin() + n);
        start = head;
      }
      std::vector<AuditRow> rows;
      rows.reserve(batch.size());
      std::string prev = start.seq == 0 ? kGenesisHash : start.hash;
      const std::int64_t now = UnixMillisNow();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        AuditEvent& e = batch[i];
        AuditRow row;
        row.seq = start.seq + static_cast<std::int64_t>(i) + 1;
        row.time_ms = now;
        row.node_id = node_id;
        row.kind = std::move(e.kind);
        row.principal = std::move(e.principal);
        row.action = std::move(e.action);
        row.target = std::move(e.target);
        row.outcome = std::move(e.outcome);
        row.client = std::move(e.client);
        row.request_id = std::move(e.request_id);
        row.details = std::move(e.details);
        row.prev_hash = prev;
        SealEntry(row, identity);
        prev = row.hash;
        rows.push_back(std::move(row));
      }
      // Retries the same rows until they are written; at shutdown, for a
      // bounded time only.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      for (;;) {
        Status s = repository->AppendAudit(rows);
        std::unique_lock lock(mu);
        if (s.ok()) {
          head = {rows.back().seq, rows.back().hash};
          settled += rows.size();
          last_error.clear();
          backoff = std::chrono::milliseconds(100);
          for (const AuditRow& r : rows) Count(r.kind);
          done_cv.notify_all();
          break;
        }
        if (write_errors) write_errors->Increment();
        if (last_error != s.message()) kLog.error("cannot write {} entries: {}", rows.size(), s.message());
        last_error = s.message();
        if (stopping && std::chrono::steady_clock::now() > give_up) {
          kLog.error("{} entries lost at shutdown: {}", rows.size() + pending.size(), s.message());
          settled += rows.size() + pending.size();
          if (dropped_store) dropped_store->Increment(static_cast<double>(rows.size() + pending.size()));
          pending.clear();
          done_cv.notify_all();
          return;
        }
        cv.wait_for(lock, backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  }

  void BuildAdminRoutes() {
    if (router == nullptr) return;
    for (const auto& route : router->Routes()) {
      const std::string method(http::MethodName(route->method));
      if (IsAdminAction(method, route->permission)) admin_routes.emplace(method, route->pattern);
    }
  }

  http::Response List(const http::Request& req) {
    AuditQuery q;
    q.kind = req.QueryParam("kind").value_or("");
    q.principal = req.QueryParam("principal").value_or("");
    q.action_prefix = req.QueryParam("action").value_or("");
    auto bad = [&](const Status& s) { return http::ErrorResponse(400, "bad_request", s.message(), req.request_id); };
    auto limit = req.IntParam("limit", 100, 1, 1000);
    if (!limit.ok()) return bad(limit.status());
    auto since = req.IntParam("since_ms", 0, 0, INT64_MAX);
    if (!since.ok()) return bad(since.status());
    auto until = req.IntParam("until_ms", 0, 0, INT64_MAX);
    if (!until.ok()) return bad(until.status());
    auto before = req.IntParam("before", 0, 0, INT64_MAX);
    if (!before.ok()) return bad(before.status());
    auto after = req.IntParam("after", 0, 0, INT64_MAX);
    if (!after.ok()) return bad(after.status());
    if (*before > 0 && *after > 0) {
      return http::ErrorResponse(400, "bad_request", "before and after exclude each other", req.request_id);
    }
    q.limit = static_cast<std::size_t>(*limit);
    q.since_ms = *since;
    q.until_ms = *until;
    q.before_seq = *before;
    q.after_seq = *after;
    q.ascending = req.QueryParam("after").has_value();
    auto rows = repository->ListAudit(q);
    if (!rows.ok()) return http::ErrorFromStatus(rows.status(), req.request_id);
    json entries = json::array();
    for (const AuditRow& r : *rows) entries.push_back(RowJson(r));
    const AuditHead h = CurrentHead();
    json out = {{"node_id", identity.node_id()},
                {"public_key", HexOf(identity.public_key().data(), identity.public_key().size())},
                {"head", {{"seq", h.seq}, {"hash", h.hash}}},
                {"entries", std::move(entries)}};
    const bool full = rows->size() == q.limit && !rows->empty();
    out["next_before"] = !q.ascending && full ? json(rows->back().seq) : json(nullptr);
    out["next_after"] = q.ascending && full ? json(rows->back().seq) : json(nullptr);
    return JsonOk(out);
  }

  http::Response Verify(const http::Request& req) {
    auto recorded = repository->ReadAuditHead();
    if (!recorded.ok()) return http::ErrorFromStatus(recorded.status(), req.request_id);
    auto report = VerifyChain(StoredEntries(*repository), identity.public_key(), *recorded);
    if (!report.ok()) return http::ErrorFromStatus(report.status(), req.request_id);
    return JsonOk(ReportJson(*report));
  }

  AuditHead CurrentHead() const {
    std::lock_guard lock(mu);
    return head;
  }

  static json ReportJson(const ChainReport& r) {
    json problems = json::array();
    for (const auto& p : r.problems) problems.push_back({{"seq", p.seq}, {"kind", p.kind}, {"detail", p.detail}});
    return {{"ok", r.ok()},
            {"entries", r.entries},
            {"first_seq", r.first_seq},
            {"last_seq", r.last_seq},
            {"head", {{"seq", r.head.seq}, {"hash", r.head.hash}}},
            {"problems_total", r.problems_total},
            {"problems", std::move(problems)}};
  }
};

Result<std::shared_ptr<AuditLog>> AuditLog::Start(std::shared_ptr<AuditRepository> repository,
                                                  p2p::NodeIdentity identity, AuditOptions options,
                                                  prometheus::Registry* metrics) {
  if (!repository) return InvalidArgument("audit: no repository");
  auto head = repository->ReadAuditHead();
  if (!head.ok()) return Status(head.status().code(), "audit: reading the chain head: " + head.status().message());
  auto impl = std::make_shared<Impl>(std::move(identity));
  impl->repository = std::move(repository);
  impl->options = options;
  impl->head = *head;
  impl->tokens = options.refusal_burst;
  impl->refilled_ms = MonotonicMillisNow();
  if (metrics != nullptr) {
    impl->entries_family = &prometheus::BuildCounter()
                                .Name("no_audit_entries_total")
                                .Help("Audit log entries written, by kind")
                                .Register(*metrics);
    auto& dropped = prometheus::BuildCounter()
                        .Name("no_audit_dropped_total")
                        .Help("Audit events not written: rate (refusals over the limit, counted in the next "
                              "entry), queue_full, store (lost at shutdown with the store failing)")
                        .Register(*metrics);
    impl->dropped_rate = &dropped.Add({{"reason", "rate"}});
    impl->dropped_queue = &dropped.Add({{"reason", "queue_full"}});
    impl->dropped_store = &dropped.Add({{"reason", "store"}});
    impl->write_errors = &prometheus::BuildCounter()
                              .Name("no_audit_write_errors_total")
                              .Help("Failed writes of audit batches (retried)")
                              .Register(*metrics)
                              .Add({});
  }
  Impl* raw = impl.get();
  raw->writer = NamedThread("audit-writer", [raw] { raw->Run(); });
  return std::shared_ptr<AuditLog>(new AuditLog(std::move(impl)));
}

AuditLog::AuditLog(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

AuditLog::~AuditLog() { Stop(); }

bool AuditLog::Record(AuditEvent event) {
  Impl& n = *impl_;
  event.target = Bounded(event.target);
  event.action = Bounded(event.action);
  event.outcome = Bounded(event.outcome);
  // Details in the one text form the API gives back (compact, keys sorted).
  json details = json::parse(RedactAudit(event.details), nullptr, false);
  if (!details.is_object()) details = json{{"text", Bounded(event.details)}};
  event.details = DumpJson(details);
  event.principal = ValidUtf8(event.principal.substr(0, kMaxField));
  event.client = ValidUtf8(event.client.substr(0, kMaxField));
  event.request_id = ValidUtf8(event.request_id.substr(0, kMaxField));
  const bool refusal = event.kind == "auth_failure" || event.kind == "permission_denied";
  std::lock_guard lock(n.mu);
  if (n.stopping) return false;
  if (refusal) {
    if (!n.TakeRefusalToken()) {
      ++n.suppressed;
      if (n.dropped_rate) n.dropped_rate->Increment();
      return false;
    }
    if (n.suppressed > 0) {
      json d = json::parse(event.details, nullptr, false);
      if (!d.is_object()) d = json::object();
      d["suppressed"] = n.suppressed;
      event.details = DumpJson(d);
      n.suppressed = 0;
    }
  }
  if (n.pending.size() >= n.options.queue_limit) {
    if (n.dropped_queue) n.dropped_queue->Increment();
    return false;
  }
  n.pending.push_back(std::move(event));
  ++n.accepted;
  n.cv.notify_one();
  return true;
}

void AuditLog::ObserveRequest(const http::RequestRecord& r) {
  // Most requests are reads that succeeded: nothing to do, cheaply.
  const bool read = r.method == "GET" || r.method == "HEAD" || r.method == "OPTIONS";
  if (read && r.status != 401 && r.status != 403) return;
  Impl& n = *impl_;
  std::call_once(n.routes_once, [&n] { n.BuildAdminRoutes(); });
  const bool admin = n.admin_routes.count({std::string(r.method), std::string(r.route)}) > 0;
  if (r.status != 401 && r.status != 403 && !admin) return;
  AuditEvent e;
  e.principal = std::string(r.principal);
  e.action = std::string(r.method) + " " + std::string(r.route);
  e.target = std::string(r.path);
  e.client = std::string(r.client_address);
  e.request_id = std::string(r.request_id);
  const std::string reason = Bounded(ErrorMessage(r.error_body));
  if (r.status == 401) {
    e.kind = "auth_failure";
    e.outcome = "401";
  } else if (r.status == 403) {
    e.kind = "permission_denied";
    e.outcome = "403";
  } else {
    e.kind = "admin_action";
    e.outcome = std::to_string(r.status);
  }
  if (!reason.empty()) e.details = DumpJson(json{{"reason", reason}});
  Record(std::move(e));
}

Status AuditLog::Flush(std::chrono::milliseconds timeout) {
  Impl& n = *impl_;
  std::unique_lock lock(n.mu);
  const std::uint64_t want = n.accepted;
  if (!n.done_cv.wait_for(lock, timeout, [&] { return n.settled >= want; })) {
    return Timeout("audit: " + std::to_string(want - n.settled) + " entries not yet written" +
                   (n.last_error.empty() ? "" : ": " + n.last_error));
  }
  return Status::Ok();
}

void AuditLog::Stop() {
  Impl& n = *impl_;
  {
    std::lock_guard lock(n.mu);
    if (n.stopping && !n.writer.joinable()) return;
    n.stopping = true;
    n.cv.notify_all();
  }
  if (n.writer.joinable()) n.writer.join();
}

AuditHead AuditLog::Head() const { return impl_->CurrentHead(); }

const p2p::PublicKey& AuditLog::public_key() const { return impl_->identity.public_key(); }

Status AuditLog::RegisterRoutes(http::Router& router) {
  impl_->router = &router;
  http::RouteTable routes(router, "audit");
  auto n = impl_;
  routes.AddBlocking(http::Method::kGet, "/api/v1/audit", "audit:read",
                     "audit log entries (kind, principal, action, since_ms, until_ms, before, after, limit)",
                     [n](http::Request& req) { return n->List(req); });
  routes.AddBlocking(http::Method::kGet, "/api/v1/audit/verify", "audit:read",
                     "verify the audit hash chain and signatures",
                     [n](http::Request& req) { return n->Verify(req); });
  return routes.Done();
}

std::vector<ops::HealthCheckSpec> AuditLog::HealthChecks(const config::OperationsConfig& ops) {
  (void)ops;
  ops::HealthCheckSpec spec;
  spec.name = "audit";
  spec.critical = false;
  spec.description = "the audit log is being written";
  std::weak_ptr<AuditLog> weak = std::static_pointer_cast<AuditLog>(shared_from_this());
  spec.fn = [weak] {
    auto self = weak.lock();
    if (!self) return ops::CheckOutcome::Healthy("stopped");
    Impl& n = *self->impl_;
    std::lock_guard lock(n.mu);
    const json details = {{"head_seq", n.head.seq}, {"pending", n.pending.size()}, {"last_error", n.last_error}};
    if (!n.last_error.empty()) {
      return ops::CheckOutcome::Degraded("audit entries are not being written: " + n.last_error, DumpJson(details));
    }
    return ops::CheckOutcome::Healthy(std::to_string(n.head.seq) + " entries", DumpJson(details));
  };
  return {spec};
}

std::vector<ops::ShutdownStep> AuditLog::ShutdownSteps(const config::Config& config) {
  (void)config;
  std::weak_ptr<AuditLog> weak = std::static_pointer_cast<AuditLog>(shared_from_this());
  return {{"audit.flush", ops::kPriorityFlushStores - 1, std::chrono::milliseconds(6000), [weak] {
             auto self = weak.lock();
             if (!self) return Status::Ok();
             self->Record(SystemEvent("node.stop"));
             Status s = self->Flush(std::chrono::seconds(5));
             self->Stop();
             return s;
           }}};
}

}  // namespace bzzz::audit
