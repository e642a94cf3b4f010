// AccessController: the authentication and authorization step every
// non-public route goes through.
//
// Check() parses the Authorization header, asks each Authenticator in turn,
// and checks the route's permission with RBAC. 401 means no or bad identity,
// 403 means a known identity without the permission. Safe to call from any
// thread.
#pragma once

#include <memory>
#include <string>
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
  enum class Kind { kAllowed, kUnauthenticated, kForbidden };
  Kind kind = Kind::kUnauthenticated;
  Identity identity;
  std::string reason;  // safe to return to the client
};

class AccessController {
 public:
  // `rbac_enabled` false: any authenticated identity may use every route.
  AccessController(std::vector<std::unique_ptr<Authenticator>> authenticators, Rbac rbac, bool rbac_enabled,
                   prometheus::Registry* metrics);
  ~AccessController();

  AccessDecision Check(std::string_view authorization_header, std::string_view permission) const;

  const Rbac& rbac() const { return rbac_; }

 private:
  std::vector<std::unique_ptr<Authenticator>> authenticators_;
  Rbac rbac_;
  bool rbac_enabled_;
  std::unique_ptr<SecurityProbe> probe_;
};

}  // namespace bzzz::security
