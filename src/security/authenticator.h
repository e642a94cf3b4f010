// Authentication: turning the credentials of a request into an Identity.
//
// Authenticators are tried in order by the AccessController; each one either
// recognizes the credentials (authenticated or invalid) or passes. Static API
// tokens come first; an OIDC/JWT authenticator plugs in as another
// Authenticator without touching routes. Implementations are immutable after
// construction and safe to call from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "security/identity.h"

namespace bzzz::security {

struct Credentials {
  std::string_view scheme;  // "Bearer" (case as received)
  std::string_view token;
};

struct AuthResult {
  enum class Outcome {
    kNotMine,        // this authenticator does not handle these credentials
    kAuthenticated,  // identity is set
    kInvalid,        // the credentials are recognized as this kind but wrong
  };
  Outcome outcome = Outcome::kNotMine;
  Identity identity;
  std::string reason;  // for kInvalid: why, without echoing the secret
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual std::string_view Name() const = 0;
  virtual AuthResult Authenticate(const Credentials& credentials) const = 0;
};

// Opaque bearer tokens known by a salted hash: the service accounts of the
// configuration (security.api_tokens, `token_hash`, or the older unsalted
// `token_sha256`) and the bootstrap admin token given by the
// BZZZ_ADMIN_TOKEN environment variable. Tokens are never kept in clear:
// the bootstrap token is hashed with a fresh salt on construction. A
// presented token is hashed with each salt and compared in constant time.
class StaticTokenAuthenticator final : public Authenticator {
 public:
  StaticTokenAuthenticator(const std::vector<config::ApiToken>& tokens, std::string_view bootstrap_admin_token);

  std::string_view Name() const override { return "api-token"; }
  AuthResult Authenticate(const Credentials& credentials) const override;
  std::size_t size() const { return salted_.size() + by_sha256_.size(); }

 private:
  // HMAC-SHA256 keyed with one salt, prepared once (authenticator.cc).
  struct PreparedMac;
  struct Salted {
    std::shared_ptr<const PreparedMac> mac;  // keyed with the entry's salt
    std::string digest;                      // raw HMAC-SHA256(salt, token)
    Identity identity;
  };
  std::vector<Salted> salted_;                           // the bootstrap token first
  std::unordered_map<std::string, Identity> by_sha256_;  // unsalted (token_sha256)
};

// The salted hash of an API token, as `security.api_tokens[].token_hash`
// takes it (config::TokenHashProblem checks the form): "hmac-sha256:" +
// hex(salt, 16 random bytes) + ":" + hex(HMAC-SHA256(key = salt, token)).
// `bzzz token hash` prints one.
std::string HashToken(std::string_view token);
// Whether `token` is the one `token_hash` was made from (constant time).
bool TokenMatches(std::string_view token_hash, std::string_view token);

// Why `token` is too weak to guard the API ("" when it is not): shorter
// than 16 characters, or fewer than 8 distinct characters (a repeated or
// trivially patterned string). Applied to tokens given in clear (the
// bootstrap admin token); configured tokens are known only by their hash.
std::string WeakTokenReason(std::string_view token);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// Lower-case hex HMAC-SHA256 of `data` under `key` (webhook signatures).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

}  // namespace bzzz::security
