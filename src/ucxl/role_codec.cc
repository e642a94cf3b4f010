#include "ucxl/role_codec.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "keys/envelope.h"
#include "keys/keyring.h"

namespace bzzz::ucxl {

namespace {

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

Result<ReadRule> ParseReadRule(const std::string& text) {
  const auto eq = text.rfind('=');
  auto bad = [&](const std::string& why) {
    return InvalidArgument("reader rule '" + text + "': " + why + " (expected '<ucxl pattern> = role[,role...]')");
  };
  if (eq == std::string::npos) return bad("no '='");
  auto pattern = Parse(Trim(text.substr(0, eq)));
  if (!pattern.ok()) return bad(pattern.status().message());
  ReadRule rule{*pattern, {}};
  std::string list = text.substr(eq + 1);
  std::size_t at = 0;
  while (at <= list.size()) {
    const auto comma = list.find(',', at);
    std::string role = Trim(list.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    if (!keys::ValidRoleName(role)) return bad("role '" + role + "' is not a role name");
    if (std::find(rule.roles.begin(), rule.roles.end(), role) == rule.roles.end()) rule.roles.push_back(role);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return rule;
}

}  // namespace

Result<std::vector<ReadRule>> ParseReadRules(const std::vector<std::string>& rules) {
  std::vector<ReadRule> out;
  for (const auto& r : rules) {
    auto rule = ParseReadRule(r);
    if (!rule.ok()) return rule.status();
    out.push_back(std::move(rule).value());
  }
  return out;
}

Status CheckReadRule(const std::string& rule) {
  auto r = ParseReadRule(rule);
  return r.ok() ? Status::Ok() : r.status();
}

RoleCodec::RoleCodec(std::shared_ptr<keys::Keyring> keyring, std::vector<ReadRule> rules,
                     prometheus::Registry* metrics, std::function<bool()> refresh)
    : keyring_(std::move(keyring)), rules_(std::move(rules)), refresh_(std::move(refresh)) {
  if (metrics != nullptr) {
    operations_ = &prometheus::BuildCounter()
                       .Name("bzzz_ucxl_encryption_operations_total")
                       .Help("Role encryption of UCXL content: seal, open and rewrap by result (ok, denied, failed)")
                       .Register(*metrics);
  }
}

void RoleCodec::Count(std::string_view operation, std::string_view result) {
  if (operations_ != nullptr) operations_->Add({{"operation", std::string(operation)}, {"result", std::string(result)}}).Increment();
}

std::vector<std::string> RoleCodec::ReadersOf(const std::string& key) const {
  std::vector<std::string> readers;
  auto address = AddressOfContentKey(key);
  if (address.ok()) {
    auto rule = std::find_if(rules_.begin(), rules_.end(), [&](const ReadRule& r) { return Matches(r.pattern, *address); });
    if (rule != rules_.end()) {
      readers = rule->roles;
    } else if (address->role != kAny) {
      readers.push_back(address->role);
    }
  }
  if (std::find(readers.begin(), readers.end(), kTopAuthorityRole) == readers.end()) {
    readers.emplace_back(kTopAuthorityRole);
  }
  return readers;
}

Result<std::string> RoleCodec::Seal(const std::string& key, std::string content) {
  const auto readers = ReadersOf(key);
  auto sealed = keyring_->Seal(key, content, readers);
  if (!sealed.ok() && sealed.status().code() == StatusCode::kFailedPrecondition && refresh_ && refresh_()) {
    sealed = keyring_->Seal(key, content, readers);
  }
  Count("seal", sealed.ok() ? "ok" : "failed");
  if (!sealed.ok()) return Unavailable("cannot seal " + key + ": " + sealed.status().message());
  return sealed;
}

Result<std::string> RoleCodec::Open(const std::string& key, std::string stored, const Reader& reader) {
  if (!keys::LooksSealed(stored)) {
    // Stored before encryption: the same readers as if it were sealed.
    const auto readers = ReadersOf(key);
    if (!std::any_of(readers.begin(), readers.end(), [&](const std::string& r) { return reader.MayRead(r); })) {
      Count("open", "denied");
      return Status(StatusCode::kPermissionDenied, "the caller holds none of the roles that may read " + key);
    }
    Count("open", "ok");
    return stored;
  }
  auto may_read = [&](const std::string& role) { return reader.MayRead(role); };
  auto opened = keyring_->Open(key, stored, may_read);
  // A reader among the readers, on a node whose grant may not have arrived yet.
  if (!opened.ok() && opened.status().code() == StatusCode::kPermissionDenied && refresh_ &&
      MayOpen(stored, reader) && refresh_()) {
    opened = keyring_->Open(key, stored, may_read);
  }
  if (!opened.ok()) {
    Count("open", opened.status().code() == StatusCode::kPermissionDenied ? "denied" : "failed");
    return Status(opened.status().code(), key + ": " + opened.status().message());
  }
  Count("open", "ok");
  return std::move(opened->plaintext);
}

bool RoleCodec::MayOpen(const std::string& stored, const Reader& reader) {
  if (reader.all) return true;
  // Clear content has no header: nobody but an all-reader sees it until
  // the re-wrap job seals it (the caller cannot tell its key here).
  if (!keys::LooksSealed(stored)) return false;
  const auto readers = keys::Keyring::ReadersOf(stored);
  return std::any_of(readers.begin(), readers.end(), [&](const std::string& r) { return reader.MayRead(r); });
}

std::optional<std::vector<std::string>> RoleCodec::Readers(const std::string& key, const std::string& stored) {
  return keys::LooksSealed(stored) ? keys::Keyring::ReadersOf(stored) : ReadersOf(key);
}

Result<std::optional<std::string>> RoleCodec::Rewrap(const std::string& key, const std::string& stored) {
  auto next = keyring_->Rewrap(key, stored, ReadersOf(key));
  if (next.ok() && next->has_value()) Count("rewrap", "ok");
  if (!next.ok()) Count("rewrap", "failed");
  return next;
}

}  // namespace bzzz::ucxl
