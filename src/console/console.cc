#include "console/console.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/hex.h"

namespace bzzz::console {

namespace {

using http::Method;
using http::Request;
using http::Response;
using nlohmann::json;

// The largest file served from console.assets_dir.
constexpr std::size_t kMaxAssetBytes = 4 << 20;

std::string ETagOf(std::string_view body) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return "\"" + HexOf(&h, sizeof h) + "\"";
}

bool SafeName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string_view ContentTypeOf(std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot);
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  return "";
}

// A file as served: its bytes, type and validator.
struct Served {
  std::string content_type;
  std::string body;
  std::string etag;
};

Response Serve(const Request& req, const Served& file) {
  Response r;
  r.headers.Set("Content-Security-Policy", std::string(kConsolePolicy));
  // Revalidated at every load (a new binary serves new files at once); an
  // unchanged file costs a 304.
  r.headers.Set("Cache-Control", "no-cache");
  r.headers.Set("ETag", file.etag);
  if (const std::string* match = req.headers.Find("If-None-Match"); match && *match == file.etag) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  r.status = 200;
  r.content_type = file.content_type;
  r.body = file.body;
  return r;
}

Response NotFound(const Request& req) {
  return http::ErrorResponse(404, "not_found", "no console file " + req.path, req.request_id);
}

}  // namespace

Status RegisterConsoleRoutes(http::Router& router, ConsoleOptions options) {
  if (!options.history) return InvalidArgument("console: a history is required");
  http::RouteTable routes(router, "console");

  // The files: built in (with validators computed once) or read from a
  // directory at every request (for working on the console).
  auto builtin = std::make_shared<std::map<std::string, Served, std::less<>>>();
  for (const Asset& a : BuiltinAssets()) {
    (*builtin)[std::string(a.name)] =
        Served{std::string(a.content_type), std::string(a.body), ETagOf(a.body)};
  }
  const std::string dir = options.assets_dir;
  auto serve = [builtin, dir](Request& req) -> Response {
    std::string name(req.Param("file"));
    if (name.empty()) name = "index.html";
    if (!SafeName(name)) return NotFound(req);
    if (dir.empty()) {
      const auto it = builtin->find(name);
      return it == builtin->end() ? NotFound(req) : Serve(req, it->second);
    }
    const std::string_view type = ContentTypeOf(name);
    const std::string path = dir + "/" + name;
    std::error_code ec;
    if (type.empty() || !std::filesystem::is_regular_file(path, ec)) return NotFound(req);
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFound(req);
    std::ostringstream body;
    body << in.rdbuf();
    if (body.str().size() > kMaxAssetBytes) return NotFound(req);
    Served file{std::string(type), body.str(), ""};
    file.etag = ETagOf(file.body);
    return Serve(req, file);
  };
  const auto page = [serve](Request& req) {
    // "/ui" and "/ui/" are one path to the router; the page's relative
    // links need the slash.
    if (!req.path.ends_with('/')) {
      Response r = Response::Text(301, "");
      r.headers.Set("Location", "/ui/");
      return r;
    }
    return serve(req);
  };
  // Files read from a directory are read off the I/O threads.
  if (dir.empty()) {
    routes.Add(Method::kGet, "/ui", std::string(http::kPublic), "the web console's page", page);
    routes.Add(Method::kGet, "/ui/*file", std::string(http::kPublic), "the web console's files", serve);
  } else {
    routes.AddBlocking(Method::kGet, "/ui", std::string(http::kPublic), "the web console's page", page);
    routes.AddBlocking(Method::kGet, "/ui/*file", std::string(http::kPublic), "the web console's files",
                       serve);
  }

  // Who the caller is, and which of the router's permissions it holds: the
  // page shows a control only to a caller whose permissions allow it.
  std::set<std::string> permissions = {"system:read"};  // the console's own routes
  for (const auto& route : router.Routes()) {
    if (route->permission != http::kPublic) permissions.insert(route->permission);
  }
  const auto started_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options.started_at.time_since_epoch()).count();
  routes.Add(Method::kGet, "/api/v1/me", "system:read",
             "the caller's identity and the route permissions it holds",
             [permissions = std::move(permissions), options, started_ms](Request& req) {
               json held = json::array();
               for (const auto& p : permissions) {
                 if (req.Allowed(p)) held.push_back(p);
               }
               const json body = {{"principal", req.identity.principal}, {"roles", req.identity.roles},
                                  {"method", req.identity.method},       {"permissions", std::move(held)},
                                  {"node_id", options.node_id},          {"node_name", options.node_name},
                                  {"version", options.version},          {"started_ms", started_ms}};
               return Response::Json(200, body.dump());
             });

  routes.Add(Method::kGet, "/api/v1/console/history", "system:read",
             "the node's recent history: samples after ?after=N, waiting up to wait_ms for one", nullptr,
             [history = options.history](Request& req, http::Responder respond) {
               auto after = req.IntParam("after", 0, 0, INT64_MAX);
               auto wait = req.IntParam("wait_ms", 0, 0, 30000);
               if (!after.ok() || !wait.ok()) {
                 respond(http::ErrorResponse(
                     400, "bad_request", (!after.ok() ? after : wait).status().message(), req.request_id));
                 return;
               }
               history->Watch(static_cast<std::uint64_t>(*after), std::chrono::milliseconds(*wait),
                              [respond](std::string body) { respond(Response::Json(200, std::move(body))); });
             });
  return routes.Done();
}

}  // namespace bzzz::console
