// The parts of browser sign-in that need no provider: cookies, where a
// browser may be sent back to, and what an unconfigured node answers.
// The flow itself runs against a local identity provider in
// NodeE2E.BrowserSignInThroughALocalIdentityProvider.
#include "auth/signin.h"

#include <gtest/gtest.h>

#include "http/router.h"

namespace bzzz::auth {
namespace {

TEST(CookieTest, ValuesAreFoundByExactName) {
  EXPECT_EQ(CookieValue("bzzz_session=abc; bzzz_csrf=def", "bzzz_session"), "abc");
  EXPECT_EQ(CookieValue("bzzz_session=abc; bzzz_csrf=def", "bzzz_csrf"), "def");
  EXPECT_EQ(CookieValue("x_bzzz_session=no; bzzz_session=yes", "bzzz_session"), "yes");
  EXPECT_EQ(CookieValue("bzzz_session=\"quoted\"", "bzzz_session"), "quoted");
  EXPECT_EQ(CookieValue("other=1", "bzzz_session"), "");
  EXPECT_EQ(CookieValue("", "bzzz_session"), "");
  EXPECT_EQ(CookieValue(";;; bzzz_session", "bzzz_session"), "");
}

TEST(ReturnPathTest, OnlyLocalPaths) {
  EXPECT_EQ(SafeReturnPath("/ui/tasks?x=1"), "/ui/tasks?x=1");
  EXPECT_EQ(SafeReturnPath("/"), "/");
  for (const char* bad : {"", "//evil.example/", "/\\evil.example", "https://evil.example/", "javascript:alert(1)",
                          "ui/tasks", "/a\r\nSet-Cookie: x=y", "/a\\b"}) {
    EXPECT_EQ(SafeReturnPath(bad), "/") << bad;
  }
}

TEST(SignInTest, UnconfiguredSignInSaysWhyAndSessionsAuthenticateNothing) {
  SignInOptions options;  // no client id, no provider
  security::Rbac rbac;
  auto signin = std::make_shared<SignIn>(options, nullptr, rbac, nullptr);
  EXPECT_FALSE(signin->Configured());
  http::Router router;
  ASSERT_TRUE(signin->RegisterRoutes(router).ok());
  http::Request req;
  req.path = "/auth/login";
  auto m = router.Match(http::Method::kGet, "/auth/login");
  ASSERT_EQ(m.kind, http::RouteMatch::Kind::kFound);
  const http::Response r = m.route->handler(req);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("security.oidc.enabled, client_id, client_secret and redirect_uri"), std::string::npos);
  // No session cookie: nothing; an unknown one: refused.
  EXPECT_EQ(signin->Check("other=1", false, "").kind, security::SessionCheck::Kind::kNone);
  EXPECT_EQ(signin->Check("bzzz_session=made-up", false, "").kind, security::SessionCheck::Kind::kInvalid);
  auto status = router.Match(http::Method::kGet, "/auth/status");
  ASSERT_EQ(status.kind, http::RouteMatch::Kind::kFound);
  EXPECT_NE(status.route->handler(req).body.find("\"sign_in_available\":false"), std::string::npos);
}

}  // namespace
}  // namespace bzzz::auth
