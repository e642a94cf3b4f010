#include "http/router.h"

#include <algorithm>

namespace bzzz::http {

namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    const auto next = path.find('/', i);
    const auto end = next == std::string_view::npos ? path.size() : next;
    out.push_back(path.substr(i, end - i));
    i = end;
  }
  return out;
}

}  // namespace

struct Router::Compiled {
  struct Segment {
    enum class Kind { kLiteral, kParam, kRest } kind;
    std::string text;  // literal text or parameter name
  };
  std::vector<Segment> segments;
  bool has_params = false;
  std::string key;  // the template with parameter names erased, for duplicate detection
};

Router::Router() = default;
Router::~Router() = default;

bool Router::Add(Route route, std::string* error) {
  auto fail = [&](std::string message) {
    if (error) *error = route.pattern + ": " + message;
    return false;
  };
  if (route.pattern.empty() || route.pattern.front() != '/') return fail("template must start with '/'");
  if (route.permission.empty()) return fail("route must declare a permission (or kPublic)");
  if (static_cast<bool>(route.handler) == static_cast<bool>(route.async_handler)) {
    return fail("route needs exactly one of handler and async_handler");
  }
  if (route.method == Method::kOther || route.method == Method::kHead) {
    return fail("routes are declared for a concrete method other than HEAD");
  }

  Compiled compiled;
  const auto parts = SplitPath(route.pattern);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto part = parts[i];
    Compiled::Segment seg;
    if (part.front() == ':' || part.front() == '*') {
      if (part.size() == 1) return fail("parameter without a name");
      seg.kind = part.front() == ':' ? Compiled::Segment::Kind::kParam : Compiled::Segment::Kind::kRest;
      if (seg.kind == Compiled::Segment::Kind::kRest && i + 1 != parts.size()) {
        return fail("'*' parameter must be the last segment");
      }
      seg.text = std::string(part.substr(1));
      compiled.has_params = true;
      compiled.key += part.front() == ':' ? "/:" : "/*";
    } else {
      seg.kind = Compiled::Segment::Kind::kLiteral;
      seg.text = std::string(part);
      compiled.key += "/" + seg.text;
    }
    compiled.segments.push_back(std::move(seg));
  }
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    if (routes_[i]->method == route.method && compiled_[i].key == compiled.key) {
      return fail("duplicate route for " + std::string(MethodName(route.method)));
    }
  }

  route.id = routes_.size();
  if (!compiled.has_params) {
    std::string normalized;
    for (const auto& seg : compiled.segments) normalized += "/" + seg.text;
    if (normalized.empty()) normalized = "/";
    static_[normalized].push_back(route.id);
  }
  routes_.push_back(std::make_unique<Route>(std::move(route)));
  compiled_.push_back(std::move(compiled));
  return true;
}

RouteMatch Router::Match(Method method, std::string_view path) const {
  RouteMatch result;
  const Method wanted = method == Method::kHead ? Method::kGet : method;
  auto consider = [&](std::size_t index, std::vector<std::pair<std::string, std::string>> params) {
    const Route& route = *routes_[index];
    if (route.method == wanted) {
      if (result.kind != RouteMatch::Kind::kFound) {
        result.kind = RouteMatch::Kind::kFound;
        result.route = &route;
        result.params = std::move(params);
      }
      return;
    }
    if (result.kind == RouteMatch::Kind::kNotFound) result.kind = RouteMatch::Kind::kMethodNotAllowed;
    result.allowed.push_back(route.method);
    if (route.method == Method::kGet) result.allowed.push_back(Method::kHead);
  };

  // Fast path: a path equal to a parameterless template. Trailing slashes are
  // not significant ("/health/" is "/health").
  std::string_view trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  if (auto it = static_.find(std::string(trimmed)); it != static_.end()) {
    for (auto index : it->second) consider(index, {});
  }
  if (result.kind != RouteMatch::Kind::kFound) {
    const auto parts = SplitPath(path);
    for (std::size_t index = 0; index < compiled_.size(); ++index) {
      const auto& compiled = compiled_[index];
      if (!compiled.has_params) continue;
      std::vector<std::pair<std::string, std::string>> params;
      bool ok = true;
      std::size_t i = 0;
      for (; i < compiled.segments.size() && ok; ++i) {
        const auto& seg = compiled.segments[i];
        if (seg.kind == Compiled::Segment::Kind::kRest) {
          std::string rest;
          for (std::size_t j = i; j < parts.size(); ++j) {
            if (!rest.empty()) rest += '/';
            rest += parts[j];
          }
          params.emplace_back(seg.text, std::move(rest));
          i = parts.size();
          break;
        }
        if (i >= parts.size()) {
          ok = false;
        } else if (seg.kind == Compiled::Segment::Kind::kLiteral) {
          ok = parts[i] == seg.text;
        } else {
          params.emplace_back(seg.text, std::string(parts[i]));
        }
      }
      if (ok && i == parts.size()) consider(index, std::move(params));
    }
  }
  if (result.kind == RouteMatch::Kind::kMethodNotAllowed) {
    result.allowed.push_back(Method::kOptions);
    std::sort(result.allowed.begin(), result.allowed.end());
    result.allowed.erase(std::unique(result.allowed.begin(), result.allowed.end()), result.allowed.end());
  }
  return result;
}

std::string AllowHeader(const std::vector<Method>& methods) {
  std::string out;
  for (auto m : methods) {
    if (!out.empty()) out += ", ";
    out += MethodName(m);
  }
  return out;
}

void Router::SetErrorFormatter(std::string prefix, ErrorFormatter formatter) {
  error_formatters_.emplace_back(std::move(prefix), std::move(formatter));
}

Response Router::MakeError(std::string_view path, int status, std::string_view code, std::string_view message,
                           std::string_view request_id) const {
  for (const auto& [prefix, formatter] : error_formatters_) {
    if (path.substr(0, prefix.size()) == prefix) return formatter(status, code, message, path, request_id);
  }
  return ErrorResponse(status, code, message, request_id);
}

namespace {
Route MakeRoute(Method method, std::string pattern, std::string permission, std::string summary, Handler handler,
                AsyncHandler async, bool blocking) {
  Route route;
  route.method = method;
  route.pattern = std::move(pattern);
  route.permission = std::move(permission);
  route.summary = std::move(summary);
  route.handler = std::move(handler);
  route.async_handler = std::move(async);
  route.blocking = blocking;
  return route;
}
}  // namespace

bool AddRoute(Router& router, Method method, std::string pattern, std::string permission, std::string summary,
              Handler handler, AsyncHandler async, std::string* error) {
  return router.Add(MakeRoute(method, std::move(pattern), std::move(permission), std::move(summary),
                              std::move(handler), std::move(async), false),
                    error);
}


void RouteTable::Add(Route route) {
  std::string error;
  if (!router_.Add(std::move(route), &error) && error_.empty()) error_ = error.empty() ? "route refused" : error;
}

void RouteTable::Add(Method method, std::string pattern, std::string permission, std::string summary,
                     Handler handler, AsyncHandler async) {
  Add(MakeRoute(method, std::move(pattern), std::move(permission), std::move(summary), std::move(handler),
                std::move(async), false));
}

void RouteTable::AddBlocking(Method method, std::string pattern, std::string permission, std::string summary,
                             Handler handler, AsyncHandler async) {
  Add(MakeRoute(method, std::move(pattern), std::move(permission), std::move(summary), std::move(handler),
                std::move(async), true));
}

Status RouteTable::Done() const {
  return error_.empty() ? Status::Ok() : InvalidArgument(name_ + " routes: " + error_);
}

}  // namespace bzzz::http
