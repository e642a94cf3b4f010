// A local OpenID Connect provider for the sign-in tests, speaking the real
// protocol over HTTP on loopback: discovery, an authorization endpoint that
// signs its one user in at once (checking the parameters a real provider
// checks, PKCE included), a token endpoint that checks the client secret,
// the redirect URI and the PKCE verifier and issues ID tokens, and a JWKS
// whose keys can be rotated. Test-only.
#pragma once

#include <openssl/sha.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "security/jwt_issuer.h"
#include "support/support.h"

namespace bzzz::testing {

class LocalIdentityProvider {
 public:
  static constexpr char kClientId[] = "bzzz-console";
  static constexpr char kClientSecret[] = "console-secret-5b1f9e";

  LocalIdentityProvider()
      : key1_(std::make_shared<SigningKey>(SigningKey::Type::kRsa, "idp-key-1")),
        key2_(std::make_shared<SigningKey>(SigningKey::Type::kEc, "idp-key-2")),
        published_{key1_},
        signer_(key1_),
        server_([this](const std::string& m, const std::string& t, const std::string& b) { return Handle(m, t, b); }) {
    issuer_ = server_.url();
  }

  const std::string& issuer() const { return issuer_; }

  // The node's --set flags for sign-in through this provider; {port} is the
  // node's HTTP port (NodeProcess fills it in).
  std::vector<std::string> NodeFlags() const {
    return {"--set", "security.oidc.enabled=true",
            "--set", "security.oidc.issuer=" + issuer_,
            "--set", "security.oidc.audience=bzzz",
            "--set", "security.oidc.role_claim=groups",
            "--set", "security.oidc.role_mapping=bzzz-ops=operator",
            "--set", std::string("security.oidc.client_id=") + kClientId,
            "--set", std::string("security.oidc.client_secret=") + kClientSecret,
            "--set", "security.oidc.redirect_uri=http://127.0.0.1:{port}/auth/callback",
            "--set", "security.oidc.jwks_refresh=1s"};
  }

  // Publish the second key beside the first (a rotation's first step).
  void PublishSecondKey() {
    std::lock_guard lock(mu_);
    published_ = {key1_, key2_};
  }
  // Sign ID tokens with the second key from now on.
  void SignWithSecondKey() {
    std::lock_guard lock(mu_);
    signer_ = key2_;
  }
  // ID tokens carry this nonce instead of the client's ("": the client's).
  void OverrideNonce(std::string nonce) {
    std::lock_guard lock(mu_);
    nonce_override_ = std::move(nonce);
  }

  // The percent-decoded value of `name` in a query or form ("" when absent).
  static std::string Param(const std::string& query, const std::string& name) {
    std::size_t i = 0;
    while (i < query.size()) {
      const auto amp = std::min(query.find('&', i), query.size());
      const std::string pair = query.substr(i, amp - i);
      const auto eq = pair.find('=');
      if (eq != std::string::npos && pair.substr(0, eq) == name) {
        std::string v;
        const std::string raw = pair.substr(eq + 1);
        for (std::size_t k = 0; k < raw.size(); ++k) {
          if (raw[k] == '%' && k + 2 < raw.size()) {
            v += static_cast<char>(std::stoi(raw.substr(k + 1, 2), nullptr, 16));
            k += 2;
          } else {
            v += raw[k] == '+' ? ' ' : raw[k];
          }
        }
        return v;
      }
      i = amp + 1;
    }
    return "";
  }

 private:
  struct Grant {
    std::string challenge, nonce, redirect_uri;
  };

  std::pair<int, std::string> Handle(const std::string& method, const std::string& target, const std::string& body) {
    using nlohmann::json;
    std::lock_guard lock(mu_);
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    if (path == "/.well-known/openid-configuration") {
      return {200, json{{"issuer", issuer_},
                        {"jwks_uri", issuer_ + "/jwks"},
                        {"authorization_endpoint", issuer_ + "/authorize"},
                        {"token_endpoint", issuer_ + "/token"},
                        {"end_session_endpoint", issuer_ + "/logout"},
                        {"token_endpoint_auth_methods_supported", {"client_secret_post"}}}
                       .dump()};
    }
    if (path == "/jwks") {
      json keys = json::array();
      for (const auto& k : published_) keys.push_back(k->Jwk());
      return {200, json{{"keys", keys}}.dump()};
    }
    if (path == "/authorize" && method == "GET") {
      if (Param(query, "response_type") != "code" || Param(query, "client_id") != kClientId ||
          Param(query, "code_challenge_method") != "S256" || Param(query, "code_challenge").empty() ||
          Param(query, "state").empty() || Param(query, "nonce").empty() ||
          Param(query, "scope").find("openid") == std::string::npos) {
        return {400, R"({"error":"invalid_request"})"};
      }
      const std::string code = "code-" + std::to_string(++codes_);
      grants_[code] = {Param(query, "code_challenge"), Param(query, "nonce"), Param(query, "redirect_uri")};
      return {302, Param(query, "redirect_uri") + "?code=" + code + "&state=" + Param(query, "state")};
    }
    if (path == "/token" && method == "POST") {
      auto it = grants_.find(Param(body, "code"));
      if (Param(body, "grant_type") != "authorization_code" || it == grants_.end() ||
          Param(body, "client_id") != kClientId || Param(body, "client_secret") != kClientSecret ||
          Param(body, "redirect_uri") != it->second.redirect_uri) {
        return {400, R"({"error":"invalid_grant"})"};
      }
      const std::string verifier = Param(body, "code_verifier");
      unsigned char digest[32];
      SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest);
      if (Base64Url(std::string(reinterpret_cast<char*>(digest), 32)) != it->second.challenge) {
        return {400, R"({"error":"invalid_grant","error_description":"PKCE verifier"})"};
      }
      const Grant g = it->second;
      grants_.erase(it);  // a code is used once
      const std::int64_t now =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      const std::string id_token = signer_->Sign({{"iss", issuer_},
                                                  {"aud", kClientId},
                                                  {"sub", "dana"},
                                                  {"email", "dana@example.test"},
                                                  {"preferred_username", "dana"},
                                                  {"groups", {"bzzz-ops"}},
                                                  {"nonce", nonce_override_.empty() ? g.nonce : nonce_override_},
                                                  {"iat", now},
                                                  {"exp", now + 300}});
      return {200, json{{"access_token", "opaque-access-token"},
                        {"token_type", "Bearer"},
                        {"expires_in", 300},
                        {"id_token", id_token}}
                       .dump()};
    }
    return {404, "{}"};
  }

  std::shared_ptr<SigningKey> key1_, key2_;
  std::mutex mu_;
  std::vector<std::shared_ptr<SigningKey>> published_;
  std::shared_ptr<SigningKey> signer_;
  std::string nonce_override_;
  std::map<std::string, Grant> grants_;
  int codes_ = 0;
  std::string issuer_;
  MiniServer server_;  // last: stops (and joins its thread) before the rest goes
};

}  // namespace bzzz::testing
