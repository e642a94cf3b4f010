// JSON Web Tokens signed by an OIDC issuer (RFC 7519, RFC 7515), verified
// with OpenSSL against the issuer's published keys (a JWKS, RFC 7517).
//
// The algorithm comes from the key, never from the token: each key of a
// JwkSet is bound to the one algorithm its type allows (an RSA key of at
// least 2048 bits to RS256, an EC P-256 key to ES256), and a token whose
// header names another algorithm is refused before any signature is
// checked. So `alg: none`, HS256 "signed" with the public key as an HMAC
// secret, and an RS256 header on an EC key all fail, whatever a library's
// dispatch on the header would have done. Claims are checked after the
// signature: issuer, audience, exp (required), nbf and iat, each with the
// configured leeway, and a subject.
//
// Pure: no I/O, no clock (the caller passes the time), safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "base/errc.h"
#include "base/status.h"

namespace bzzz::security {

// Why a token was refused (base/errc.h); the HTTP status is 401 for all.
// `JwtReasonName` gives the bounded label of the validation metric.
enum class JwtErrc {
  kMalformed = 1,        // not three base64url parts of JSON, or too long
  kAlgorithm,            // alg none/HS*/unknown, or not the algorithm of the key
  kUnknownKey,           // no key of the issuer has the token's kid
  kBadSignature,         // the signature does not verify
  kExpired,              // exp (plus leeway) has passed
  kNotYetValid,          // nbf or iat (minus leeway) is in the future
  kWrongIssuer,          // iss is not the configured issuer
  kWrongAudience,        // aud does not contain the configured audience
  kMissingClaim,         // exp or sub missing or of the wrong type
};
const ErrorCategory& JwtCategory();
inline std::error_code make_error_code(JwtErrc e) { return {static_cast<int>(e), JwtCategory()}; }
std::string_view JwtReasonName(JwtErrc e);

// The issuer's signing keys.
class JwkSet {
 public:
  struct Key;
  JwkSet();
  ~JwkSet();
  JwkSet(JwkSet&&) noexcept;
  JwkSet& operator=(JwkSet&&) noexcept;

  // Reads a JWKS document ({"keys": [...]}). A key that cannot be used (not
  // for signatures, a type other than RSA and EC P-256, an RSA modulus under
  // 2048 bits, a point not on the curve, an `alg` that does not fit its
  // type, a kid seen before) is left out and described in `skipped`.
  // InvalidArgument when the text is not a JWKS.
  static Result<JwkSet> Parse(std::string_view json, std::vector<std::string>* skipped = nullptr);

  std::size_t size() const { return keys_.size(); }
  bool HasKid(std::string_view kid) const;
  // "kid (RS256)" for each key, for status output.
  std::vector<std::string> Describe() const;

 private:
  friend class JwtVerifier;
  std::vector<std::shared_ptr<const Key>> keys_;
};

struct JwtPolicy {
  std::string issuer;
  std::string audience;
  std::int64_t leeway_seconds = 60;
  // Where the roles are: a claim name, or a dotted path into nested objects
  // ("realm_access.roles"); its value is an array of strings or one string.
  std::string role_claim = "roles";
  std::size_t max_token_bytes = 8192;
};

struct JwtClaims {
  std::string subject;
  std::string kid;
  std::string algorithm;
  std::string name;  // preferred_username, else email, else ""
  std::vector<std::string> roles;  // as the token states them (not mapped)
  std::int64_t expires_at = 0;
  std::string nonce;   // "" when absent (ID tokens of a sign-in carry one)
  std::string email;   // "" when absent
};

class JwtVerifier {
 public:
  // The token's claims when its signature verifies with one of `keys` and
  // its claims satisfy `policy` at `now_seconds`; else a Status whose reason
  // is a JwtErrc.
  static Result<JwtClaims> Verify(std::string_view token, const JwkSet& keys, const JwtPolicy& policy,
                                  std::int64_t now_seconds);
  // The kid of a token's header without verifying anything ("" when absent
  // or unreadable): to notice a key the issuer added since the last fetch.
  static std::string PeekKid(std::string_view token);
};

}  // namespace bzzz::security

template <>
struct std::is_error_code_enum<bzzz::security::JwtErrc> : std::true_type {};
