#include "security/access_controller.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <iterator>

#include "base/log.h"
#include "base/log_limiter.h"
#include "security/probe.h"

namespace bzzz::security {

namespace {

constexpr SubsystemLog kLog{"security"};

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
                                   bool rbac_enabled, prometheus::Registry* metrics, FailureThrottleOptions throttle)
    : authenticators_(std::move(authenticators)),
      rbac_(std::move(rbac)),
      rbac_enabled_(rbac_enabled),
      probe_(std::make_unique<SecurityProbe>(metrics)),
      throttle_(throttle) {}

AccessController::~AccessController() = default;

bool AccessController::Throttled(std::string_view client, AccessDecision* decision) const {
  if (client.empty()) return false;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(throttle_mu_);
  auto it = failures_.find(std::string(client));
  if (it == failures_.end() || !it->second.blocked) return false;
  const auto left = it->second.window_start + throttle_.failure_window - now;
  if (left <= std::chrono::steady_clock::duration::zero()) {
    failures_.erase(it);
    return false;
  }
  decision->kind = AccessDecision::Kind::kThrottled;
  decision->retry_after_seconds =
      static_cast<int>(std::chrono::ceil<std::chrono::seconds>(left).count());
  decision->reason = "too many failed authentications from this address: try again in " +
                     std::to_string(decision->retry_after_seconds) + " s";
  return true;
}

void AccessController::CountFailure(std::string_view client) const {
  if (client.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  bool started = false;
  {
    std::lock_guard lock(throttle_mu_);
    if (failures_.size() >= throttle_.max_clients && !failures_.count(std::string(client))) {
      // Drop windows that have ended; if none has, the oldest.
      for (auto i = failures_.begin(); i != failures_.end();) {
        i = now - i->second.window_start > throttle_.failure_window ? failures_.erase(i) : std::next(i);
      }
      if (failures_.size() >= throttle_.max_clients) {
        auto oldest = std::min_element(failures_.begin(), failures_.end(), [](const auto& a, const auto& b) {
          return a.second.window_start < b.second.window_start;
        });
        failures_.erase(oldest);
      }
    }
    Failures& f = failures_[std::string(client)];
    if (f.count == 0 || now - f.window_start > throttle_.failure_window) f = {now, 0, false};
    if (++f.count > throttle_.failure_limit && !f.blocked) {
      f.blocked = true;
      started = true;
    }
  }
  if (started) {
    probe_->SuspiciousActivity();
    kLog.warn("security: auth throttled for client {} after {} failed authentications within {} s", client,
                 throttle_.failure_limit, std::chrono::duration_cast<std::chrono::seconds>(throttle_.failure_window).count());
  }
}

namespace {
// One line per refused request an operator may look for, at most 20 a
// second per kind, never with the token.
LogLimiter auth_failure_lines(20, std::chrono::seconds(1));
LogLimiter denial_lines(20, std::chrono::seconds(1));

std::string_view ClientName(std::string_view client) { return client.empty() ? std::string_view("unknown") : client; }

std::string Suppressed(std::uint64_t n) {
  return n ? " (" + std::to_string(n) + " similar lines suppressed)" : std::string();
}
}  // namespace

Identity AccessController::Identify(std::string_view authorization_header, std::string_view client) const {
  if (Trim(authorization_header).empty()) return {};
  AccessDecision decision = Check(authorization_header, "", client);
  return decision.identity.authenticated ? decision.identity : Identity{};
}

AccessDecision AccessController::Check(std::string_view authorization_header, std::string_view permission,
                                       std::string_view client) const {
  AccessDecision decision;
  probe_->AuthAttempt();
  if (Throttled(client, &decision)) {
    probe_->AuthFailure("throttled");
    return decision;
  }
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
    if (std::uint64_t held = 0; auth_failure_lines.Allow(&held)) {
      kLog.warn("security: auth failure from client {}: malformed Authorization header{}", ClientName(client),
                   Suppressed(held));
    }
    CountFailure(client);
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
    if (std::uint64_t held = 0; auth_failure_lines.Allow(&held)) {
      kLog.warn("security: auth failure from client {}: {}{}", ClientName(client), decision.reason, Suppressed(held));
    }
    CountFailure(client);
    return decision;
  }
  probe_->TokenValidation(true);

  return Authorize(std::move(decision.identity), permission, client);
}

AccessDecision AccessController::Authorize(Identity identity, std::string_view permission,
                                           std::string_view client) const {
  AccessDecision decision;
  decision.identity = std::move(identity);
  const bool allowed = !rbac_enabled_ || rbac_.Allows(decision.identity, permission);
  probe_->RbacDecision(allowed);
  if (!allowed) {
    decision.kind = AccessDecision::Kind::kForbidden;
    decision.reason = "permission '" + std::string(permission) + "' is required";
    if (!permission.empty()) {
      probe_->Violation("http_forbidden");
      if (std::uint64_t held = 0; denial_lines.Allow(&held)) {
        kLog.warn("security: permission denied: principal {} (roles {}) lacks '{}' (client {}){}",
                     decision.identity.principal, fmt::join(decision.identity.roles, ","), permission, ClientName(client),
                     Suppressed(held));
      }
    }
    return decision;
  }
  decision.kind = AccessDecision::Kind::kAllowed;
  return decision;
}

bool AccessController::Allows(const Identity& identity, std::string_view permission) const {
  return identity.authenticated && (!rbac_enabled_ || rbac_.Allows(identity, permission));
}

}  // namespace bzzz::security
