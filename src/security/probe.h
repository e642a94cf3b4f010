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
  void AuthFailure(std::string_view reason);  // "missing", "malformed", "invalid"
  void TokenValidation(bool valid);
  void RbacDecision(bool allowed);

 private:
  prometheus::Counter* attempts_ = nullptr;
  prometheus::Family<prometheus::Counter>* failures_ = nullptr;
  prometheus::Counter* validations_ok_ = nullptr;
  prometheus::Counter* validations_bad_ = nullptr;
  prometheus::Counter* rbac_allowed_ = nullptr;
  prometheus::Counter* rbac_denied_decisions_ = nullptr;
  prometheus::Counter* rbac_denials_ = nullptr;
};

}  // namespace bzzz::security
