// JWT verification (security/jwt.h) against keys made by the test's own
// issuer: valid RS256 and ES256 tokens pass; every forgery a verifier is
// known to fall for is refused with its reason: alg none, HS256 keyed with
// the public key, a header naming the other key type's algorithm, a kid the
// issuer does not have, a changed payload, another issuer or audience,
// expired, not yet valid, issued in the future; and JWKS documents with
// keys that must not be used.
#include "security/jwt.h"

#include <gtest/gtest.h>

#include "base/base64.h"
#include "security/jwt_issuer.h"

namespace bzzz::security {
namespace {

using nlohmann::json;
using testing::SigningKey;

constexpr std::int64_t kNow = 1'800'000'000;

class JwtTest : public ::testing::Test {
 protected:
  JwtTest() : rsa_(SigningKey::Type::kRsa, "rsa-1"), ec_(SigningKey::Type::kEc, "ec-1") {
    auto set = JwkSet::Parse(testing::Jwks(rsa_, ec_));
    EXPECT_TRUE(set.ok());
    keys_ = std::move(set).value();
    policy_.issuer = "https://idp.test";
    policy_.audience = "bzzz";
    policy_.leeway_seconds = 60;
    policy_.role_claim = "realm_access.roles";
  }

  json Claims() const {
    return {{"iss", "https://idp.test"}, {"aud", "bzzz"},     {"sub", "alice"}, {"exp", kNow + 300},
            {"iat", kNow - 10},          {"nbf", kNow - 10}, {"preferred_username", "alice@example"},
            {"realm_access", {{"roles", {"operator", "viewer"}}}}};
  }

  Result<JwtClaims> Verify(const std::string& token) const { return JwtVerifier::Verify(token, keys_, policy_, kNow); }
  std::error_code Reason(const std::string& token) const { return Verify(token).status().reason(); }

  SigningKey rsa_, ec_;
  JwkSet keys_;
  JwtPolicy policy_;
};

TEST_F(JwtTest, ValidRs256AndEs256TokensPassWithTheirClaims) {
  for (const SigningKey* key : {&rsa_, &ec_}) {
    auto claims = Verify(key->Sign(Claims()));
    ASSERT_TRUE(claims.ok()) << key->alg() << ": " << claims.status().ToString();
    EXPECT_EQ(claims->subject, "alice");
    EXPECT_EQ(claims->name, "alice@example");
    EXPECT_EQ(claims->kid, key->kid());
    EXPECT_EQ(claims->algorithm, key->alg());
    EXPECT_EQ(claims->roles, (std::vector<std::string>{"operator", "viewer"}));
    EXPECT_EQ(claims->expires_at, kNow + 300);
  }
  // An audience list, and a token without kid (every key of its algorithm is tried).
  json c = Claims();
  c["aud"] = {"other", "bzzz"};
  EXPECT_TRUE(Verify(ec_.SignWithHeader({{"alg", "ES256"}}, c)).ok());
}

TEST_F(JwtTest, AlgorithmConfusionIsRefused) {
  const json c = Claims();
  // alg none, with and without a signature.
  const std::string unsigned_part = Base64Url(json{{"alg", "none"}}.dump()) + "." + Base64Url(c.dump());
  EXPECT_EQ(Reason(unsigned_part + "."), JwtErrc::kAlgorithm);
  EXPECT_EQ(Reason(unsigned_part + "." + Base64Url("x")), JwtErrc::kAlgorithm);
  EXPECT_EQ(Reason(Base64Url(json{{"alg", "None"}}.dump()) + "." + Base64Url(c.dump()) + "."), JwtErrc::kAlgorithm);
  // HS256 keyed with the public key (as a JWK text, and as the raw n bytes).
  for (const SigningKey* key : {&rsa_, &ec_}) {
    const json header = {{"alg", "HS256"}, {"kid", key->kid()}};
    EXPECT_EQ(Reason(testing::ForgeHs256(header, c, key->PublicBytes())), JwtErrc::kAlgorithm);
    EXPECT_EQ(Reason(testing::ForgeHs256({{"alg", "HS256"}}, c, key->PublicBytes())), JwtErrc::kAlgorithm);
  }
  // A header naming the other key type's algorithm: RS256 on the EC key's kid, ES256 on the RSA key's.
  EXPECT_EQ(Reason(ec_.SignWithHeader({{"alg", "RS256"}, {"kid", "ec-1"}}, c)), JwtErrc::kAlgorithm);
  EXPECT_EQ(Reason(rsa_.SignWithHeader({{"alg", "ES256"}, {"kid", "rsa-1"}}, c)), JwtErrc::kAlgorithm);
  // PS256 and others are not accepted at all.
  EXPECT_EQ(Reason(rsa_.SignWithHeader({{"alg", "PS256"}, {"kid", "rsa-1"}}, c)), JwtErrc::kAlgorithm);
}

TEST_F(JwtTest, SignaturesKeysAndClaimsAreChecked) {
  // Signed by a key the issuer does not publish, under a known kid and an unknown one.
  SigningKey stranger(SigningKey::Type::kRsa, "rsa-1");
  EXPECT_EQ(Reason(stranger.Sign(Claims())), JwtErrc::kBadSignature);
  SigningKey unknown(SigningKey::Type::kEc, "ec-9");
  EXPECT_EQ(Reason(unknown.Sign(Claims())), JwtErrc::kUnknownKey);
  // A changed payload under the original signature.
  const std::string good = rsa_.Sign(Claims());
  json admin = Claims();
  admin["sub"] = "root";
  const auto d1 = good.find('.'), d2 = good.rfind('.');
  EXPECT_EQ(Reason(good.substr(0, d1 + 1) + Base64Url(admin.dump()) + good.substr(d2)), JwtErrc::kBadSignature);
  // A truncated EC signature, an empty one.
  const std::string ec_good = ec_.Sign(Claims());
  const auto sig_at = ec_good.rfind('.') + 1;
  const std::string sig = *FromBase64Url(ec_good.substr(sig_at));
  EXPECT_EQ(Reason(ec_good.substr(0, sig_at) + Base64Url(sig.substr(0, 60))), JwtErrc::kBadSignature);
  EXPECT_EQ(Reason(ec_good.substr(0, sig_at) + Base64Url(sig + "xx")), JwtErrc::kBadSignature);
  EXPECT_EQ(Reason(ec_good.substr(0, ec_good.rfind('.') + 1)), JwtErrc::kBadSignature);

  auto with = [&](const char* claim, json value) {
    json c = Claims();
    if (value.is_null()) {
      c.erase(claim);
    } else {
      c[claim] = value;
    }
    return Reason(ec_.Sign(c));
  };
  EXPECT_EQ(with("iss", "https://evil.test"), JwtErrc::kWrongIssuer);
  EXPECT_EQ(with("iss", nullptr), JwtErrc::kWrongIssuer);
  EXPECT_EQ(with("aud", "other"), JwtErrc::kWrongAudience);
  EXPECT_EQ(with("aud", json::array({"a", "b"})), JwtErrc::kWrongAudience);
  EXPECT_EQ(with("aud", nullptr), JwtErrc::kWrongAudience);
  EXPECT_EQ(with("exp", kNow - 61), JwtErrc::kExpired);
  EXPECT_EQ(with("exp", kNow - 59), std::error_code());  // within the leeway
  EXPECT_EQ(with("exp", nullptr), JwtErrc::kMissingClaim);
  EXPECT_EQ(with("exp", "tomorrow"), JwtErrc::kMissingClaim);
  EXPECT_EQ(with("nbf", kNow + 61), JwtErrc::kNotYetValid);
  EXPECT_EQ(with("nbf", kNow + 59), std::error_code());
  EXPECT_EQ(with("iat", kNow + 3600), JwtErrc::kNotYetValid);
  EXPECT_EQ(with("sub", nullptr), JwtErrc::kMissingClaim);
  EXPECT_EQ(with("sub", ""), JwtErrc::kMissingClaim);
  // Every refusal is a 401 with a bounded reason name.
  EXPECT_EQ(Verify(stranger.Sign(Claims())).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(JwtReasonName(JwtErrc::kWrongAudience), "wrong_audience");
}

TEST_F(JwtTest, MalformedTokensAreRefusedAsSuch) {
  for (const std::string& bad : std::vector<std::string>{"", "a", "a.b", "a.b.c.d", "!!.!!.!!", Base64Url("[]") + "." + Base64Url("{}") + ".AA",
                                Base64Url(R"({"alg":5})") + "." + Base64Url("{}") + ".AA",
                                std::string(9000, 'a') + ".b.c"}) {
    EXPECT_EQ(Reason(bad), JwtErrc::kMalformed) << bad.substr(0, 40);
  }
  EXPECT_EQ(Reason(rsa_.SignWithHeader({{"alg", "RS256"}, {"kid", "rsa-1"}, {"crit", {"exp"}}}, Claims())),
            JwtErrc::kMalformed);
  // A payload that is not an object, under a good signature.
  EXPECT_EQ(Reason(rsa_.SignWithHeader({{"alg", "RS256"}, {"kid", "rsa-1"}}, json::array())), JwtErrc::kMalformed);
  EXPECT_EQ(JwtVerifier::PeekKid(rsa_.Sign(Claims())), "rsa-1");
  EXPECT_EQ(JwtVerifier::PeekKid("garbage"), "");
}

TEST(JwkSetTest, KeysThatMustNotBeUsedAreLeftOutAndNamed) {
  SigningKey rsa(SigningKey::Type::kRsa, "r");
  SigningKey small(SigningKey::Type::kRsa, "small", 1024);
  SigningKey ec(SigningKey::Type::kEc, "e");
  json off_curve = ec.Jwk();
  off_curve["kid"] = "bad-point";
  off_curve["y"] = off_curve["x"];
  json enc = rsa.Jwk();
  enc["kid"] = "enc";
  enc["use"] = "enc";
  json wrong_alg = ec.Jwk();
  wrong_alg["kid"] = "wrong-alg";
  wrong_alg["alg"] = "RS256";
  json p384 = ec.Jwk();
  p384["kid"] = "p384";
  p384["crv"] = "P-384";
  json symmetric = {{"kty", "oct"}, {"kid", "hmac"}, {"k", Base64Url("secret")}};
  json duplicate = rsa.Jwk();
  const json doc = {{"keys", {rsa.Jwk(), small.Jwk(), ec.Jwk(), off_curve, enc, wrong_alg, p384, symmetric, duplicate,
                              "not an object"}}};
  std::vector<std::string> skipped;
  auto set = JwkSet::Parse(doc.dump(), &skipped);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->size(), 2u);
  EXPECT_TRUE(set->HasKid("r"));
  EXPECT_TRUE(set->HasKid("e"));
  EXPECT_EQ(skipped.size(), 8u);
  const std::string all = ::testing::PrintToString(skipped);
  for (const char* why : {"1024 bits", "not on P-256", "not for signatures", "does not fit", "P-256", "oct",
                          "appears twice", "no kty"}) {
    EXPECT_NE(all.find(why), std::string::npos) << why << " in " << all;
  }
  EXPECT_EQ(set->Describe(), (std::vector<std::string>{"r (RS256)", "e (ES256)"}));
  EXPECT_FALSE(JwkSet::Parse("[]").ok());
  EXPECT_FALSE(JwkSet::Parse("{\"keys\": 5}").ok());
}

}  // namespace
}  // namespace bzzz::security
