// Metrics of the security subsystem (SPEC §3.10). Only this class knows
// their names and labels.
#pragma once

#include <string_view>

namespace prometheus {
class Registry;
class Counter;
template <typename T>
class Family;
}  // namespace prometheus

namespace bzzz::security {

class SecurityProbe {
 public:
  // `registry` may be null (metrics disabled): every method is then a no-op.
  explicit SecurityProbe(prometheus::Registry* registry);

  void AuthAttempt();
  void AuthFailure(std::string_view reason);  // "missing", "malformed", "invalid", "throttled"
  void TokenValidation(bool valid);
  void RbacDecision(bool allowed);
  // no_security_violations_total{kind}: "http_forbidden" (a known identity
  // asked for a permission it lacks).
  void Violation(std::string_view kind);
  // no_suspicious_activity_total: a client address was throttled.
  void SuspiciousActivity();

 private:
  prometheus::Counter* attempts_ = nullptr;
  prometheus::Family<prometheus::Counter>* failures_ = nullptr;
  prometheus::Counter* validations_ok_ = nullptr;
  prometheus::Counter* validations_bad_ = nullptr;
  prometheus::Counter* rbac_allowed_ = nullptr;
  prometheus::Counter* rbac_denied_decisions_ = nullptr;
  prometheus::Counter* rbac_denials_ = nullptr;
  prometheus::Family<prometheus::Counter>* violations_ = nullptr;
  prometheus::Counter* suspicious_ = nullptr;
};

}  // namespace bzzz::security
