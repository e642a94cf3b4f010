// Role-based access control: roles grant permissions "resource:action".
//
// A granted permission may use "*" for either part ("tasks:*", "*:read") or
// be "*" alone (everything). Built-in roles (docs/security.md): the nO roles
// system_admin, operator, developer, user, service_account, and the BZZZ
// authority levels master, decision, coordination, suggestion, read_only.
// The configuration may add roles or extend built-in ones.
// Immutable after construction; safe to call from any thread.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "security/identity.h"

namespace bzzz::security {

// True when the granted pattern covers the required permission.
bool PermissionMatches(std::string_view granted, std::string_view required);

class Rbac {
 public:
  explicit Rbac(const std::vector<config::RoleDefinition>& extra_roles = {});

  bool Allows(const Identity& identity, std::string_view permission) const;
  bool HasRole(std::string_view role) const { return roles_.count(std::string(role)) > 0; }
  const std::map<std::string, std::vector<std::string>>& Roles() const { return roles_; }

 private:
  std::map<std::string, std::vector<std::string>> roles_;
};

}  // namespace bzzz::security
