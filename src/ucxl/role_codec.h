// RoleCodec: UCXL content sealed per role (SPEC §3.10; docs/keys.md).
//
// Who may read the content at an address is decided when it is written:
// the first rule of `security.keys.readers` whose pattern matches the
// address ("<pattern> = role,role"), else the address's own role part; the
// top authority level `master` is always a reader. The content is sealed for
// the newest key version of each reader role (keys::Keyring::Seal).
//
// A read opens it with a role the caller holds and this node holds a key
// of: otherwise PermissionDenied (UCXI 403 UCXL-403-FORBIDDEN), never the
// ciphertext and never the plaintext. Content stored in the clear before
// encryption was enabled is served under the same rule (by the policy) and
// sealed by the re-wrap job (ucxl/rewrap.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "ucxl/address.h"
#include "ucxl/context_store.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus
namespace bzzz::keys {
class Keyring;
}

namespace bzzz::ucxl {

inline constexpr std::string_view kTopAuthorityRole = "master";

struct ReadRule {
  Address pattern;
  std::vector<std::string> roles;
};
// "<pattern> = role[,role...]" per rule; InvalidArgument names the rule.
Result<std::vector<ReadRule>> ParseReadRules(const std::vector<std::string>& rules);
Status CheckReadRule(const std::string& rule);  // for the configuration loader

class RoleCodec final : public ContentCodec {
 public:
  // `refresh` (optional) fetches what the keyring lacks (a role's first
  // key, this node's grant) and says whether anything changed: a write or
  // read that finds a key missing asks it once and tries again.
  RoleCodec(std::shared_ptr<keys::Keyring> keyring, std::vector<ReadRule> rules, prometheus::Registry* metrics,
            std::function<bool()> refresh = nullptr);

  // The roles that may read the content at content key `key`.
  std::vector<std::string> ReadersOf(const std::string& key) const;

  Result<std::string> Seal(const std::string& key, std::string content) override;
  Result<std::string> Open(const std::string& key, std::string stored, const Reader& reader) override;
  std::optional<std::vector<std::string>> Readers(const std::string& key, const std::string& stored) override;
  Result<std::optional<std::string>> Rewrap(const std::string& key, const std::string& stored) override;

 private:
  // Whether `reader` is among the readers of sealed `stored`.
  bool MayOpen(const std::string& stored, const Reader& reader);
  void Count(std::string_view operation, std::string_view result);
  std::shared_ptr<keys::Keyring> keyring_;
  std::vector<ReadRule> rules_;
  std::function<bool()> refresh_;
  prometheus::Family<prometheus::Counter>* operations_ = nullptr;
};

}  // namespace bzzz::ucxl
