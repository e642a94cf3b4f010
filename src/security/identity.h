// Who is making a request, as established by authentication.
#pragma once

#include <string>
#include <vector>

namespace bzzz::security {

struct Identity {
  std::string principal = "anonymous";  // token name, user subject, ...
  std::vector<std::string> roles;
  std::string method = "none";          // "api-token", "bootstrap-token", "jwt", "none"
  bool authenticated = false;
};

}  // namespace bzzz::security
