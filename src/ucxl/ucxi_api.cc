#include "ucxl/ucxi_api.h"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <variant>

#include "base/base64.h"
#include "base/json.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/threads.h"
#include "base/utf8.h"
#include "dht/record_store.h"
#include "http/blocking.h"
#include "ucxl/context_store.h"
#include "ucxl/errc.h"
#include "ucxl/probe.h"

namespace bzzz::ucxl {

using nlohmann::json;

namespace {

constexpr std::size_t kDefaultLimit = 100;
constexpr std::size_t kMaxLimit = 1000;

std::string Now() { return FormatIso8601(std::chrono::system_clock::now()); }

// "UCXL-404-NOT_FOUND" and friends, by HTTP status and name.
std::string Code(int status, std::string_view name) {
  return "UCXL-" + std::to_string(status) + "-" + std::string(name);
}

http::Response Success(int status, std::string_view name, std::string_view message, json data,
                       const std::string& request_id, json details = json::object()) {
  const json body = {{"response",
                      {{"code", Code(status, name)},
                       {"message", message},
                       {"data", std::move(data)},
                       {"details", std::move(details)},
                       {"request_id", request_id},
                       {"timestamp", Now()}}}};
  return http::Response::Json(status, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

http::Response Error(int status, std::string_view name, std::string_view message, std::string_view path,
                     std::string_view request_id, json details = json::object(),
                     std::string_view cause = "") {
  const json body = {{"error",
                      {{"code", Code(status, name)},
                       {"message", message},
                       {"details", std::move(details)},
                       {"source", "ucxi-server"},
                       {"path", path},
                       {"request_id", request_id},
                       {"timestamp", Now()},
                       {"cause", cause.empty() ? json(nullptr) : json(cause)}}}};
  return http::Response::Json(status, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// The server's own errors on /ucxi/, in the UCXI envelope.
http::Response ServerError(int status, std::string_view code, std::string_view message, std::string_view path,
                           std::string_view request_id) {
  std::string_view name = UcxlNameOfHttpStatus(status);
  if (name == "INTERNAL") status = 500;
  return Error(status, name, message, path, request_id, json::object(), code);
}



json VersionJson(const ContextVersion& v) {
  return {{"number", v.number},
          {"writer", {{"node_id", v.writer}, {"number", v.writer_number}}},
          {"author", {{"agent", v.author_agent}, {"role", v.author_role}}},
          {"created_at",
           FormatIso8601(std::chrono::system_clock::time_point(std::chrono::milliseconds(v.created_ms)))},
          {"content_type", v.content_type},
          {"size", v.size},
          {"content_hash", v.content_hash},
          {"tombstone", v.tombstone}};
}

json EntryJson(const Entry& e) {
  json j = {
      {"address", e.address}, {"version", VersionJson(e.version)}, {"source", SourceName(e.source)}};
  if (!e.version.tombstone) {
    const bool text = ValidUtf8(e.content);
    j["encoding"] = text ? "utf-8" : "base64";
    j["content"] = text ? e.content : Base64(e.content);
  }
  return j;
}

}  // namespace

namespace {
constexpr SubsystemLog kApiLog{"ucxl"};
}  // namespace

class UcxiServices::Impl {
 public:
  std::shared_ptr<ContextRepository> store;
  dht::RecordStore* records = nullptr;
  std::unique_ptr<ContextStore> context;
  std::size_t max_bytes = 0;
  // Past 64 operations in progress: UCXL-429-RATE_LIMITED with Retry-After.
  http::BlockingRuns runs{64, [](std::string_view message, std::string_view request_id) {
                            return ServerError(429, "too_many_requests", message, "/ucxi/", request_id);
                          }};
  std::atomic<std::uint64_t> next_run{0};

  std::unique_ptr<UcxlProbe> probe;
  std::unique_ptr<RewrapJob> rewrap;
  // Publishes this node's index record (cluster-wide search) after writes.
  std::mutex index_mu;
  std::condition_variable index_cv;
  bool index_stopping = false;
  std::thread indexer;

  void IndexLoop() {
    std::unique_lock lock(index_mu);
    while (!index_stopping) {
      lock.unlock();
      if (auto published = context->PublishIndexIfChanged(); !published.ok()) {
        kApiLog.warn("ucxl: index record not published: {}", published.status().ToString());
      }
      lock.lock();
      index_cv.wait_for(lock, std::chrono::seconds(2), [this] { return index_stopping; });
    }
  }
  void StopIndexer() {
    {
      std::lock_guard lock(index_mu);
      index_stopping = true;
    }
    index_cv.notify_all();
    if (indexer.joinable()) indexer.join();
  }

  // The caller as a reader: the roles it holds; every role with the
  // permission context:read_any (system_admin and master: "*"). Not
  // ucxl:admin, which ucxl:* grants to writers such as developer.
  static Reader ReaderOf(const http::Request& req) {
    Reader r;
    r.roles = req.identity.roles;
    r.all = req.Allowed("context:read_any");
    return r;
  }
  // Pagination of search and discover: `after` (a content key) and, in the
  // answer, `next` when a full page came back.
  static std::string After(const http::Request& req) { return req.QueryParam("after").value_or(""); }
  static void Page(json& data, const std::vector<ContextVersion>& found, std::size_t limit) {
    data["next"] = found.size() == limit && !found.empty() ? json(found.back().key) : json(nullptr);
  }

  void CountResolution(const Result<Entry>& e, double seconds) {
    if (e.ok()) {
      probe->Found(e->source, seconds);
    } else {
      probe->NotResolved(e.status().IsNotFound(), seconds);
    }
  }
  void UpdateTotals() {
    if (!probe->enabled()) return;
    if (auto t = store->ContextStats(); t.ok()) probe->Stored(t->versions, t->bytes);
  }

  // The address in query parameter `name`, or an error response.
  std::variant<Address, http::Response> AddressParam(const http::Request& req, const char* name) {
    auto text = req.QueryParam(name);
    if (!text || text->empty()) {
      return Error(400, "BAD_REQUEST",
                   std::string("query parameter '") + name + "' (a UCXL address) is required", req.path,
                   req.request_id, {{"parameter", name}});
    }
    return ParseOrError(*text, req);
  }
  std::variant<Address, http::Response> ParseOrError(const std::string& text,
                                                           const http::Request& req) {
    AddressError why;
    auto a = Parse(text, &why);
    if (!a.ok()) {
      // The grammar's failure names the field; a bad temporal part has a code of its own.
      const UcxlCode code = why.field == "temporal" ? UcxlCodeOf(bzzz::Error(Errc::kTemporalInvalid, ""))
                                                    : UcxlCodeOf(a.status());
      return Error(code.status, code.name, a.status().message(), req.path, req.request_id,
                   {{"field", why.field}, {"reason", why.reason}, {"address", text}});
    }
    return *a;
  }

  // A ContextStore failure as an envelope, coded by UcxlCodeOf. `reading`:
  // a failure to reach other nodes is a failed resolution (404), not an
  // outage (503).
  http::Response Failure(Status s, const http::Request& req, const std::string& address, bool reading = true) {
    const StatusCode generic = s.code();
    if (reading && (generic == StatusCode::kUnavailable || generic == StatusCode::kTimeout) &&
        !s.reason()) {
      s = Status(generic, s.message(), Errc::kResolutionFailed);
    }
    const UcxlCode code = UcxlCodeOf(s);
    // The generic code is the cause of server-side failures, where the
    // envelope's code alone does not tell an operator what happened.
    const bool with_cause = code.status >= 500 || code.name == "RESOLUTION_FAILED";
    http::Response r = Error(code.status, code.name, s.message(), req.path, req.request_id, {{"address", address}},
                             with_cause ? StatusCodeName(generic) : std::string_view());
    if (code.status == 429 || code.status == 503) r.headers.Set("Retry-After", "1");
    return r;
  }

  std::optional<std::size_t> Limit(const http::Request& req) {
    auto l = req.QueryParam("limit");
    if (!l) return kDefaultLimit;
    if (l->empty() || l->size() > 6 || l->find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    const std::size_t v = std::stoul(*l);
    if (v < 1 || v > kMaxLimit) return std::nullopt;
    return v;
  }

  http::Response Get(http::Request& req) {
    const auto start = std::chrono::steady_clock::now();
    auto a = AddressParam(req, "address");
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    const auto& address = std::get<Address>(a);
    auto e = context->Get(address, ReaderOf(req));
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CountResolution(e, took);
    if (!e.ok()) return Failure(e.status(), req, Format(address));
    return Success(200, "SUCCESS", "resolved", EntryJson(*e), req.request_id);
  }

  // Who writes is who the node authenticated, never what the address
  // claims: the version's author is the caller's principal, and an
  // address's role part is a claim the caller must hold (the role itself,
  // or ucxl:admin). A wildcard role part is left to the store, which
  // refuses it as not concrete (422).
  std::optional<http::Response> WriterProblem(const http::Request& req, const Address& address) {
    if (address.role == kAny) return std::nullopt;
    const auto& roles = req.identity.roles;
    if (std::find(roles.begin(), roles.end(), address.role) != roles.end() || req.Allowed("ucxl:admin")) {
      return std::nullopt;
    }
    return Error(403, "FORBIDDEN",
                 "writing to role '" + address.role + "' needs that role (or the permission ucxl:admin); " +
                     req.identity.principal + " does not hold it",
                 req.path, req.request_id, {{"field", "address"}, {"role", address.role}});
  }

  http::Response Store(http::Request& req, const Address& address, std::string content_type,
                       std::string content) {
    if (auto refused = WriterProblem(req, address)) return std::move(*refused);
    const Author author{req.identity.principal, address.role};
    auto e = context->Put(address, author, std::move(content_type), std::move(content));
    if (!e.ok()) return Failure(e.status(), req, Format(address), /*reading=*/false);
    UpdateTotals();
    json data = EntryJson(*e);
    data.erase("content");
    data.erase("encoding");
    return Success(201, "CREATED", "stored as version " + std::to_string(e->version.number), data,
                   req.request_id);
  }

  http::Response Put(http::Request& req) {
    auto a = AddressParam(req, "address");
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    const std::string* type = req.headers.Find("Content-Type");
    return Store(req, std::get<Address>(a), type ? *type : "application/octet-stream", req.body);
  }

  http::Response Post(http::Request& req) {
    const json j = ParseJson(req.body);
    if (!j.is_object()) {
      return Error(400, "INVALID_PAYLOAD",
                   "body must be a JSON object {address, content, content_type?, encoding?}", req.path,
                   req.request_id);
    }
    for (const char* field : {"address", "content"}) {
      if (!j.contains(field) || !j[field].is_string()) {
        return Error(400, "INVALID_PAYLOAD", std::string("field '") + field + "' must be a string", req.path,
                     req.request_id, {{"field", field}});
      }
    }
    for (const char* field : {"content_type", "encoding"}) {
      if (j.contains(field) && !j[field].is_string()) {
        return Error(400, "INVALID_PAYLOAD", std::string("field '") + field + "' must be a string", req.path,
                     req.request_id, {{"field", field}});
      }
    }
    auto a = ParseOrError(j["address"].get<std::string>(), req);
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    std::string content = j["content"].get<std::string>();
    const std::string encoding = j.value("encoding", "utf-8");
    if (encoding == "base64") {
      auto decoded = FromBase64(content);
      if (!decoded.ok()) {
        return Error(400, "INVALID_PAYLOAD", "content is not valid base64", req.path, req.request_id,
                     {{"field", "content"}});
      }
      content = std::move(*decoded);
    } else if (encoding != "utf-8") {
      return Error(400, "INVALID_PAYLOAD", "encoding must be utf-8 or base64", req.path, req.request_id,
                   {{"field", "encoding"}});
    }
    return Store(req, std::get<Address>(a), j.value("content_type", "text/plain; charset=utf-8"),
                 std::move(content));
  }

  http::Response Delete(http::Request& req) {
    auto a = AddressParam(req, "address");
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    const auto& address = std::get<Address>(a);
    if (auto refused = WriterProblem(req, address)) return std::move(*refused);
    auto v = context->Delete(address, Author{req.identity.principal, address.role});
    if (!v.ok()) return Failure(v.status(), req, Format(address), /*reading=*/false);
    UpdateTotals();
    return Success(200, "SUCCESS", "deleted: tombstone is version " + std::to_string(v->number),
                   {{"address", ContentKey(address)}, {"version", VersionJson(*v)}}, req.request_id);
  }

  http::Response Announce(http::Request& req) {
    const json j = ParseJson(req.body);
    if (!j.is_object() || !j.contains("address") || !j["address"].is_string()) {
      return Error(400, "INVALID_PAYLOAD", "body must be {\"address\": \"ucxl://...\"}", req.path,
                   req.request_id);
    }
    auto a = ParseOrError(j["address"].get<std::string>(), req);
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    const auto& address = std::get<Address>(a);
    auto history = context->History(address);
    if (!history.ok()) return Failure(history.status(), req, Format(address));
    if (history->empty())
      return Failure(NotFound("nothing stored at " + ContentKey(address)), req, Format(address));
    if (auto s = context->Announce(address); !s.ok()) {
      if (s.IsNotFound())
        return Failure(NotFound("this node does not hold " + ContentKey(address)), req,
                       Format(address));
      return Error(503, "SERVICE_UNAVAILABLE", s.message(), req.path, req.request_id, {},
                   StatusCodeName(s.code()));
    }
    return Success(202, "ACCEPTED", "announced", {{"address", ContentKey(address)}}, req.request_id);
  }

  http::Response Discover(http::Request& req) {
    auto a = AddressParam(req, "pattern");
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    const auto& pattern = std::get<Address>(a);
    const auto limit = Limit(req);
    if (!limit) return Error(400, "BAD_REQUEST", "limit must be 1 to 1000", req.path, req.request_id);
    auto found = context->Discover(pattern, *limit, ReaderOf(req), After(req));
    if (!found.ok()) return Failure(found.status(), req, Format(pattern));
    json items = json::array();
    for (const auto& v : *found) items.push_back({{"address", v.key}, {"version", VersionJson(v)}});
    json data = {{"pattern", Format(pattern)}, {"results", items}};
    Page(data, *found, *limit);
    if (!pattern.HasWildcard() && records) {
      if (auto p = context->Providers(pattern); p.ok()) data["providers"] = *p;
    }
    return Success(200, "SUCCESS", std::to_string(items.size()) + " match(es)", data, req.request_id);
  }

  http::Response Navigate(http::Request& req) {
    auto a = AddressParam(req, "address");
    if (auto* r = std::get_if<http::Response>(&a)) return std::move(*r);
    const auto& address = std::get<Address>(a);
    auto steps_text = req.QueryParam("steps");
    long long steps = -1;
    if (steps_text) {
      const std::string& t = *steps_text;
      const std::size_t digits = t.size() - (t.rfind('-', 0) == 0 || t.rfind('+', 0) == 0 ? 1 : 0);
      if (digits < 1 || digits > 9 ||
          t.find_first_not_of("0123456789", t.size() - digits) != std::string::npos) {
        return Error(400, "BAD_REQUEST", "steps must be an integer (negative: back, positive: forward)",
                     req.path, req.request_id, {{"parameter", "steps"}});
      }
      steps = std::stoll(t);
    }
    const auto start = std::chrono::steady_clock::now();
    auto e = context->Navigate(address, steps, ReaderOf(req));
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CountResolution(e, took);
    if (!e.ok()) return Failure(e.status(), req, Format(address));
    json data = EntryJson(*e);
    data["from"] = Format(address);
    data["steps"] = steps;
    return Success(200, "SUCCESS", "navigated", data, req.request_id);
  }

  http::Response Search(http::Request& req) {
    const auto q = req.QueryParam("q");
    if (!q) return Error(400, "BAD_REQUEST", "query parameter 'q' is required", req.path, req.request_id);
    const auto limit = Limit(req);
    if (!limit) return Error(400, "BAD_REQUEST", "limit must be 1 to 1000", req.path, req.request_id);
    auto found = context->Search(*q, *limit, ReaderOf(req), After(req));
    if (!found.ok()) return Failure(found.status(), req, "");
    json items = json::array();
    for (const auto& v : *found) items.push_back({{"address", v.key}, {"version", VersionJson(v)}});
    json data = {{"q", *q}, {"results", items}};
    Page(data, *found, *limit);
    return Success(200, "SUCCESS", std::to_string(items.size()) + " result(s)", data, req.request_id);
  }

  json StatusData() const {
    json j = {{"dht", records != nullptr}, {"max_content_bytes", max_bytes}, {"encrypted", context->codec() != nullptr}};
    if (auto t = store->ContextStats(); t.ok()) {
      j["versions"] = t->versions;
      j["bytes"] = t->bytes;
    }
    return j;
  }
};

std::shared_ptr<UcxiServices> UcxiServices::Create(std::shared_ptr<ContextRepository> store,
                                                   dht::RecordStore* records, const config::Config& config,
                                                   prometheus::Registry* metrics, UcxiEncryption encryption) {
  auto s = std::shared_ptr<UcxiServices>(new UcxiServices());
  s->impl_ = std::make_shared<Impl>();
  Impl& i = *s->impl_;
  i.store = store;
  i.records = records;
  // Content must fit a request body (the server refuses larger ones first).
  // ucxi.max_payload_bytes, within what one DHT record carries; a request
  // body over http.body_limit_bytes is refused by the server first.
  i.max_bytes = std::min<std::size_t>(config.ucxi.max_payload_bytes, dht::kMaxRecordBytes);
  i.context = std::make_unique<ContextStore>(store, records, ContextStoreOptions{i.max_bytes}, encryption.codec);
  if (encryption.codec && encryption.key_generation) {
    i.rewrap = std::make_unique<RewrapJob>(*i.context, encryption.key_generation, encryption.rewrap, metrics);
    if (auto st = i.rewrap->Start(); !st.ok()) kApiLog.warn("ucxl: re-wrap job not started: {}", st.ToString());
  }
  i.probe = std::make_unique<UcxlProbe>(metrics);
  if (records != nullptr) i.indexer = NamedThread("ucxl-index", [impl = s->impl_.get()] { impl->IndexLoop(); });
  i.UpdateTotals();
  return s;
}

UcxiServices::~UcxiServices() {
  if (!impl_) return;
  impl_->StopIndexer();
  if (impl_->rewrap) impl_->rewrap->Stop();
}

std::string UcxiServices::RewrapProgress() const {
  return impl_->rewrap ? impl_->rewrap->ProgressJson() : std::string("null");
}

ContextStore* UcxiServices::context() const { return impl_->context.get(); }

std::vector<ops::ShutdownStep> UcxiServices::ShutdownSteps(const config::Config& config) {
  (void)config;
  std::weak_ptr<Impl> weak = impl_;
  return {{"ucxl.rewrap", ops::kPriorityStopServices, std::chrono::milliseconds(3000), [weak] {
             if (auto impl = weak.lock()) {
               impl->StopIndexer();
               if (impl->rewrap) impl->rewrap->Stop();
             }
             return Status::Ok();
           }}};
}

std::string UcxiServices::StatusJson(std::string_view) const { return impl_->StatusData().dump(); }

Status UcxiServices::RegisterRoutes(http::Router& router) {
  router.SetErrorFormatter("/ucxi/", ServerError);
  std::shared_ptr<Impl> impl = impl_;
  http::RouteTable routes(router, "ucxi");
  // Every UCXI route may block on the store or the DHT: off the I/O threads.
  auto add = [&](http::Method method, const char* path, const char* permission, const char* summary,
                 http::Response (Impl::*fn)(http::Request&)) {
    routes.Add(method, path, permission, summary, nullptr,
               [impl, fn](http::Request& req, http::Responder respond) {
                 // A key of its own per request: a client-chosen X-Request-ID
                 // must not let two requests share one run.
                 const std::string key = "ucxi:" + std::to_string(impl->next_run.fetch_add(1));
                 impl->runs.Run(key, req.request_id, std::move(respond),
                                [impl, fn, &req] { return ((*impl).*fn)(req); });
               });
  };
  add(http::Method::kGet, "/ucxi/v1/get", "ucxl:read", "resolve a UCXL address", &Impl::Get);
  add(http::Method::kPut, "/ucxi/v1/put", "ucxl:write", "store content at an address (body = content)",
      &Impl::Put);
  add(http::Method::kPost, "/ucxi/v1/post", "ucxl:write", "store content given as JSON", &Impl::Post);
  add(http::Method::kDelete, "/ucxi/v1/delete", "ucxl:write", "delete (append a tombstone)", &Impl::Delete);
  add(http::Method::kPost, "/ucxi/v1/announce", "ucxl:write", "provide an address's content in the DHT",
      &Impl::Announce);
  add(http::Method::kGet, "/ucxi/v1/discover", "ucxl:read", "addresses matching a wildcard pattern",
      &Impl::Discover);
  add(http::Method::kGet, "/ucxi/v1/navigate", "ucxl:read", "step back or forward through versions",
      &Impl::Navigate);
  add(http::Method::kGet, "/ucxi/v1/search", "ucxl:read", "search latest versions", &Impl::Search);
  routes.Add(http::Method::kGet, "/ucxi/v1/status", "ucxl:read", "UCXI status", [impl](http::Request& req) {
    return Success(200, "SUCCESS", "ok", impl->StatusData(), req.request_id);
  });
  return routes.Done();
}

}  // namespace bzzz::ucxl
