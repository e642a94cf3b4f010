#include "security/probe.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <string>

namespace bzzz::security {

SecurityProbe::SecurityProbe(prometheus::Registry* registry) {
  if (registry == nullptr) return;
  attempts_ = &prometheus::BuildCounter()
                   .Name("no_auth_attempts_total")
                   .Help("Requests that presented credentials or needed an identity")
                   .Register(*registry)
                   .Add({});
  failures_ = &prometheus::BuildCounter()
                   .Name("no_auth_failures_total")
                   .Help("Authentication failures by reason")
                   .Register(*registry);
  auto& validations = prometheus::BuildCounter()
                          .Name("no_auth_token_validations_total")
                          .Help("Bearer token validations by result")
                          .Register(*registry);
  validations_ok_ = &validations.Add({{"result", "valid"}});
  validations_bad_ = &validations.Add({{"result", "invalid"}});
  auto& decisions = prometheus::BuildCounter()
                        .Name("no_rbac_decisions_total")
                        .Help("Authorization decisions by outcome")
                        .Register(*registry);
  rbac_allowed_ = &decisions.Add({{"decision", "allow"}});
  rbac_denied_decisions_ = &decisions.Add({{"decision", "deny"}});
  rbac_denials_ = &prometheus::BuildCounter()
                       .Name("no_rbac_denials_total")
                       .Help("Requests denied for a missing permission")
                       .Register(*registry)
                       .Add({});
  // Registered now so that dashboards and alerts see them from the start.
  for (const char* reason : {"missing", "malformed", "invalid", "throttled"}) failures_->Add({{"reason", reason}});
  violations_ = &prometheus::BuildCounter()
                     .Name("no_security_violations_total")
                     .Help("Detected security violations (forged messages, tampering, policy breaches)")
                     .Register(*registry);
  violations_->Add({{"kind", "http_forbidden"}});
  suspicious_ = &prometheus::BuildCounter()
                     .Name("no_suspicious_activity_total")
                     .Help("Suspicious activity (a client address throttled after a burst of failed authentications)")
                     .Register(*registry)
                     .Add({});
}

void SecurityProbe::Violation(std::string_view kind) {
  if (violations_) violations_->Add({{"kind", std::string(kind)}}).Increment();
}

void SecurityProbe::SuspiciousActivity() {
  if (suspicious_) suspicious_->Increment();
}

void SecurityProbe::AuthAttempt() {
  if (attempts_) attempts_->Increment();
}

void SecurityProbe::AuthFailure(std::string_view reason) {
  if (failures_) failures_->Add({{"reason", std::string(reason)}}).Increment();
}

void SecurityProbe::TokenValidation(bool valid) {
  if (valid && validations_ok_) validations_ok_->Increment();
  if (!valid && validations_bad_) validations_bad_->Increment();
}

void SecurityProbe::RbacDecision(bool allowed) {
  if (!rbac_allowed_) return;
  if (allowed) {
    rbac_allowed_->Increment();
  } else {
    rbac_denied_decisions_->Increment();
    rbac_denials_->Increment();
  }
}

}  // namespace bzzz::security
