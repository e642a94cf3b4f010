// Router: maps (method, path) to a route declared with a path template.
//
// Templates are literal segments and ":name" parameters, e.g.
// "/admin/health/check/:name"; a final "*rest" matches the remaining path.
// Every route declares the permission it needs ("resource:action"), or
// kPublic. A known path with a wrong method is distinguished from an unknown
// path (405 with the allowed methods vs 404). HEAD is served by GET routes.
//
// Routes are added before the server starts; Match is then safe to call from
// any number of threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "http/message.h"

namespace bzzz::http {

// The permission of a route that needs no identity.
inline constexpr std::string_view kPublic = "public";

// Completes an asynchronous request; call exactly once, from any thread.
using Responder = std::function<void(Response)>;
using Handler = std::function<Response(Request&)>;
// The Request stays valid until the Responder has been called.
using AsyncHandler = std::function<void(Request&, Responder)>;

struct Route {
  Method method = Method::kGet;
  std::string pattern;
  std::string permission;  // kPublic or "resource:action"
  Handler handler;         // exactly one of handler / async_handler
  AsyncHandler async_handler;
  bool probe = false;   // also served on the health-only listener
  // The handler may block (the store, the DHT): the server calls it on its
  // worker pool, never on an I/O thread (base/threads.h CheckMayBlock).
  bool blocking = false;
  std::string summary;  // one line for docs and /info

  std::size_t id = 0;  // index in the router, set by Add
};

struct RouteMatch {
  enum class Kind { kFound, kNotFound, kMethodNotAllowed };
  Kind kind = Kind::kNotFound;
  const Route* route = nullptr;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<Method> allowed;  // for kMethodNotAllowed
};

class Router {
 public:
  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Adds a route. Fails (InvalidArgument) on a malformed template, a missing
  // permission or handler, or a duplicate (method, template).
  [[nodiscard]] bool Add(Route route, std::string* error = nullptr);

  RouteMatch Match(Method method, std::string_view path) const;

  // Every route, in the order added.
  const std::vector<std::unique_ptr<Route>>& Routes() const { return routes_; }

  // Errors the server itself answers (404, 405, 401, 403, 413, 400, 500) on
  // paths under `prefix` are built by `formatter` instead of ErrorResponse
  // (UCXI answers in its own envelope). Set before the server starts.
  using ErrorFormatter = std::function<Response(int status, std::string_view code, std::string_view message,
                                                std::string_view path, std::string_view request_id)>;
  void SetErrorFormatter(std::string prefix, ErrorFormatter formatter);
  Response MakeError(std::string_view path, int status, std::string_view code, std::string_view message,
                     std::string_view request_id) const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Route>> routes_;
  std::vector<Compiled> compiled_;
  // Routes without parameters, by path, for the common case.
  std::unordered_map<std::string, std::vector<std::size_t>> static_;
  std::vector<std::pair<std::string, ErrorFormatter>> error_formatters_;
};

// Fills a Route (exactly one of `handler` and `async`) and adds it; the
// shorthand of the subsystems' route tables.
[[nodiscard]] bool AddRoute(Router& router, Method method, std::string pattern, std::string permission,
                            std::string summary, Handler handler, AsyncHandler async = nullptr,
                            std::string* error = nullptr);

// A subsystem's route table: adds routes one after another and keeps the
// first error, reported once by Done() as "<name> routes: <error>".
class RouteTable {
 public:
  RouteTable(Router& router, std::string name) : router_(router), name_(std::move(name)) {}
  void Add(Method method, std::string pattern, std::string permission, std::string summary, Handler handler,
           AsyncHandler async = nullptr);
  // A route whose handler may block (Route::blocking).
  void AddBlocking(Method method, std::string pattern, std::string permission, std::string summary,
                   Handler handler, AsyncHandler async = nullptr);
  Status Done() const;

 private:
  void Add(Route route);
  Router& router_;
  std::string name_;
  std::string error_;
};

// "GET, HEAD, POST" for an Allow header.
std::string AllowHeader(const std::vector<Method>& methods);

}  // namespace bzzz::http
