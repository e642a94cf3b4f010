// OIDC bearer tokens (SPEC §3.10): the issuer's keys, kept fresh, and the
// Authenticator that accepts the JWTs they sign (jwt.h).
//
// OidcKeySource owns one thread that fetches the issuer's JWKS: its URL from
// security.oidc.jwks_uri, or discovered from the issuer's
// /.well-known/openid-configuration (whose `issuer` must be the configured
// one exactly). In the manner of Envoy's jwt_authn remote JWKS: fetched at
// start, again every `refresh` (security.oidc.jwks_refresh), after a failure
// again after `retry_after_failure` doubling up to `refresh` (the last good
// keys stay in use meanwhile), and at once when a token names a kid the
// keys do not have, at most once per `min_refetch` (a client sending made-up
// kids cannot make the node hammer the issuer). Nothing on the request
// path waits for a fetch: a token signed by a key published since the last
// fetch is refused once, with a reason saying the keys are being refreshed,
// and accepted as soon as they are.
//
// OidcAuthenticator handles every bearer token that looks like a JWT
// (three dot-separated parts; StaticTokenAuthenticator leaves those alone).
// The principal is the token's `sub`; roles come from the claim
// security.oidc.role_claim mapped by security.oidc.role_mapping: when the
// mapping is empty, claim values that name a role of this node are used
// as they are; when it is set, only mapped values grant roles.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "security/authenticator.h"
#include "security/jwt.h"
#include "security/rbac.h"

namespace bzzz::security {

struct OidcOptions {
  config::OidcConfig config;
  // GET `url`; the body of a 200 answer, else an error (node: http::Call).
  std::function<Result<std::string>(const std::string& url)> fetch;
  std::chrono::milliseconds min_refetch{10000};
  std::chrono::milliseconds retry_after_failure{2000};
  // Seconds since the epoch (the real clock unless a test sets it).
  std::function<std::int64_t()> now_seconds;
};

// What discovery says about the provider's browser endpoints (empty until
// discovered; discovery runs when security.oidc.client_id is set, even
// with jwks_uri configured).
struct ProviderEndpoints {
  std::string authorization_endpoint;
  std::string token_endpoint;
  std::string end_session_endpoint;  // "" when the provider has none
  bool client_secret_post = false;   // the token endpoint takes the secret in the body, not Basic
};

class OidcKeySource {
 public:
  // Starts the fetching thread (the first fetch happens on it).
  static std::shared_ptr<OidcKeySource> Start(OidcOptions options);
  ~OidcKeySource();  // Stop()
  void Stop();

  // The keys of the last good fetch (null before the first).
  std::shared_ptr<const JwkSet> Keys() const;
  ProviderEndpoints Endpoints() const;
  // A token named a kid the keys lack: fetch soon (rate-limited).
  void RequestRefresh();
  // Blocks until keys are loaded (tests, start-up logs); false on timeout.
  bool WaitForKeys(std::chrono::milliseconds timeout) const;

  struct Snapshot {
    std::string jwks_uri;             // "" until known
    std::vector<std::string> keys;    // "kid (alg)"
    std::int64_t last_success = 0;    // unix seconds; 0: never
    std::int64_t last_attempt = 0;
    std::string last_error;           // of the last attempt; "" when it succeeded
    std::uint64_t fetches = 0, failures = 0;
  };
  Snapshot GetSnapshot() const;
  const OidcOptions& options() const { return options_; }
  std::int64_t Now() const { return options_.now_seconds(); }

 private:
  explicit OidcKeySource(OidcOptions options);
  void Run();
  Status FetchOnce();

  OidcOptions options_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  bool refresh_requested_ = false;
  std::chrono::steady_clock::time_point last_fetch_{};
  std::shared_ptr<const JwkSet> keys_;
  std::string discovered_jwks_uri_;
  ProviderEndpoints endpoints_;
  Snapshot snapshot_;
  std::thread thread_;
};

class OidcAuthenticator final : public Authenticator {
 public:
  OidcAuthenticator(std::shared_ptr<OidcKeySource> keys, const Rbac& rbac);
  std::string_view Name() const override { return "oidc"; }
  AuthResult Authenticate(const Credentials& credentials) const override;

  // The roles a token's role claim values grant (see the header comment).
  std::vector<std::string> MapRoles(const std::vector<std::string>& claimed) const;

 private:
  std::shared_ptr<OidcKeySource> keys_;
  JwtPolicy policy_;
  std::map<std::string, std::vector<std::string>> mapping_;  // claim value → roles
  std::vector<std::string> known_roles_;
};

}  // namespace bzzz::security
