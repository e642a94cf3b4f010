// AccessController: the authentication and authorization step every
// non-public route goes through.
//
// Check() parses the Authorization header, asks each Authenticator in turn,
// and checks the route's permission with RBAC. 401 means no or bad identity,
// 403 means a known identity without the permission (counted as a policy
// violation). A client address whose authentications fail more than
// `failure_limit` times within `failure_window` is throttled for the rest
// of that window: every request of it that needs an identity gets 429 with
// Retry-After, whatever it presents (counted as suspicious activity), so
// tokens cannot be guessed at speed. Safe to call from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "security/authenticator.h"
#include "security/rbac.h"

namespace prometheus {
class Registry;
}

namespace bzzz::security {

class SecurityProbe;

struct AccessDecision {
  enum class Kind { kAllowed, kUnauthenticated, kForbidden, kThrottled };
  Kind kind = Kind::kUnauthenticated;
  Identity identity;
  std::string reason;            // safe to return to the client
  int retry_after_seconds = 0;   // kThrottled: when to try again
};

struct FailureThrottleOptions {
  int failure_limit = 20;                           // failed authentications per window and client
  std::chrono::milliseconds failure_window{60000};
  std::size_t max_clients = 100000;                 // addresses tracked at once (oldest windows dropped)
};

class AccessController {
 public:
  // `rbac_enabled` false: any authenticated identity may use every route.
  AccessController(std::vector<std::unique_ptr<Authenticator>> authenticators, Rbac rbac, bool rbac_enabled,
                   prometheus::Registry* metrics, FailureThrottleOptions throttle = {});
  ~AccessController();

  // `client`: the client's IP address ("" when unknown: not throttled).
  AccessDecision Check(std::string_view authorization_header, std::string_view permission,
                       std::string_view client = {}) const;
  // Authenticates without a permission (an optional identity on a public
  // route): the identity when the header carries a valid one, else none.
  // Failures count toward the throttle like Check's.
  Identity Identify(std::string_view authorization_header, std::string_view client = {}) const;

  // The RBAC step alone, for an identity established otherwise (a browser
  // session): kAllowed or kForbidden, counted like Check's.
  AccessDecision Authorize(Identity identity, std::string_view permission, std::string_view client = {}) const;

  const Rbac& rbac() const { return rbac_; }
  // Whether an authenticated `identity` holds `permission` (always, with
  // RBAC off): for handlers whose rule goes beyond the route's permission.
  bool Allows(const Identity& identity, std::string_view permission) const;

 private:
  // kThrottled when `client` is throttled now (reason and retry set).
  bool Throttled(std::string_view client, AccessDecision* decision) const;
  void CountFailure(std::string_view client) const;

  std::vector<std::unique_ptr<Authenticator>> authenticators_;
  Rbac rbac_;
  bool rbac_enabled_;
  std::unique_ptr<SecurityProbe> probe_;
  FailureThrottleOptions throttle_;
  struct Failures {
    std::chrono::steady_clock::time_point window_start;
    int count = 0;
    bool blocked = false;
  };
  mutable std::mutex throttle_mu_;
  mutable std::unordered_map<std::string, Failures> failures_;
};

}  // namespace bzzz::security
