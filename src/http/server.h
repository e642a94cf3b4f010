// Server: the HTTP/1.1 front door of a node (Boost.Beast, C++20 coroutines).
//
// Serves the routes of a Router on a pool of threads with keep-alive, body
// and header limits, read timeouts, X-Request-ID (echoed when well formed,
// generated otherwise), the JSON error envelope, security headers, an access
// log, and a per-request pipeline:
//
//   parse -> request id -> route (404 / 405 + Allow) -> access control
//   (401 / 403) -> middlewares -> handler -> security headers -> metrics,
//   observers and the access log
//
// An optional second listener serves only routes marked `probe` (health and
// metrics), so orchestrators can probe on a separate port.
//
// Shutdown is two-step so that nothing in flight is lost: StopAccepting()
// closes the listeners and makes every later response "Connection: close";
// WaitDrained() waits for requests already being served; Stop() ends the
// threads. All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "http/router.h"

namespace prometheus {
class Registry;
}
namespace bzzz::security {
class AccessController;
class RateLimiter;
class SessionAuthenticator;
}

namespace bzzz::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;               // 0: pick a free port (see Port())
  std::string probe_host;                  // empty: no probe-only listener
  std::uint16_t probe_port = 0;
  int threads = 0;                         // 0: half the hardware threads, at least two
  int blocking_threads = 4;                // worker pool of the routes declared blocking
  std::size_t body_limit_bytes = 1 << 20;
  std::size_t header_limit_bytes = 16 << 10;
  std::chrono::milliseconds read_timeout{30000};       // the body of a request; writing a response
  std::chrono::milliseconds keepalive_timeout{60000};  // idle, until the first byte of a request
  std::chrono::milliseconds header_timeout{10000};     // from that byte to the end of the headers
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_client = 1024;       // open connections of one client address
  bool access_log = true;
  // Peers whose X-Forwarded-For names the client (security/rate_limit.h
  // ClientBehindProxies); empty: the peer is the client.
  std::vector<std::string> trusted_proxies;
  // Token buckets per principal (client address when anonymous) and route
  // class, applied after access control to every route but the probes;
  // null: no rate limit.
  std::shared_ptr<security::RateLimiter> rate_limiter;
  // Browser sessions (src/auth): asked about the Cookie header of a request
  // without an Authorization header; null: cookies authenticate nothing.
  std::shared_ptr<const security::SessionAuthenticator> sessions;
};

// Runs after routing and before the handler. Returning a Response ends the
// request with it (e.g. 429 from a rate limiter).
using Middleware = std::function<std::optional<Response>(Request&, const Route&)>;
// Runs after each response is written. Must be fast and must not throw.
using RequestObserver = std::function<void(const RequestRecord&)>;

class Server {
 public:
  // `access` may be null only if every route is public. `metrics` may be null.
  Server(ServerOptions options, std::shared_ptr<const Router> router,
         std::shared_ptr<const security::AccessController> access, prometheus::Registry* metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Add before Start().
  void Use(Middleware middleware);
  void Observe(RequestObserver observer);

  // Binds the listeners and starts the threads. Fails with Unavailable when an
  // address cannot be bound.
  Status Start();

  std::uint16_t Port() const;       // the bound API port
  std::uint16_t ProbePort() const;  // the bound probe port, 0 if none

  // Closes the listeners; idle keep-alive connections are closed, every later
  // response carries "Connection: close".
  void StopAccepting();
  // Waits until no request is being served. False on timeout.
  bool WaitDrained(std::chrono::milliseconds timeout);
  // Stops the threads and closes every connection. Idempotent.
  void Stop();

  // The I/O threads (ServerOptions::threads, or the default for 0).
  int IoThreads() const;
  std::int64_t InFlight() const;
  std::int64_t OpenConnections() const;
  std::uint64_t RequestsServed() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::http
