#include "security/authenticator.h"

#include <openssl/evp.h>

#include <algorithm>

namespace bzzz::security {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

StaticTokenAuthenticator::StaticTokenAuthenticator(const std::vector<config::ApiToken>& tokens,
                                                   std::string_view bootstrap_admin_token) {
  for (const auto& token : tokens) {
    Identity identity;
    identity.principal = token.name;
    identity.roles = token.roles;
    identity.method = "api-token";
    identity.authenticated = true;
    by_hash_.emplace(token.token_sha256, std::move(identity));
  }
  if (!bootstrap_admin_token.empty()) {
    Identity admin;
    admin.principal = "bootstrap-admin";
    admin.roles = {"system_admin"};
    admin.method = "bootstrap-token";
    admin.authenticated = true;
    by_hash_[Sha256Hex(bootstrap_admin_token)] = std::move(admin);
  }
}

AuthResult StaticTokenAuthenticator::Authenticate(const Credentials& credentials) const {
  AuthResult result;
  // JWTs (three dot-separated parts) are left to the JWT authenticator.
  if (std::count(credentials.token.begin(), credentials.token.end(), '.') == 2) return result;
  // Hashing first means the lookup never compares secrets directly.
  const auto it = by_hash_.find(Sha256Hex(credentials.token));
  if (it == by_hash_.end()) {
    result.outcome = AuthResult::Outcome::kInvalid;
    result.reason = "unknown or revoked token";
    return result;
  }
  result.outcome = AuthResult::Outcome::kAuthenticated;
  result.identity = it->second;
  return result;
}

std::string WeakTokenReason(std::string_view token) {
  if (token.size() < 16) return "it has " + std::to_string(token.size()) + " characters, at least 16 are needed";
  bool seen[256] = {};
  int distinct = 0;
  for (unsigned char c : token) {
    if (!seen[c]) {
      seen[c] = true;
      ++distinct;
    }
  }
  if (distinct < 8) return "it uses only " + std::to_string(distinct) + " distinct characters, at least 8 are needed";
  return "";
}

}  // namespace bzzz::security
