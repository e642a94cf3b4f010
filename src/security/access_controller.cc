#include "security/access_controller.h"

#include <cctype>

#include "security/probe.h"

namespace bzzz::security {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsBearer(std::string_view scheme) {
  constexpr std::string_view kBearer = "bearer";
  if (scheme.size() != kBearer.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(scheme[i])) != kBearer[i]) return false;
  }
  return true;
}

}  // namespace

AccessController::AccessController(std::vector<std::unique_ptr<Authenticator>> authenticators, Rbac rbac,
                                   bool rbac_enabled, prometheus::Registry* metrics)
    : authenticators_(std::move(authenticators)),
      rbac_(std::move(rbac)),
      rbac_enabled_(rbac_enabled),
      probe_(std::make_unique<SecurityProbe>(metrics)) {}

AccessController::~AccessController() = default;

AccessDecision AccessController::Check(std::string_view authorization_header, std::string_view permission) const {
  AccessDecision decision;
  probe_->AuthAttempt();
  const auto header = Trim(authorization_header);
  if (header.empty()) {
    probe_->AuthFailure("missing");
    decision.reason = "authentication required: send Authorization: Bearer <token>";
    return decision;
  }
  const auto space = header.find(' ');
  const auto scheme = header.substr(0, space);
  const auto token = space == std::string_view::npos ? std::string_view{} : Trim(header.substr(space + 1));
  if (!IsBearer(scheme) || token.empty() || token.size() > 8192) {
    probe_->AuthFailure("malformed");
    decision.reason = "malformed Authorization header: expected 'Bearer <token>'";
    return decision;
  }

  const Credentials credentials{scheme, token};
  bool recognized = false;
  for (const auto& authenticator : authenticators_) {
    AuthResult result = authenticator->Authenticate(credentials);
    if (result.outcome == AuthResult::Outcome::kNotMine) continue;
    recognized = true;
    if (result.outcome == AuthResult::Outcome::kInvalid) {
      decision.reason = "invalid credentials: " + result.reason;
      break;
    }
    decision.identity = std::move(result.identity);
    decision.identity.authenticated = true;
    break;
  }
  if (!decision.identity.authenticated) {
    probe_->TokenValidation(false);
    probe_->AuthFailure("invalid");
    if (!recognized) decision.reason = "invalid credentials: no authenticator accepts this token";
    return decision;
  }
  probe_->TokenValidation(true);

  const bool allowed = !rbac_enabled_ || rbac_.Allows(decision.identity, permission);
  probe_->RbacDecision(allowed);
  if (!allowed) {
    decision.kind = AccessDecision::Kind::kForbidden;
    decision.reason = "permission '" + std::string(permission) + "' is required";
    return decision;
  }
  decision.kind = AccessDecision::Kind::kAllowed;
  return decision;
}

}  // namespace bzzz::security
