// OIDC bearer tokens against a small identity provider started by the test
// (discovery document and JWKS over real HTTP on loopback, keys and tokens
// made with OpenSSL): discovery, role mapping, a key rotation at the
// provider while clients keep working, a provider that is down at start and
// comes up, a discovery document naming another issuer, and made-up kids
// that must not make the node hammer the provider.
#include "security/oidc.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "http/client.h"
#include "security/jwt_issuer.h"
#include "support/support.h"

namespace bzzz::security {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::SigningKey;

// The identity provider: /.well-known/openid-configuration and /jwks.
class Provider {
 public:
  Provider()
      : server_([this](const std::string&, const std::string& path, const std::string&) { return Answer(path); }) {}

  std::string issuer() const { return server_.url(); }
  void SetJwks(std::string jwks) {
    std::lock_guard lock(mu_);
    jwks_ = std::move(jwks);
  }
  void SetUp(bool up) { up_ = up; }
  void SetAnnouncedIssuer(std::string issuer) {
    std::lock_guard lock(mu_);
    announced_issuer_ = std::move(issuer);
  }
  int jwks_fetches() const { return jwks_fetches_; }

 private:
  std::pair<int, std::string> Answer(const std::string& path) {
    if (!up_) return {503, "{}"};
    std::lock_guard lock(mu_);
    if (path == "/.well-known/openid-configuration") {
      const std::string iss = announced_issuer_.empty() ? server_.url() : announced_issuer_;
      return {200, json{{"issuer", iss},
                        {"jwks_uri", server_.url() + "/jwks"},
                        {"authorization_endpoint", server_.url() + "/authorize"},
                        {"token_endpoint", server_.url() + "/token"}}
                       .dump()};
    }
    if (path == "/jwks") {
      ++jwks_fetches_;
      return {200, jwks_};
    }
    return {404, "{}"};
  }

  std::mutex mu_;
  std::string jwks_ = R"({"keys":[]})";
  std::string announced_issuer_;
  std::atomic<bool> up_{true};
  std::atomic<int> jwks_fetches_{0};
  testing::MiniServer server_;
};

class OidcTest : public ::testing::Test {
 protected:
  OidcTest() : k1_(SigningKey::Type::kRsa, "k1"), k2_(SigningKey::Type::kEc, "k2") {
    provider_.SetJwks(testing::Jwks(k1_));
  }

  std::shared_ptr<OidcKeySource> Start(std::vector<std::string> mapping = {}) {
    OidcOptions o;
    o.config.enabled = true;
    o.config.issuer = provider_.issuer();
    o.config.audience = "bzzz";
    o.config.role_claim = "groups";
    o.config.role_mapping = std::move(mapping);
    o.config.jwks_refresh = 60s;
    o.min_refetch = 300ms;
    o.retry_after_failure = 100ms;
    o.fetch = [](const std::string& url) { return http::GetBody(url, 2s, 1 << 20); };
    return OidcKeySource::Start(std::move(o));
  }

  json Claims(const std::string& sub = "alice") const {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    return {{"iss", provider_.issuer()}, {"aud", "bzzz"}, {"sub", sub}, {"exp", now + 600}, {"iat", now},
            {"groups", {"bzzz-operators", "developer", "unrelated"}}};
  }

  static AuthResult Auth(const OidcAuthenticator& a, const std::string& token) { return a.Authenticate({"Bearer", token}); }

  Provider provider_;
  SigningKey k1_, k2_;
  Rbac rbac_;
};

TEST_F(OidcTest, DiscoversTheKeysAndMapsRoles) {
  auto source = Start();
  ASSERT_TRUE(source->WaitForKeys(5s)) << source->GetSnapshot().last_error;
  EXPECT_EQ(source->GetSnapshot().jwks_uri, provider_.issuer() + "/jwks");
  EXPECT_EQ(source->GetSnapshot().keys, (std::vector<std::string>{"k1 (RS256)"}));

  // No mapping: values that name a role of the node are used as they are.
  OidcAuthenticator plain(source, rbac_);
  auto r = Auth(plain, k1_.Sign(Claims()));
  ASSERT_EQ(r.outcome, AuthResult::Outcome::kAuthenticated) << r.reason;
  EXPECT_EQ(r.identity.principal, "alice");
  EXPECT_EQ(r.identity.method, "jwt");
  EXPECT_EQ(r.identity.roles, (std::vector<std::string>{"developer"}));
  EXPECT_TRUE(rbac_.Allows(r.identity, "tasks:read"));

  // A mapping: only mapped values grant roles.
  auto source2 = Start({"bzzz-operators=operator", "bzzz-operators=developer"});
  ASSERT_TRUE(source2->WaitForKeys(5s));
  OidcAuthenticator with_mapping(source2, rbac_);
  r = Auth(with_mapping, k1_.Sign(Claims()));
  ASSERT_EQ(r.outcome, AuthResult::Outcome::kAuthenticated) << r.reason;
  EXPECT_EQ(r.identity.roles, (std::vector<std::string>{"operator", "developer"}));

  // Not a JWT: another authenticator's business.
  EXPECT_EQ(Auth(plain, "an-opaque-api-token").outcome, AuthResult::Outcome::kNotMine);
  // Another audience, and a token of a key the provider never published.
  json other = Claims();
  other["aud"] = "someone-else";
  EXPECT_EQ(Auth(plain, k1_.Sign(other)).outcome, AuthResult::Outcome::kInvalid);
  SigningKey stranger(SigningKey::Type::kRsa, "k1");
  r = Auth(plain, stranger.Sign(Claims()));
  EXPECT_EQ(r.outcome, AuthResult::Outcome::kInvalid);
  EXPECT_NE(r.reason.find("does not verify"), std::string::npos) << r.reason;
}

TEST_F(OidcTest, AKeyRotationAtTheProviderKeepsClientsWorking) {
  auto source = Start();
  ASSERT_TRUE(source->WaitForKeys(5s));
  OidcAuthenticator a(source, rbac_);
  ASSERT_EQ(Auth(a, k1_.Sign(Claims())).outcome, AuthResult::Outcome::kAuthenticated);

  // The provider publishes k2 beside k1 and starts signing with k2.
  provider_.SetJwks(testing::Jwks(k1_, k2_));
  const std::string token = k2_.Sign(Claims());
  // The first token with the new kid asks for a refresh; it passes as soon
  // as the keys are fetched again (well within a client's retry).
  auto first = Auth(a, token);
  if (first.outcome != AuthResult::Outcome::kAuthenticated) {
    EXPECT_NE(first.reason.find("being refreshed"), std::string::npos) << first.reason;
  }
  EXPECT_TRUE(testing::Eventually([&] { return Auth(a, token).outcome == AuthResult::Outcome::kAuthenticated; }, 5s));
  // Tokens of the old key keep working while it is published.
  EXPECT_EQ(Auth(a, k1_.Sign(Claims())).outcome, AuthResult::Outcome::kAuthenticated);

  // The provider retires k1: its tokens stop working after the next refresh
  // (here: prompted by a token with yet another kid).
  provider_.SetJwks(testing::Jwks(k2_));
  SigningKey k3(SigningKey::Type::kEc, "k3");
  (void)Auth(a, k3.Sign(Claims()));
  EXPECT_TRUE(testing::Eventually(
      [&] { return Auth(a, k1_.Sign(Claims())).outcome == AuthResult::Outcome::kInvalid; }, 5s));
  EXPECT_EQ(Auth(a, token).outcome, AuthResult::Outcome::kAuthenticated);
}

TEST_F(OidcTest, AProviderDownAtStartIsRetriedAndItsKeysUsedOnceUp) {
  provider_.SetUp(false);
  auto source = Start();
  OidcAuthenticator a(source, rbac_);
  EXPECT_FALSE(source->WaitForKeys(300ms));
  auto r = Auth(a, k1_.Sign(Claims()));
  EXPECT_EQ(r.outcome, AuthResult::Outcome::kInvalid);
  EXPECT_NE(r.reason.find("not loaded"), std::string::npos) << r.reason;
  EXPECT_TRUE(testing::Eventually([&] { return source->GetSnapshot().failures >= 2; }, 5s));
  EXPECT_NE(source->GetSnapshot().last_error.find("503"), std::string::npos) << source->GetSnapshot().last_error;
  provider_.SetUp(true);
  ASSERT_TRUE(source->WaitForKeys(5s));
  EXPECT_EQ(Auth(a, k1_.Sign(Claims())).outcome, AuthResult::Outcome::kAuthenticated);
  EXPECT_EQ(source->GetSnapshot().last_error, "");
}

TEST_F(OidcTest, ADiscoveryDocumentNamingAnotherIssuerIsNotBelieved) {
  provider_.SetAnnouncedIssuer("https://evil.test");
  auto source = Start();
  EXPECT_FALSE(source->WaitForKeys(500ms));
  EXPECT_TRUE(testing::Eventually([&] { return !source->GetSnapshot().last_error.empty(); }, 5s));
  EXPECT_NE(source->GetSnapshot().last_error.find("evil.test"), std::string::npos);
  EXPECT_EQ(provider_.jwks_fetches(), 0);
}

TEST_F(OidcTest, MadeUpKidsDoNotHammerTheProvider) {
  auto source = Start();
  ASSERT_TRUE(source->WaitForKeys(5s));
  OidcAuthenticator a(source, rbac_);
  const int before = provider_.jwks_fetches();
  const auto start = std::chrono::steady_clock::now();
  int sent = 0;
  while (std::chrono::steady_clock::now() - start < 1s) {
    SigningKey::Type t = SigningKey::Type::kEc;
    static SigningKey attacker(t, "x");
    json header = {{"alg", "ES256"}, {"kid", "made-up-" + std::to_string(sent++)}};
    EXPECT_EQ(Auth(a, attacker.SignWithHeader(header, Claims())).outcome, AuthResult::Outcome::kInvalid);
    std::this_thread::sleep_for(5ms);
  }
  // At most one fetch per min_refetch (300 ms) for a second of made-up kids.
  EXPECT_GT(sent, 50);
  EXPECT_LE(provider_.jwks_fetches() - before, 5) << sent << " tokens";
}

}  // namespace
}  // namespace bzzz::security
