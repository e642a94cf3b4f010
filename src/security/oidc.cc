#include "security/oidc.h"

#include <algorithm>

#include "base/json.h"
#include "base/log.h"
#include "base/threads.h"

namespace bzzz::security {

namespace {

constexpr SubsystemLog kLog{"security"};

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

std::int64_t RealNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool IsHttpUrl(const std::string& s) { return s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0; }

std::string TrimSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

// --- OidcKeySource ---

OidcKeySource::OidcKeySource(OidcOptions options) : options_(std::move(options)) {
  if (!options_.now_seconds) options_.now_seconds = RealNow;
  snapshot_.jwks_uri = options_.config.jwks_uri;
}

std::shared_ptr<OidcKeySource> OidcKeySource::Start(OidcOptions options) {
  std::shared_ptr<OidcKeySource> source(new OidcKeySource(std::move(options)));
  source->thread_ = NamedThread("oidc-keys", [raw = source.get()] { raw->Run(); });
  return source;
}

OidcKeySource::~OidcKeySource() { Stop(); }

void OidcKeySource::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ProviderEndpoints OidcKeySource::Endpoints() const {
  std::lock_guard lock(mu_);
  return endpoints_;
}

std::shared_ptr<const JwkSet> OidcKeySource::Keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

void OidcKeySource::RequestRefresh() {
  {
    std::lock_guard lock(mu_);
    if (refresh_requested_) return;
    refresh_requested_ = true;
  }
  cv_.notify_all();
}

bool OidcKeySource::WaitForKeys(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return keys_ != nullptr || stopping_; }) && keys_ != nullptr;
}

OidcKeySource::Snapshot OidcKeySource::GetSnapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

Status OidcKeySource::FetchOnce() {
  const auto& c = options_.config;
  std::string jwks_uri = c.jwks_uri;
  bool need_endpoints = false;
  {
    std::lock_guard lock(mu_);
    if (jwks_uri.empty()) jwks_uri = discovered_jwks_uri_;
    // Browser sign-in needs the provider's endpoints, even with jwks_uri set.
    need_endpoints = !c.client_id.empty() && endpoints_.token_endpoint.empty();
  }
  if (jwks_uri.empty() || need_endpoints) {
    const std::string url = TrimSlash(c.issuer) + "/.well-known/openid-configuration";
    auto body = options_.fetch(url);
    if (!body.ok()) return Unavailable("discovery " + url + ": " + body.status().message());
    const json doc = ParseJson(*body);
    if (!doc.is_object() || !doc.contains("issuer") || !doc["issuer"].is_string() || !doc.contains("jwks_uri") ||
        !doc["jwks_uri"].is_string()) {
      return Unavailable("discovery " + url + ": not an OpenID configuration (issuer, jwks_uri)");
    }
    // OpenID Connect Discovery §4.3: the issuer must be exactly the one asked for.
    if (doc["issuer"].get<std::string>() != c.issuer) {
      return Unavailable("discovery " + url + ": it names issuer " + doc["issuer"].get<std::string>().substr(0, 200) +
                         ", not " + c.issuer);
    }
    const std::string discovered = doc["jwks_uri"].get<std::string>();
    if (!IsHttpUrl(discovered)) return Unavailable("discovery " + url + ": jwks_uri is not an http(s) URL");
    ProviderEndpoints endpoints;
    for (auto [field, target] : {std::pair{"authorization_endpoint", &endpoints.authorization_endpoint},
                                 {"token_endpoint", &endpoints.token_endpoint},
                                 {"end_session_endpoint", &endpoints.end_session_endpoint}}) {
      if (auto it = doc.find(field); it != doc.end() && it->is_string() && IsHttpUrl(it->get<std::string>())) {
        *target = it->get<std::string>();
      }
    }
    if (auto it = doc.find("token_endpoint_auth_methods_supported"); it != doc.end() && it->is_array()) {
      bool basic = false, post = false;
      for (const auto& m : *it) {
        basic |= m == "client_secret_basic";
        post |= m == "client_secret_post";
      }
      endpoints.client_secret_post = post && !basic;
    }
    if (!c.client_id.empty() && (endpoints.authorization_endpoint.empty() || endpoints.token_endpoint.empty())) {
      return Unavailable("discovery " + url + ": no authorization_endpoint or token_endpoint for browser sign-in");
    }
    if (jwks_uri.empty()) jwks_uri = discovered;
    std::lock_guard lock(mu_);
    if (c.jwks_uri.empty()) {
      discovered_jwks_uri_ = jwks_uri;
      snapshot_.jwks_uri = jwks_uri;
    }
    endpoints_ = std::move(endpoints);
  }
  auto body = options_.fetch(jwks_uri);
  if (!body.ok()) {
    if (c.jwks_uri.empty()) {
      std::lock_guard lock(mu_);
      discovered_jwks_uri_.clear();  // discover again next time
    }
    return Unavailable("JWKS " + jwks_uri + ": " + body.status().message());
  }
  std::vector<std::string> skipped;
  auto set = JwkSet::Parse(*body, &skipped);
  if (!set.ok()) return Unavailable("JWKS " + jwks_uri + ": " + set.status().message());
  for (const auto& why : skipped) kLog.warn("security: OIDC JWKS {}: {} left out", jwks_uri, why);
  if (set->size() == 0) return Unavailable("JWKS " + jwks_uri + ": no usable key");
  auto keys = std::make_shared<const JwkSet>(std::move(set).value());
  std::lock_guard lock(mu_);
  const bool first = keys_ == nullptr;
  const auto before = first ? std::vector<std::string>{} : keys_->Describe();
  snapshot_.keys = keys->Describe();
  if (first || before != snapshot_.keys) {
    std::string list;
    for (const auto& k : snapshot_.keys) list += (list.empty() ? "" : ", ") + k;
    kLog.info("security: OIDC keys of {} loaded: {}", c.issuer, list);
  }
  keys_ = std::move(keys);
  cv_.notify_all();
  return Status::Ok();
}

void OidcKeySource::Run() {
  const auto refresh = std::max(options_.config.jwks_refresh, std::chrono::milliseconds(1000));
  auto retry = options_.retry_after_failure;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    last_fetch_ = SteadyClock::now();
    refresh_requested_ = false;
    lock.unlock();
    const Status s = FetchOnce();
    const std::int64_t now = options_.now_seconds();
    lock.lock();
    ++snapshot_.fetches;
    snapshot_.last_attempt = now;
    std::chrono::milliseconds wait = refresh;
    if (s.ok()) {
      snapshot_.last_success = now;
      snapshot_.last_error.clear();
      retry = options_.retry_after_failure;
    } else {
      ++snapshot_.failures;
      if (snapshot_.last_error != s.message()) kLog.warn("security: OIDC keys not refreshed: {}", s.message());
      snapshot_.last_error = s.message();
      wait = std::min(retry, refresh);
      retry = std::min(retry * 2, refresh);
    }
    // Sleep until the next scheduled fetch, or until a request for keys
    // comes, but never fetch more often than min_refetch for such requests.
    const auto scheduled = last_fetch_ + wait;
    while (!stopping_) {
      const auto now_steady = SteadyClock::now();
      if (now_steady >= scheduled) break;
      if (refresh_requested_ && now_steady >= last_fetch_ + options_.min_refetch) break;
      auto until = scheduled;
      if (refresh_requested_) until = std::min(until, last_fetch_ + options_.min_refetch);
      cv_.wait_until(lock, until);
    }
  }
}

// --- OidcAuthenticator ---

OidcAuthenticator::OidcAuthenticator(std::shared_ptr<OidcKeySource> keys, const Rbac& rbac) : keys_(std::move(keys)) {
  const auto& c = keys_->options().config;
  policy_.issuer = c.issuer;
  policy_.audience = c.audience;
  policy_.leeway_seconds = std::chrono::duration_cast<std::chrono::seconds>(c.leeway).count();
  policy_.role_claim = c.role_claim;
  for (const auto& item : c.role_mapping) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;  // refused by the loader
    mapping_[item.substr(0, eq)].push_back(item.substr(eq + 1));
  }
  for (const auto& [name, permissions] : rbac.Roles()) known_roles_.push_back(name);
}

std::vector<std::string> OidcAuthenticator::MapRoles(const std::vector<std::string>& claimed) const {
  std::vector<std::string> roles;
  auto add = [&](const std::string& r) {
    if (std::find(roles.begin(), roles.end(), r) == roles.end()) roles.push_back(r);
  };
  for (const auto& value : claimed) {
    if (!mapping_.empty()) {
      if (auto it = mapping_.find(value); it != mapping_.end()) {
        for (const auto& r : it->second) add(r);
      }
    } else if (std::find(known_roles_.begin(), known_roles_.end(), value) != known_roles_.end()) {
      add(value);
    }
  }
  return roles;
}

AuthResult OidcAuthenticator::Authenticate(const Credentials& credentials) const {
  AuthResult result;
  if (std::count(credentials.token.begin(), credentials.token.end(), '.') != 2) return result;  // not a JWT
  result.outcome = AuthResult::Outcome::kInvalid;
  const auto keys = keys_->Keys();
  if (keys == nullptr) {
    result.reason = "the OIDC issuer's keys are not loaded yet (see the node's log)";
    return result;
  }
  auto claims = JwtVerifier::Verify(credentials.token, *keys, policy_, keys_->Now());
  if (!claims.ok()) {
    result.reason = claims.status().message();
    if (claims.status().reason() == JwtErrc::kUnknownKey) {
      keys_->RequestRefresh();
      result.reason += " (the issuer's keys are being refreshed; retry shortly)";
    }
    return result;
  }
  result.outcome = AuthResult::Outcome::kAuthenticated;
  result.identity.principal = claims->subject;
  result.identity.roles = MapRoles(claims->roles);
  result.identity.method = "jwt";
  result.identity.authenticated = true;
  return result;
}

}  // namespace bzzz::security
