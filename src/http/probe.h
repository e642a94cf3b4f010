// Metrics of the HTTP subsystem. Only this class knows their names.
//
//   no_http_requests_total{method,route,status}
//   no_http_request_duration_seconds{method,route}   (histogram)
//   no_http_requests_in_flight
//   no_http_open_connections
//   bzzz_http_connections_refused_total{reason}     (max_connections, per_client)
//   bzzz_errors_total{component="http"}             (5xx responses)
//
// Route labels are templates ("unmatched" for 404s), methods are the known
// verbs or "OTHER", so label sets stay bounded. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace prometheus {
class Registry;
}

namespace bzzz::http {

class Router;

class HttpProbe {
 public:
  // `registry` may be null: every method is then a no-op.
  HttpProbe(prometheus::Registry* registry, const Router& router);
  ~HttpProbe();

  // route_id: Route::id, or kUnmatched.
  void RequestDone(std::string_view method, std::size_t route_id, int status, double seconds);
  void InFlight(std::int64_t value);
  void Connections(std::int64_t value);
  // A connection closed at accept: "max_connections" or "per_client".
  void Refused(std::string_view reason);
  // A request refused by the rate limiter: class "read" or "write".
  void RateLimited(bool write);

  static constexpr std::size_t kUnmatched = static_cast<std::size_t>(-1);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::http
