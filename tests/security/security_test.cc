#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>
#include <thread>

#include "security/access_controller.h"
#include "security/redact.h"

namespace bzzz::security {
namespace {

TEST(PermissionTest, Wildcards) {
  EXPECT_TRUE(PermissionMatches("*", "admin:write"));
  EXPECT_TRUE(PermissionMatches("admin:*", "admin:write"));
  EXPECT_TRUE(PermissionMatches("*:read", "tasks:read"));
  EXPECT_TRUE(PermissionMatches("tasks:read", "tasks:read"));
  EXPECT_FALSE(PermissionMatches("tasks:read", "tasks:write"));
  EXPECT_FALSE(PermissionMatches("*:read", "admin:write"));
  EXPECT_FALSE(PermissionMatches("admin:*", "administrator:read"));
  EXPECT_FALSE(PermissionMatches("admin", "admin:read"));
}

TEST(RbacTest, BuiltinRoles) {
  Rbac rbac;
  for (const char* role : {"system_admin", "operator", "developer", "user", "service_account", "master", "decision",
                           "coordination", "suggestion", "read_only"}) {
    EXPECT_TRUE(rbac.HasRole(role)) << role;
  }
  Identity op{"ops", {"operator"}, "api-token", true};
  EXPECT_TRUE(rbac.Allows(op, "admin:write"));
  EXPECT_TRUE(rbac.Allows(op, "debug:read"));
  Identity user{"u", {"user"}, "api-token", true};
  EXPECT_FALSE(rbac.Allows(user, "admin:read"));
  EXPECT_TRUE(rbac.Allows(user, "system:read"));
  Identity ro{"r", {"read_only"}, "api-token", true};
  EXPECT_TRUE(rbac.Allows(ro, "tasks:read"));
  EXPECT_FALSE(rbac.Allows(ro, "admin:read")) << "the effective configuration is not for read-only tokens";
  EXPECT_FALSE(rbac.Allows(ro, "debug:read"));
  EXPECT_FALSE(rbac.Allows(ro, "tasks:write"));
  Identity unknown{"x", {"no-such-role"}, "api-token", true};
  EXPECT_FALSE(rbac.Allows(unknown, "system:read"));
}

TEST(RbacTest, ConfiguredRolesAddAndExtend) {
  Rbac rbac({{"auditor", {"debug:read"}}, {"user", {"admin:read"}}});
  EXPECT_TRUE(rbac.Allows({"a", {"auditor"}, "api-token", true}, "debug:read"));
  EXPECT_FALSE(rbac.Allows({"a", {"auditor"}, "api-token", true}, "debug:write"));
  EXPECT_TRUE(rbac.Allows({"u", {"user"}, "api-token", true}, "admin:read"));
  EXPECT_TRUE(rbac.Allows({"u", {"user"}, "api-token", true}, "system:read")) << "built-in grants kept";
}

TEST(StaticTokenTest, KnowsTokensByHashOnly) {
  StaticTokenAuthenticator auth({{"ci", "", {"service_account"}, HashToken("ci-token")}}, "boot");
  auto ok = auth.Authenticate({"Bearer", "ci-token"});
  ASSERT_EQ(ok.outcome, AuthResult::Outcome::kAuthenticated);
  EXPECT_EQ(ok.identity.principal, "ci");
  EXPECT_EQ(ok.identity.method, "api-token");
  auto boot = auth.Authenticate({"Bearer", "boot"});
  ASSERT_EQ(boot.outcome, AuthResult::Outcome::kAuthenticated);
  EXPECT_EQ(boot.identity.roles, std::vector<std::string>{"system_admin"});
  EXPECT_EQ(auth.Authenticate({"Bearer", "nope"}).outcome, AuthResult::Outcome::kInvalid);
  EXPECT_EQ(auth.Authenticate({"Bearer", "a.b.c"}).outcome, AuthResult::Outcome::kNotMine) << "JWTs are left alone";
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// The authenticator's prepared HMAC agrees with OpenSSL's one-shot HMAC
// for tokens shorter and longer than a SHA-256 block, and one changed byte
// is refused.
TEST(StaticTokenTest, PreparedMacAgreesWithHmacForEveryLength) {
  const std::string salt_hex = "000102030405060708090a0b0c0d0e0f";
  std::string salt;
  for (int i = 0; i < 16; ++i) salt.push_back(static_cast<char>(i));
  for (std::size_t length : {1u, 16u, 55u, 63u, 64u, 65u, 119u, 200u}) {
    std::string token;
    for (std::size_t i = 0; i < length; ++i) token.push_back(static_cast<char>('a' + (i * 7) % 26));
    const std::string hash = "hmac-sha256:" + salt_hex + ":" + HmacSha256Hex(salt, token);
    ASSERT_EQ(config::TokenHashProblem(hash), "") << hash;
    StaticTokenAuthenticator auth({{"svc", "", {"operator"}, hash}}, "");
    EXPECT_EQ(auth.Authenticate({"Bearer", token}).outcome, AuthResult::Outcome::kAuthenticated) << length;
    std::string other = token;
    other.back() = other.back() == 'z' ? 'y' : 'z';
    EXPECT_EQ(auth.Authenticate({"Bearer", other}).outcome, AuthResult::Outcome::kInvalid) << length;
    EXPECT_EQ(auth.Authenticate({"Bearer", token + "a"}).outcome, AuthResult::Outcome::kInvalid) << length;
  }
}

// Salted hashes: the same token hashes differently each time, each hash
// matches only its token, and a configured token_hash authenticates.
TEST(StaticTokenTest, SaltedHashesAuthenticateAndDiffer) {
  const std::string token = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
  const std::string a = HashToken(token), b = HashToken(token);
  EXPECT_NE(a, b) << "a fresh salt each time";
  EXPECT_EQ(config::TokenHashProblem(a), "");
  EXPECT_EQ(a.rfind("hmac-sha256:", 0), 0u) << a;
  EXPECT_TRUE(TokenMatches(a, token));
  EXPECT_TRUE(TokenMatches(b, token));
  EXPECT_FALSE(TokenMatches(a, token + "x"));
  EXPECT_FALSE(TokenMatches(a, ""));
  EXPECT_FALSE(TokenMatches("hmac-sha256:zz", token)) << "a malformed hash matches nothing";
  EXPECT_EQ(a.find(Sha256Hex(token)), std::string::npos) << "the unsalted digest is not in it";

  config::ApiToken salted{"svc", "", {"operator"}, a};
  config::ApiToken legacy{"old", Sha256Hex("legacy-token-value"), {"read_only"}, ""};
  StaticTokenAuthenticator auth({salted, legacy}, "");
  auto ok = auth.Authenticate({"Bearer", token});
  ASSERT_EQ(ok.outcome, AuthResult::Outcome::kAuthenticated);
  EXPECT_EQ(ok.identity.principal, "svc");
  auto old = auth.Authenticate({"Bearer", "legacy-token-value"});
  ASSERT_EQ(old.outcome, AuthResult::Outcome::kAuthenticated);
  EXPECT_EQ(old.identity.principal, "old");
  EXPECT_EQ(auth.Authenticate({"Bearer", a}).outcome, AuthResult::Outcome::kInvalid) << "the hash is not the token";

  for (const char* bad : {"", "hmac-sha256:", "sha256:00112233445566778899aabbccddeeff:" ,
                          "hmac-sha256:00112233445566778899AABBCCDDEEFF:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                          "hmac-sha256:00112233445566778899aabbccddeeff-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}) {
    EXPECT_NE(config::TokenHashProblem(bad), "") << bad;
  }
}

class AccessTest : public ::testing::Test {
 protected:
  AccessTest() {
    std::vector<std::unique_ptr<Authenticator>> auth;
    auth.push_back(std::make_unique<StaticTokenAuthenticator>(
        std::vector<config::ApiToken>{{"dev", "", {"developer"}, HashToken("dev-token")}}, "root-token"));
    access = std::make_unique<AccessController>(std::move(auth), Rbac(), true, &registry);
  }
  std::string Metrics() {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry.Collect());
    return out.str();
  }
  prometheus::Registry registry;
  std::unique_ptr<AccessController> access;
};

TEST_F(AccessTest, Outcomes) {
  using Kind = AccessDecision::Kind;
  EXPECT_EQ(access->Check("", "admin:read").kind, Kind::kUnauthenticated);
  EXPECT_EQ(access->Check("Basic abc", "admin:read").kind, Kind::kUnauthenticated);
  EXPECT_EQ(access->Check("Bearer", "admin:read").kind, Kind::kUnauthenticated);
  EXPECT_EQ(access->Check("Bearer wrong", "admin:read").kind, Kind::kUnauthenticated);
  const auto forbidden = access->Check("Bearer dev-token", "admin:read");
  EXPECT_EQ(forbidden.kind, Kind::kForbidden);
  EXPECT_EQ(forbidden.identity.principal, "dev");
  EXPECT_NE(forbidden.reason.find("admin:read"), std::string::npos);
  EXPECT_EQ(access->Check("bearer   dev-token  ", "debug:read").kind, Kind::kAllowed);
  EXPECT_EQ(access->Check("Bearer root-token", "admin:write").kind, Kind::kAllowed);
  const std::string m = Metrics();
  EXPECT_NE(m.find("no_auth_attempts_total 7"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(no_auth_failures_total{reason="missing"} 1)"), std::string::npos);
  EXPECT_NE(m.find(R"(no_auth_failures_total{reason="malformed"} 2)"), std::string::npos);
  EXPECT_NE(m.find(R"(no_auth_failures_total{reason="invalid"} 1)"), std::string::npos);
  EXPECT_NE(m.find("no_rbac_denials_total 1"), std::string::npos);
  EXPECT_NE(m.find(R"(no_security_violations_total{kind="http_forbidden"} 1)"), std::string::npos) << m;
}

// A client address that fails to authenticate more than the limit within
// the window is throttled (429, Retry-After) for the rest of it, whatever
// it presents; other addresses are not; the episode is counted once as
// suspicious activity.
TEST(AccessThrottleTest, RepeatedFailuresFromOneAddressAreThrottled) {
  prometheus::Registry registry;
  std::vector<std::unique_ptr<Authenticator>> auth;
  auth.push_back(std::make_unique<StaticTokenAuthenticator>(std::vector<config::ApiToken>{}, "root-token"));
  FailureThrottleOptions throttle;
  throttle.failure_limit = 3;
  throttle.failure_window = std::chrono::minutes(1);
  AccessController access(std::move(auth), Rbac(), true, &registry, throttle);
  using Kind = AccessDecision::Kind;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(access.Check("Bearer guess-" + std::to_string(i), "admin:read", "10.0.0.1").kind,
              Kind::kUnauthenticated);
  }
  const auto throttled = access.Check("Bearer root-token", "admin:read", "10.0.0.1");
  EXPECT_EQ(throttled.kind, Kind::kThrottled);
  EXPECT_GT(throttled.retry_after_seconds, 0);
  EXPECT_LE(throttled.retry_after_seconds, 60);
  EXPECT_FALSE(access.Identify("Bearer root-token", "10.0.0.1").authenticated);
  EXPECT_EQ(access.Check("Bearer root-token", "admin:read", "10.0.0.2").kind, Kind::kAllowed);
  EXPECT_EQ(access.Check("Bearer root-token", "admin:read").kind, Kind::kAllowed) << "no address: not throttled";
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  EXPECT_NE(out.str().find("no_suspicious_activity_total 1"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find(R"(no_auth_failures_total{reason="throttled"} 2)"), std::string::npos) << out.str();
}

TEST(AccessThrottleTest, ThrottleEndsWithItsWindowAndTracksBoundedClients) {
  std::vector<std::unique_ptr<Authenticator>> auth;
  auth.push_back(std::make_unique<StaticTokenAuthenticator>(std::vector<config::ApiToken>{}, "root-token"));
  FailureThrottleOptions throttle;
  throttle.failure_limit = 1;
  throttle.failure_window = std::chrono::milliseconds(200);
  throttle.max_clients = 8;
  AccessController access(std::move(auth), Rbac(), true, nullptr, throttle);
  using Kind = AccessDecision::Kind;
  access.Check("Bearer x", "admin:read", "10.0.0.1");
  access.Check("Bearer y", "admin:read", "10.0.0.1");
  EXPECT_EQ(access.Check("Bearer root-token", "admin:read", "10.0.0.1").kind, Kind::kThrottled);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_EQ(access.Check("Bearer root-token", "admin:read", "10.0.0.1").kind, Kind::kAllowed);
  // Many addresses: the table stays bounded and keeps working.
  for (int i = 0; i < 100; ++i) access.Check("Bearer z", "admin:read", "10.1.0." + std::to_string(i));
  EXPECT_EQ(access.Check("Bearer root-token", "admin:read", "10.9.9.9").kind, Kind::kAllowed);
}

TEST(WeakTokenTest, ShortOrRepetitiveTokensAreWeak) {
  EXPECT_NE(WeakTokenReason("x"), "");
  EXPECT_NE(WeakTokenReason("e2e-admin"), "");
  EXPECT_NE(WeakTokenReason("aaaaaaaaaaaaaaaaaaaaaaaa"), "");
  EXPECT_NE(WeakTokenReason("abababababababababab"), "");
  EXPECT_EQ(WeakTokenReason("3f9c2e7a1b8d4f60a5c3e9b7"), "");
}

TEST_F(AccessTest, ReasonsNeverEchoTheToken) {
  const auto d = access->Check("Bearer super-secret-value", "admin:read");
  EXPECT_EQ(d.reason.find("super-secret-value"), std::string::npos);
}

TEST(RedactTest, MasksSecrets) {
  EXPECT_EQ(RedactSecrets("Authorization: Bearer abc.def.ghi done"), "Authorization: Bearer *** done");
  EXPECT_EQ(RedactSecrets("login password=hunter2&user=bob"), "login password=***&user=bob");
  EXPECT_EQ(RedactSecrets(R"({"client_secret": "s3cr3t", "name": "x"})"), R"({"client_secret": "***", "name": "x"})");
  EXPECT_EQ(RedactSecrets("api_key: abcdef"), "api_key: ***");
  EXPECT_EQ(RedactSecrets("NO_DB_PASSWORD=pw1 other"), "NO_DB_PASSWORD=*** other");
  EXPECT_EQ(RedactSecrets("x -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- y"),
            "x -----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY----- y");
  const std::string plain = "GET /health 200 1.2ms rid=abc principal=anonymous";
  EXPECT_EQ(RedactSecrets(plain), plain);
  EXPECT_EQ(RedactSecrets("tokens are fine to mention"), "tokens are fine to mention");
  EXPECT_EQ(RedactSecrets(""), "");
}

// One of each kind SHHH knows, as it would appear in output.
struct PlantedSecret {
  const char* kind;
  std::string text;    // what is written
  std::string secret;  // what must not survive
};

std::vector<PlantedSecret> PlantedSecrets() {
  return {
      {"bearer", "curl -H 'Authorization: Bearer tok-9f8e7d6c5b4a'", "tok-9f8e7d6c5b4a"},
      {"basic", "sent Basic dXNlcjpwYXNzd29yZDEy to the proxy", "dXNlcjpwYXNzd29yZDEy"},
      {"key=value", "connect db_password=Zq8-hunter2-x host=db", "Zq8-hunter2-x"},
      {"json key", R"({"client_secret": "cs-0a1b2c3d4e5f"})", "cs-0a1b2c3d4e5f"},
      {"pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
       "b3BlbnNzaC1rZXktdjEAAAAA"},
      {"url password", "cloning https://deploy:Pa55w0rd-url@git.example.test/repo.git", "Pa55w0rd-url"},
      {"github", "GITHUB=ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"},
      {"github pat", "use github_pat_11ABCDEFG0123456789_abcdefghij", "11ABCDEFG0123456789_abcdefghij"},
      {"openai", "OPENAI key sk-proj-Abc123Def456Ghi789Jkl0 set", "Abc123Def456Ghi789Jkl0"},
      {"aws", "aws id AKIAIOSFODNN7EXAMPLE ok", "IOSFODNN7EXAMPLE"},
      {"slack", "hook xoxb-1234567890-abcdefghij", "1234567890-abcdefghij"},
      {"jwt", "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ end",
       "eyJzdWIiOiJib2IifQ"},
  };
}

TEST(RedactTest, EveryBuiltInKindIsMaskedAndOrdinaryTextIsNot) {
  for (const auto& p : PlantedSecrets()) {
    const std::string out = RedactSecrets(p.text);
    EXPECT_EQ(out.find(p.secret), std::string::npos) << p.kind << ": " << out;
    EXPECT_NE(out.find(kRedacted), std::string::npos) << p.kind << ": " << out;
  }
  for (const char* plain : {"risk-assessment-framework-2024-edition-final", "ask-the-operator-about-it-tomorrow",
                            "http://example.test/path?x=1", "mailto:ops@example.test", "AKIA is a prefix",
                            "eyJ alone", "sk-short", "the task succeeded in 12 ms", "the basic idea is simple"}) {
    EXPECT_EQ(RedactSecrets(plain), plain);
  }
}

TEST(RedactTest, ConfiguredPatternsAndCounts) {
  auto patterns = ParseRedactionPatterns({"corp=CORP-[0-9]{8}", "ticket=TCK_[a-z]+"});
  ASSERT_TRUE(patterns.ok()) << patterns.status().ToString();
  auto redactor = Redactor::Create(*patterns, nullptr);
  ASSERT_TRUE(redactor.ok());
  const Redactor& r = **redactor;
  EXPECT_EQ(r.Redact("ids CORP-12345678 and TCK_abc, Bearer xyz", RedactionSite::kLog),
            "ids *** and ***, Bearer ***");
  EXPECT_EQ(r.Count(RedactionSite::kLog), 3u);
  EXPECT_EQ(r.Count(RedactionSite::kTaskOutput), 0u);
  // A line longer than a regex piece is still redacted throughout.
  std::string long_line(10000, 'x');
  long_line += " CORP-87654321";
  EXPECT_EQ(r.Redact(long_line, RedactionSite::kLog).find("87654321"), std::string::npos);

  EXPECT_FALSE(ParseRedactionPatterns({"noequals"}).ok());
  EXPECT_FALSE(ParseRedactionPatterns({"bad=("}).ok());
  EXPECT_FALSE(ParseRedactionPatterns({"empty=x*"}).ok());
}

TEST(RedactTest, JsonStaysJsonAndIsUntouchedWithoutSecrets) {
  auto redactor = Redactor::Create({}, nullptr);
  ASSERT_TRUE(redactor.ok());
  const Redactor& r = **redactor;
  const std::string clean = R"({"stdout": "hello",  "code": 0})";
  EXPECT_EQ(r.RedactJson(clean, RedactionSite::kTaskOutput), clean);  // byte for byte
  const std::string dirty =
      R"({"stdout":"key ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8\n","env":{"API_TOKEN":12345678},"list":["Bearer abc"]})";
  const std::string out = r.RedactJson(dirty, RedactionSite::kTaskOutput);
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["stdout"], "key ghp_***\n");
  EXPECT_EQ(j["env"]["API_TOKEN"], "***");
  EXPECT_EQ(j["list"][0], "Bearer ***");
  EXPECT_EQ(r.Count(RedactionSite::kTaskOutput), 3u);
  EXPECT_EQ(r.RedactJson("not json, password=x1", RedactionSite::kTaskOutput), "not json, password=***");
}

}  // namespace
}  // namespace bzzz::security
