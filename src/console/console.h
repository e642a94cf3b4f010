// The web console (docs/console.md): a single page served by every
// `bzzz serve` node under /ui/, which reads only the node's public HTTP API
// with the signed-in user's identity. This library serves its files (built
// into the binary, or read from console.assets_dir) and adds the two
// routes the page needs besides the rest of the API:
//
//   GET /ui, /ui/*file                 public       the page, its script and style (ETag, no-cache)
//   GET /api/v1/me                     system:read  who the caller is and which route permissions it holds
//   GET /api/v1/console/history        system:read  the node's recent history (ops/history.h), a long poll
//
// The page's Content-Security-Policy allows only this origin's script,
// style and connections.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "http/router.h"
#include "ops/history.h"

namespace bzzz::console {

struct ConsoleOptions {
  std::string assets_dir;  // empty: the built-in files
  std::shared_ptr<ops::History> history;
  std::string node_id;
  std::string node_name;
  std::string version;
  std::chrono::system_clock::time_point started_at;
};

// Adds the routes above. Call after every other route is added: /api/v1/me
// lists the permissions of the routes the router holds then.
Status RegisterConsoleRoutes(http::Router& router, ConsoleOptions options);

// The files built into the binary (src/console/ui), by name ("app.js").
struct Asset {
  std::string_view name;
  std::string_view content_type;
  std::string_view body;
};
std::span<const Asset> BuiltinAssets();

// The Content-Security-Policy the console's files are served with.
inline constexpr std::string_view kConsolePolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

}  // namespace bzzz::console
