#include "security/rbac.h"

#include <algorithm>

namespace bzzz::security {

namespace {

// The built-in roles. Permissions are "resource:action"; see docs/security.md
// for the list of resources.
const std::map<std::string, std::vector<std::string>>& BuiltinRoles() {
  static const std::map<std::string, std::vector<std::string>> roles = {
      // nO roles
      {"system_admin", {"*"}},
      {"operator",
       {"system:read", "admin:*", "health:*", "debug:read", "metrics:read", "tasks:*", "agents:*", "dlq:*",
        "election:*", "p2p:*", "dht:*", "cluster:*", "ucxl:read", "slurp:read", "audit:read", "keys:read"}},
      {"developer",
       {"system:read", "health:read", "debug:read", "metrics:read", "tasks:*", "agents:read", "dlq:read",
        "election:read", "p2p:read", "dht:read", "cluster:read", "ucxl:*", "hmmm:*", "slurp:read"}},
      {"user", {"system:read", "health:read", "tasks:read", "tasks:write", "ucxl:read", "hmmm:read"}},
      {"service_account",
       {"system:read", "health:read", "tasks:*", "agents:read", "ucxl:*", "hmmm:*", "slurp:write", "p2p:read",
        "dht:read", "election:read"}},
      // BZZZ authority levels for context
      {"master", {"*"}},
      {"decision", {"system:read", "ucxl:*", "hmmm:*", "slurp:*", "tasks:*", "election:read"}},
      {"coordination", {"system:read", "ucxl:read", "ucxl:write", "hmmm:*", "tasks:*", "election:read"}},
      {"suggestion", {"system:read", "ucxl:read", "hmmm:read", "hmmm:write", "tasks:read"}},
      // Reads everything about the work, nothing about the node's
      // configuration or traffic (admin:read, debug:read).
      {"read_only",
       {"system:read", "health:read", "metrics:read", "tasks:read", "agents:read", "dlq:read", "election:read",
        "p2p:read", "dht:read", "cluster:read", "ucxl:read", "hmmm:read", "slurp:read"}},
  };
  return roles;
}

bool PartMatches(std::string_view granted, std::string_view required) {
  return granted == "*" || granted == required;
}

}  // namespace

bool PermissionMatches(std::string_view granted, std::string_view required) {
  if (granted == "*") return true;
  const auto g = granted.find(':');
  const auto r = required.find(':');
  if (g == std::string_view::npos || r == std::string_view::npos) return granted == required;
  return PartMatches(granted.substr(0, g), required.substr(0, r)) &&
         PartMatches(granted.substr(g + 1), required.substr(r + 1));
}

Rbac::Rbac(const std::vector<config::RoleDefinition>& extra_roles) : roles_(BuiltinRoles()) {
  for (const auto& role : extra_roles) {
    auto& permissions = roles_[role.name];
    for (const auto& p : role.permissions) {
      if (std::find(permissions.begin(), permissions.end(), p) == permissions.end()) permissions.push_back(p);
    }
  }
}

bool Rbac::Allows(const Identity& identity, std::string_view permission) const {
  for (const auto& role : identity.roles) {
    const auto it = roles_.find(role);
    if (it == roles_.end()) continue;
    for (const auto& granted : it->second) {
      if (PermissionMatches(granted, permission)) return true;
    }
  }
  return false;
}

}  // namespace bzzz::security
