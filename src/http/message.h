// HTTP request and response as the rest of bzzz sees them.
//
// These types carry no Beast types, so handlers compile without Beast. The
// server (http/server.h) converts from and to the wire. Values, not
// synchronized: a Request belongs to the one request being served.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "security/identity.h"

namespace bzzz::http {

enum class Method { kGet, kHead, kPost, kPut, kPatch, kDelete, kOptions, kOther };

std::string_view MethodName(Method method);  // "GET", ... "OTHER"
Method ParseMethod(std::string_view text);   // unknown methods give kOther

// Header list with case-insensitive names, in arrival order.
class Headers {
 public:
  // The first value of the header, or nullptr.
  const std::string* Find(std::string_view name) const;
  // Replaces every value of the header with this one.
  void Set(std::string name, std::string value);
  void Add(std::string name, std::string value);
  const std::vector<std::pair<std::string, std::string>>& All() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

struct Request {
  Method method = Method::kGet;
  std::string method_text;  // as received, e.g. "PURGE" when method is kOther
  std::string target;  // as received: path and query
  std::string path;    // percent-decoded path, without the query
  std::string query;   // raw query string, without '?'
  Headers headers;
  std::string body;
  std::string remote_address;  // "127.0.0.1:53122"
  std::string client_address;  // "127.0.0.1": what per-client limits count

  // Filled by the server before the handler runs.
  std::string request_id;
  std::string route;  // the matched route template, e.g. "/admin/health/check/:name"
  std::vector<std::pair<std::string, std::string>> params;  // template parameters
  security::Identity identity;  // "anonymous" on public routes
  // Whether the caller holds `permission` beyond the route's own (set by
  // the server; false when unset): Allowed() asks it.
  const std::function<bool(const security::Identity&, std::string_view)>* permits = nullptr;
  bool Allowed(std::string_view permission) const { return permits != nullptr && (*permits)(identity, permission); }
  // Headers the pipeline adds to whatever response the request gets
  // (X-RateLimit-*), unless the response sets them itself.
  Headers response_headers;

  // The value of a template parameter, or "" when absent.
  std::string_view Param(std::string_view name) const;
  // The percent-decoded value of a query parameter, if present.
  std::optional<std::string> QueryParam(std::string_view name) const;
  // An integer query parameter in [lo, hi]; `fallback` when absent;
  // InvalidArgument ("limit: an integer 1..1000") otherwise.
  Result<long long> IntParam(std::string_view name, long long fallback, long long lo, long long hi) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;

  // A JSON response; `json` must already be serialized JSON.
  static Response Json(int status, std::string json);
  static Response Text(int status, std::string text, std::string content_type = "text/plain; charset=utf-8");
};

// What the server knows about one finished request; handed to the server's
// request observers (ops::RequestLog, access logs).
struct RequestRecord {
  std::chrono::system_clock::time_point time;  // when the request arrived
  std::string_view method;
  std::string_view route;      // template, or "unmatched"
  std::string_view path;
  int status = 0;
  std::chrono::nanoseconds duration{0};
  std::string_view request_id;
  std::string_view principal;
  std::string_view remote_address;
  std::size_t response_bytes = 0;
  std::string_view client_address;  // behind trusted proxies, the client they name
  std::string_view error_body;      // the response body when status >= 400, else empty
};

// The JSON error envelope of SPEC §3.2:
// {"error":{"code":"not_found","message":"...","request_id":"..."}}
Response ErrorResponse(int status, std::string_view code, std::string_view message,
                       std::string_view request_id);

// ErrorResponse for a failed Status. A Status carrying a subsystem's reason
// (base/errc.h) gets the HTTP status its category gives; otherwise by the
// generic code: InvalidArgument 400, Unauthenticated 401,
// PermissionDenied 403, NotFound 404, AlreadyExists/Conflict/
// FailedPrecondition 409, ResourceExhausted 429 (with Retry-After: 1),
// Unavailable 503, Timeout 504, anything else 500. The error code is
// "bad_request" for 400, "too_many_requests" for 429, else StatusCodeName.
Response ErrorFromStatus(const Status& status, std::string_view request_id);
// The HTTP status of that mapping: the one mapping of Status to HTTP of the
// node's JSON API (UCXI answers in its own envelope, ucxi_api.cc).
int HttpStatusOf(const Status& status);

// The optional {"timeout_ms": N} body of the probe routes (1 to 60000):
// `fallback` for an empty body, InvalidArgument (naming the problem) for
// anything else that is not such an object.
Result<std::chrono::milliseconds> TimeoutFromBody(std::string_view body, std::chrono::milliseconds fallback);

// Percent-decodes `in` ('+' is a space when form_encoding). Returns nullopt
// on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view in, bool form_encoding);
// Percent-encodes everything but RFC 3986 unreserved characters (for a
// path segment, a query value or a form field).
std::string PercentEncode(std::string_view in);

}  // namespace bzzz::http
