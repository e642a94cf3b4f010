// Browser sign-in (SPEC §3.10): the OpenID Connect authorization code flow
// with PKCE, and the sessions it opens.
//
//   GET  /auth/login     302 to the provider's authorization endpoint with a
//                        fresh state, nonce and PKCE challenge (S256); the
//                        state is also set in a short-lived cookie, so the
//                        callback completes only in the browser that began
//                        the sign-in (login CSRF). ?return_to=/path (local
//                        paths only) is where the callback sends the browser.
//   GET  /auth/callback  checks state (cookie and pending, used once), trades
//                        the code and the PKCE verifier for tokens at the
//                        token endpoint (client secret basic or post, as
//                        discovery says), verifies the ID token (signature
//                        by the provider's keys, issuer, audience = client
//                        id, expiry, nonce), maps its roles like bearer
//                        tokens, opens a session and sets its cookie.
//   POST /auth/logout    ends the session (CSRF token required) and clears
//                        the cookies; names the provider's end_session
//                        endpoint when it has one.
//   GET  /auth/userinfo  the session's user: subject, name, email, roles.
//   GET  /auth/status    whether sign-in is available and who is signed in.
//
// Cookies: bzzz_session (HttpOnly, SameSite=Lax, Path=/), bzzz_csrf (the
// CSRF token, readable by the page's script, SameSite=Strict), bzzz_login
// (HttpOnly, Path=/auth, 10 minutes); all Secure when redirect_uri is
// https. A request that carries no Authorization header is authenticated
// by its session cookie (SessionAuthenticator, called by the HTTP server);
// a state-changing one (POST, PUT, PATCH, DELETE) must also send the CSRF
// token in X-CSRF-Token, or it gets 403.
//
// Sessions live in memory, per node: a restart signs everyone out, and a
// browser signs in to each node it talks to. Pending sign-ins and sessions
// are bounded (the oldest go first). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "config/config.h"
#include "ops/component.h"
#include "security/oidc.h"
#include "security/rbac.h"
#include "security/session.h"

namespace prometheus {
class Registry;
}

namespace bzzz::auth {

struct SignInOptions {
  config::OidcConfig oidc;  // issuer, client_id, client_secret, redirect_uri, leeway, roles
  std::chrono::seconds session_ttl{8 * 3600};
  std::size_t max_sessions = 100000;
  std::size_t max_pending = 10000;
  std::chrono::seconds pending_ttl{600};
  // POSTs a form to a whole URL with the extra header lines (an
  // Authorization: Basic for the client secret); (status, body) of any
  // answer. The node uses http::Call.
  std::function<Result<std::pair<int, std::string>>(const std::string& url, const std::string& form,
                                                    const std::vector<std::string>& headers)>
      post_form;
  // Seconds since the epoch (the real clock unless a test sets it).
  std::function<std::int64_t()> now_seconds;
};

class SignIn final : public ops::Component, public security::SessionAuthenticator {
 public:
  // `keys`: the provider's keys and endpoints (null: sign-in unavailable,
  // the routes say why). `rbac` maps the ID token's roles.
  SignIn(SignInOptions options, std::shared_ptr<security::OidcKeySource> keys, const security::Rbac& rbac,
         prometheus::Registry* metrics);
  ~SignIn() override;

  // Whether client_id, client_secret and redirect_uri are configured.
  bool Configured() const;

  security::SessionCheck Check(std::string_view cookie_header, bool unsafe,
                               std::string_view csrf_header) const override;

  // A sign-in that completed or failed (the node's audit log listens).
  struct Event {
    bool signed_in = false;
    std::string principal;  // the subject, when known
    std::string reason;     // why it failed
    std::string client;
  };
  void OnEvent(std::function<void(const Event&)> listener);

  std::string_view Name() const override { return "auth"; }
  Status RegisterRoutes(http::Router& router) override;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The value of cookie `name` in a Cookie header, or "".
std::string CookieValue(std::string_view cookie_header, std::string_view name);
// A path on this node to send the browser to after sign-in: `requested`
// when it is a local absolute path ("/ui/tasks"), else "/".
std::string SafeReturnPath(std::string_view requested);

}  // namespace bzzz::auth
