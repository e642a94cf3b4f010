#include "auth/signin.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sodium.h>

#include <chrono>
#include <deque>
#include <unordered_map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "http/router.h"
#include "security/authenticator.h"
#include "security/jwt.h"

namespace bzzz::auth {

namespace {

constexpr SubsystemLog kLog{"auth"};

using nlohmann::json;

constexpr std::string_view kSessionCookie = "bzzz_session";
constexpr std::string_view kCsrfCookie = "bzzz_csrf";
constexpr std::string_view kLoginCookie = "bzzz_login";

std::string RandomToken() {
  unsigned char bytes[32];
  RandomBytes(bytes, sizeof bytes);
  return Base64Url(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

// RFC 7636 S256: BASE64URL(SHA256(ASCII(code_verifier))).
std::string CodeChallenge(std::string_view verifier) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size());
  return Base64Url(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

bool SameSecret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

http::Response JsonError(int status, std::string_view code, std::string_view message, std::string_view rid) {
  return http::ErrorResponse(status, code, message, rid);
}

}  // namespace

std::string CookieValue(std::string_view header, std::string_view name) {
  std::size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ';')) ++i;
    const std::size_t end = std::min(header.find(';', i), header.size());
    const std::string_view pair = header.substr(i, end - i);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      std::string_view v = pair.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
    i = end + 1;
  }
  return {};
}

std::string SafeReturnPath(std::string_view requested) {
  // A path on this node only: "/x", never "//host" or "/\host" (both are
  // another host to a browser), nothing with a scheme, no control bytes.
  if (requested.empty() || requested.front() != '/' || requested.size() > 2048) return "/";
  if (requested.size() > 1 && (requested[1] == '/' || requested[1] == '\\')) return "/";
  for (char c : requested) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') return "/";
  }
  return std::string(requested);
}

struct SignIn::Impl {
  SignInOptions options;
  std::shared_ptr<security::OidcKeySource> keys;
  std::unique_ptr<security::OidcAuthenticator> roles;  // maps the ID token's role claim
  bool secure = false;                                 // cookies only over https

  struct Pending {
    std::string nonce;
    std::string verifier;
    std::string return_to;
    std::int64_t expires = 0;
  };
  struct Session {
    security::Identity identity;
    std::string csrf;
    std::string name;
    std::string email;
    std::int64_t created = 0;
    std::int64_t expires = 0;
  };

  mutable std::mutex mu;
  std::unordered_map<std::string, Pending> pending;   // by state
  std::unordered_map<std::string, Session> sessions;  // by SHA-256 of the session id
  // Keys in the order they were added. Every entry of a map lives as long
  // as the others of its kind (a fixed TTL), so the front is always the
  // first to expire: sweeping costs O(1) per entry, whatever a flood of
  // /auth/login requests does. Keys already gone from the map are skipped.
  std::deque<std::string> pending_order;
  std::deque<std::string> session_order;
  std::function<void(const Event&)> listener;

  prometheus::Counter* logins_ok = nullptr;
  prometheus::Counter* logins_failed = nullptr;
  prometheus::Gauge* active = nullptr;

  std::int64_t Now() const { return options.now_seconds(); }

  bool Configured() const {
    const auto& o = options.oidc;
    return o.enabled && !o.client_id.empty() && !o.client_secret.empty() && !o.redirect_uri.empty();
  }

  std::string Cookie(std::string_view name, std::string_view value, std::string_view path, std::int64_t max_age,
                     bool http_only, std::string_view same_site) const {
    std::string c = std::string(name) + "=" + std::string(value) + "; Path=" + std::string(path) +
                    "; Max-Age=" + std::to_string(max_age) + "; SameSite=" + std::string(same_site);
    if (http_only) c += "; HttpOnly";
    if (secure) c += "; Secure";
    return c;
  }

  void Tell(const Event& e) {
    if (prometheus::Counter* c = e.signed_in ? logins_ok : logins_failed) c->Increment();
    std::function<void(const Event&)> l;
    {
      std::lock_guard lock(mu);
      l = listener;
    }
    if (l) l(e);
  }

  // Drops what expired, then the oldest beyond the bounds. Under mu.
  template <typename Map>
  static void SweepOne(Map& map, std::deque<std::string>& order, std::size_t max, std::int64_t now) {
    while (!order.empty()) {
      auto it = map.find(order.front());
      if (it == map.end()) {
        order.pop_front();  // already used or signed out
      } else if (it->second.expires <= now || map.size() > max) {
        map.erase(it);
        order.pop_front();
      } else {
        break;
      }
    }
    // Keys removed out of order leave stale entries behind; keep the
    // queue from outgrowing the map by much.
    if (order.size() > 2 * map.size() + 64) {
      std::deque<std::string> live;
      for (auto& key : order) {
        if (map.count(key)) live.push_back(std::move(key));
      }
      order = std::move(live);
    }
  }
  void Sweep(std::int64_t now) {
    SweepOne(pending, pending_order, options.max_pending, now);
    SweepOne(sessions, session_order, options.max_sessions, now);
    if (active) active->Set(static_cast<double>(sessions.size()));
  }

  http::Response Login(const http::Request& req) {
    if (!Configured()) {
      return JsonError(503, "sign_in_unavailable",
                       "browser sign-in is not configured: set security.oidc.enabled, client_id, client_secret and "
                       "redirect_uri",
                       req.request_id);
    }
    const security::ProviderEndpoints endpoints = keys ? keys->Endpoints() : security::ProviderEndpoints{};
    if (endpoints.authorization_endpoint.empty()) {
      return JsonError(503, "sign_in_unavailable",
                       "the identity provider's endpoints are not known yet (discovery of " + options.oidc.issuer +
                           " has not succeeded; see the oidc-keys health check)",
                       req.request_id);
    }
    const std::string state = RandomToken();
    Pending p{RandomToken(), RandomToken(), SafeReturnPath(req.QueryParam("return_to").value_or("/")),
              Now() + options.pending_ttl.count()};
    const std::string challenge = CodeChallenge(p.verifier);
    const std::string nonce = p.nonce;
    {
      std::lock_guard lock(mu);
      pending[state] = std::move(p);
      pending_order.push_back(state);
      Sweep(Now());
    }
    const auto& o = options.oidc;
    const char sep = endpoints.authorization_endpoint.find('?') == std::string::npos ? '?' : '&';
    const std::string location = endpoints.authorization_endpoint + sep + "response_type=code&client_id=" +
                                 http::PercentEncode(o.client_id) +
                                 "&redirect_uri=" + http::PercentEncode(o.redirect_uri) +
                                 "&scope=openid%20profile%20email&state=" + state + "&nonce=" + nonce +
                                 "&code_challenge=" + challenge + "&code_challenge_method=S256";
    http::Response r = http::Response::Json(302, DumpJson(json{{"location", location}}));
    r.headers.Set("Location", location);
    r.headers.Set("Cache-Control", "no-store");
    r.headers.Add("Set-Cookie", Cookie(kLoginCookie, state, "/auth", options.pending_ttl.count(), true, "Lax"));
    return r;
  }

  http::Response Callback(const http::Request& req) {
    Event event;
    event.client = req.client_address;
    auto fail = [&](int status, std::string_view code, const std::string& why) {
      event.reason = why;
      Tell(event);
      http::Response r = JsonError(status, code, "sign-in failed: " + why, req.request_id);
      r.headers.Add("Set-Cookie", Cookie(kLoginCookie, "", "/auth", 0, true, "Lax"));
      r.headers.Set("Cache-Control", "no-store");
      return r;
    };
    if (!Configured() || !keys) return fail(503, "sign_in_unavailable", "browser sign-in is not configured");
    if (auto error = req.QueryParam("error")) {
      const std::string description = req.QueryParam("error_description").value_or("");
      return fail(400, "provider_error",
                  "the identity provider answered " + error->substr(0, 64) +
                      (description.empty() ? "" : ": " + description.substr(0, 200)));
    }
    const std::string state = req.QueryParam("state").value_or("");
    const std::string code = req.QueryParam("code").value_or("");
    if (state.empty() || code.empty()) return fail(400, "bad_request", "state and code are required");
    const std::string* cookies = req.headers.Find("Cookie");
    const std::string cookie_state = cookies ? CookieValue(*cookies, kLoginCookie) : "";
    if (cookie_state.empty() || !SameSecret(cookie_state, state)) {
      return fail(400, "state_mismatch", "this browser did not start this sign-in (state cookie missing or different)");
    }
    Pending p;
    {
      std::lock_guard lock(mu);
      auto it = pending.find(state);
      if (it == pending.end() || it->second.expires <= Now()) {
        if (it != pending.end()) pending.erase(it);
        return fail(400, "state_unknown", "unknown or expired state (start again at /auth/login)");
      }
      p = std::move(it->second);
      pending.erase(it);  // a state is used once
    }

    // The code, with the PKCE verifier, for tokens.
    const auto& o = options.oidc;
    const security::ProviderEndpoints endpoints = keys->Endpoints();
    std::string form = "grant_type=authorization_code&code=" + http::PercentEncode(code) +
                       "&redirect_uri=" + http::PercentEncode(o.redirect_uri) +
                       "&code_verifier=" + http::PercentEncode(p.verifier) +
                       "&client_id=" + http::PercentEncode(o.client_id);
    std::vector<std::string> headers;
    if (endpoints.client_secret_post) {
      form += "&client_secret=" + http::PercentEncode(o.client_secret);
    } else {
      // RFC 6749 §2.3.1: each part form-encoded, then base64.
      headers.push_back("Authorization: Basic " +
                        Base64(http::PercentEncode(o.client_id) + ":" + http::PercentEncode(o.client_secret)));
    }
    auto answer = options.post_form(endpoints.token_endpoint, form, headers);
    if (!answer.ok()) return fail(502, "provider_unreachable", "token endpoint: " + answer.status().message());
    const json tokens = ParseJson(answer->second);
    if (answer->first != 200 || !tokens.is_object()) {
      std::string why = "token endpoint answered " + std::to_string(answer->first);
      if (tokens.is_object() && tokens.contains("error") && tokens["error"].is_string()) {
        why += ": " + tokens["error"].get<std::string>().substr(0, 64);
      }
      return fail(502, "token_exchange_failed", why);
    }
    if (!tokens.contains("id_token") || !tokens["id_token"].is_string()) {
      return fail(502, "token_exchange_failed", "the token endpoint gave no id_token");
    }
    const std::string id_token = tokens["id_token"].get<std::string>();

    // The ID token: signed by the provider, for this client, fresh, ours.
    auto key_set = keys->Keys();
    if (!key_set) return fail(503, "sign_in_unavailable", "the identity provider's keys are not loaded yet");
    security::JwtPolicy policy;
    policy.issuer = o.issuer;
    policy.audience = o.client_id;
    policy.leeway_seconds = o.leeway.count() / 1000;
    policy.role_claim = o.role_claim;
    auto claims = security::JwtVerifier::Verify(id_token, *key_set, policy, Now());
    if (!claims.ok() && claims.status().reason() == security::JwtErrc::kUnknownKey) {
      keys->RequestRefresh();  // a key published since the last fetch
    }
    if (!claims.ok()) return fail(401, "id_token_invalid", "the ID token was refused: " + claims.status().message());
    if (claims->nonce.empty() || !SameSecret(claims->nonce, p.nonce)) {
      return fail(401, "id_token_invalid", "the ID token's nonce is not this sign-in's");
    }
    event.principal = claims->subject;

    Session s;
    s.identity.principal = claims->subject;
    s.identity.roles = roles->MapRoles(claims->roles);
    s.identity.method = "session";
    s.identity.authenticated = true;
    s.csrf = RandomToken();
    s.name = claims->name;
    s.email = claims->email;
    s.created = Now();
    s.expires = s.created + options.session_ttl.count();
    const std::string id = RandomToken();
    const std::string csrf = s.csrf;
    {
      std::lock_guard lock(mu);
      const std::string key = security::Sha256Hex(id);
      sessions[key] = std::move(s);
      session_order.push_back(key);
      Sweep(Now());
    }
    event.signed_in = true;
    Tell(event);
    kLog.info("auth: {} signed in from {}", claims->subject, req.client_address);
    http::Response r = http::Response::Json(302, DumpJson(json{{"location", p.return_to}}));
    r.headers.Set("Location", p.return_to);
    r.headers.Set("Cache-Control", "no-store");
    r.headers.Add("Set-Cookie", Cookie(kSessionCookie, id, "/", options.session_ttl.count(), true, "Lax"));
    r.headers.Add("Set-Cookie", Cookie(kCsrfCookie, csrf, "/", options.session_ttl.count(), false, "Strict"));
    r.headers.Add("Set-Cookie", Cookie(kLoginCookie, "", "/auth", 0, true, "Lax"));
    return r;
  }

  // The session a Cookie header names, if it is live; `key` its map key.
  std::optional<Session> Find(std::string_view cookie_header, std::string* key) const {
    const std::string id = CookieValue(cookie_header, kSessionCookie);
    if (id.empty()) return std::nullopt;
    *key = security::Sha256Hex(id);
    std::lock_guard lock(mu);
    auto it = sessions.find(*key);
    if (it == sessions.end() || it->second.expires <= Now()) return std::nullopt;
    return it->second;
  }

  http::Response Logout(const http::Request& req) {
    const std::string* cookies = req.headers.Find("Cookie");
    std::string key;
    std::optional<Session> s = cookies ? Find(*cookies, &key) : std::nullopt;
    http::Response r;
    if (s) {
      const std::string* csrf = req.headers.Find("X-CSRF-Token");
      if (csrf == nullptr || !SameSecret(*csrf, s->csrf)) {
        return JsonError(403, "forbidden", "X-CSRF-Token missing or wrong (the bzzz_csrf cookie holds it)",
                         req.request_id);
      }
      std::lock_guard lock(mu);
      sessions.erase(key);
      if (active) active->Set(static_cast<double>(sessions.size()));
    }
    const std::string end_session = keys ? keys->Endpoints().end_session_endpoint : "";
    r = http::Response::Json(200, DumpJson(json{{"signed_out", s.has_value()},
                                                {"end_session_endpoint", end_session.empty() ? json(nullptr) : json(end_session)}}));
    r.headers.Add("Set-Cookie", Cookie(kSessionCookie, "", "/", 0, true, "Lax"));
    r.headers.Add("Set-Cookie", Cookie(kCsrfCookie, "", "/", 0, false, "Strict"));
    r.headers.Set("Cache-Control", "no-store");
    if (s) kLog.info("auth: {} signed out", s->identity.principal);
    return r;
  }

  http::Response UserInfo(const http::Request& req) {
    const std::string* cookies = req.headers.Find("Cookie");
    std::string key;
    std::optional<Session> s = cookies ? Find(*cookies, &key) : std::nullopt;
    if (!s) {
      http::Response r = JsonError(401, "unauthorized", "not signed in (sign in at /auth/login)", req.request_id);
      r.headers.Set("Cache-Control", "no-store");
      return r;
    }
    http::Response r = http::Response::Json(200, DumpJson(SessionJson(*s)));
    r.headers.Set("Cache-Control", "no-store");
    return r;
  }

  static json SessionJson(const Session& s) {
    return {{"sub", s.identity.principal},
            {"name", s.name},
            {"email", s.email},
            {"roles", s.identity.roles},
            {"method", "session"},
            {"expires_at", s.expires}};
  }

  http::Response StatusRoute(const http::Request& req) {
    const std::string* cookies = req.headers.Find("Cookie");
    std::string key;
    std::optional<Session> s = cookies ? Find(*cookies, &key) : std::nullopt;
    const bool ready = Configured() && keys && !keys->Endpoints().authorization_endpoint.empty();
    json out = {{"sign_in_available", ready}, {"login", "/auth/login"}, {"signed_in", s.has_value()}};
    if (s) out["user"] = SessionJson(*s);
    http::Response r = http::Response::Json(200, DumpJson(out));
    r.headers.Set("Cache-Control", "no-store");
    return r;
  }
};

SignIn::SignIn(SignInOptions options, std::shared_ptr<security::OidcKeySource> keys, const security::Rbac& rbac,
               prometheus::Registry* metrics)
    : impl_(std::make_shared<Impl>()) {
  Impl& n = *impl_;
  n.options = std::move(options);
  if (!n.options.now_seconds) {
    n.options.now_seconds = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  n.keys = std::move(keys);
  if (n.keys) n.roles = std::make_unique<security::OidcAuthenticator>(n.keys, rbac);
  n.secure = n.options.oidc.redirect_uri.rfind("https://", 0) == 0;
  if (metrics != nullptr) {
    auto& logins = prometheus::BuildCounter()
                       .Name("no_auth_logins_total")
                       .Help("Browser sign-ins completed (ok) or refused at the callback (failed)")
                       .Register(*metrics);
    n.logins_ok = &logins.Add({{"result", "ok"}});
    n.logins_failed = &logins.Add({{"result", "failed"}});
    n.active = &prometheus::BuildGauge()
                    .Name("no_auth_sessions_active")
                    .Help("Browser sessions open on this node")
                    .Register(*metrics)
                    .Add({});
  }
}

SignIn::~SignIn() = default;

bool SignIn::Configured() const { return impl_->Configured(); }

void SignIn::OnEvent(std::function<void(const Event&)> listener) {
  std::lock_guard lock(impl_->mu);
  impl_->listener = std::move(listener);
}

security::SessionCheck SignIn::Check(std::string_view cookie_header, bool unsafe, std::string_view csrf_header) const {
  security::SessionCheck out;
  if (CookieValue(cookie_header, kSessionCookie).empty()) return out;
  std::string key;
  auto s = impl_->Find(cookie_header, &key);
  if (!s) {
    out.kind = security::SessionCheck::Kind::kInvalid;
    out.reason = "the session is unknown or expired: sign in again at /auth/login";
    return out;
  }
  if (unsafe && (csrf_header.empty() || !SameSecret(csrf_header, s->csrf))) {
    out.kind = security::SessionCheck::Kind::kCsrf;
    out.reason = "X-CSRF-Token missing or wrong: a cookie-authenticated change must send the token of the bzzz_csrf "
                 "cookie";
    return out;
  }
  out.kind = security::SessionCheck::Kind::kValid;
  out.identity = std::move(s->identity);
  return out;
}

Status SignIn::RegisterRoutes(http::Router& router) {
  http::RouteTable routes(router, "auth");
  auto n = impl_;
  routes.Add(http::Method::kGet, "/auth/login", std::string(http::kPublic), "begin a browser sign-in (OIDC code flow, PKCE)",
             [n](http::Request& req) { return n->Login(req); });
  routes.AddBlocking(http::Method::kGet, "/auth/callback", std::string(http::kPublic),
                     "the identity provider's redirect: trade the code, open a session",
                     [n](http::Request& req) { return n->Callback(req); });
  routes.Add(http::Method::kPost, "/auth/logout", std::string(http::kPublic), "end the browser session (X-CSRF-Token)",
             [n](http::Request& req) { return n->Logout(req); });
  routes.Add(http::Method::kGet, "/auth/userinfo", std::string(http::kPublic), "the signed-in user",
             [n](http::Request& req) { return n->UserInfo(req); });
  routes.Add(http::Method::kGet, "/auth/status", std::string(http::kPublic), "whether sign-in is available and who is signed in",
             [n](http::Request& req) { return n->StatusRoute(req); });
  return routes.Done();
}

}  // namespace bzzz::auth
