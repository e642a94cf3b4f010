// Fuzz target: what the server does with a request line's method and target
// before any handler runs (method parsing, percent-decoding, routing,
// query parameters), and secret redaction of the resulting log text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"
#include "http/router.h"
#include "security/redact.h"

namespace {

const bzzz::http::Router& Routes() {
  static bzzz::http::Router* router = [] {
    auto* r = new bzzz::http::Router();
    for (const char* pattern : {"/health", "/health/checks", "/admin/health/check/:name", "/items/:id/sub/:sub",
                                "/files/*rest", "/ucxi/v1/get"}) {
      for (auto method : {bzzz::http::Method::kGet, bzzz::http::Method::kPost}) {
        bzzz::http::Route route;
        route.method = method;
        route.pattern = pattern;
        route.permission = "system:read";
        route.handler = [](bzzz::http::Request&) { return bzzz::http::Response::Json(200, "{}"); };
        if (!r->Add(std::move(route))) __builtin_trap();
      }
    }
    return r;
  }();
  return *router;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto space = input.find(' ');
  const std::string_view method = input.substr(0, space);
  const std::string_view target = space == std::string_view::npos ? std::string_view{} : input.substr(space + 1);
  bzzz::http::Request req;
  req.method = bzzz::http::ParseMethod(method);
  const auto q = target.find('?');
  auto path = bzzz::http::PercentDecode(target.substr(0, q), false);
  if (!path) return 0;
  req.path = *path;
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  const auto match = Routes().Match(req.method, req.path);
  if (match.kind == bzzz::http::RouteMatch::Kind::kFound && match.route == nullptr) __builtin_trap();
  (void)req.QueryParam("limit");
  (void)bzzz::http::AllowHeader(match.allowed);
  const std::string redacted = bzzz::security::RedactSecrets(input);
  if (redacted.size() > input.size() + 64 * (input.size() / 4 + 1)) __builtin_trap();
  return 0;
}
