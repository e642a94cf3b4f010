#include "http/router.h"

#include <gtest/gtest.h>

namespace bzzz::http {
namespace {

Route Make(Method m, std::string pattern, std::string permission = std::string(kPublic)) {
  Route r;
  r.method = m;
  r.pattern = std::move(pattern);
  r.permission = std::move(permission);
  r.handler = [](Request&) { return Response::Json(200, "{}"); };
  return r;
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(router.Add(Make(Method::kGet, "/health")));
    ASSERT_TRUE(router.Add(Make(Method::kGet, "/health/checks")));
    ASSERT_TRUE(router.Add(Make(Method::kPost, "/admin/shutdown", "admin:write")));
    ASSERT_TRUE(router.Add(Make(Method::kPost, "/admin/health/check/:name", "admin:write")));
    ASSERT_TRUE(router.Add(Make(Method::kGet, "/items/:id")));
    ASSERT_TRUE(router.Add(Make(Method::kDelete, "/items/:id")));
    ASSERT_TRUE(router.Add(Make(Method::kGet, "/items/special")));
    ASSERT_TRUE(router.Add(Make(Method::kGet, "/files/*rest")));
  }
  Router router;
};

TEST_F(RouterTest, MatchesStaticRoutes) {
  auto m = router.Match(Method::kGet, "/health");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route->pattern, "/health");
  EXPECT_EQ(router.Match(Method::kGet, "/health/checks").route->pattern, "/health/checks");
}

TEST_F(RouterTest, TrailingSlashIsNotSignificant) {
  auto m = router.Match(Method::kGet, "/health/");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route->pattern, "/health");
}

TEST_F(RouterTest, ExtractsParameters) {
  auto m = router.Match(Method::kPost, "/admin/health/check/storage-health");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route->pattern, "/admin/health/check/:name");
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "name");
  EXPECT_EQ(m.params[0].second, "storage-health");
}

TEST_F(RouterTest, StaticRouteWinsOverParameter) {
  EXPECT_EQ(router.Match(Method::kGet, "/items/special").route->pattern, "/items/special");
  EXPECT_EQ(router.Match(Method::kGet, "/items/42").route->pattern, "/items/:id");
}

TEST_F(RouterTest, RestParameterTakesTheRemainingPath) {
  auto m = router.Match(Method::kGet, "/files/a/b/c.txt");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.params[0].second, "a/b/c.txt");
}

TEST_F(RouterTest, UnknownPathIsNotFound) {
  EXPECT_EQ(router.Match(Method::kGet, "/nope").kind, RouteMatch::Kind::kNotFound);
  EXPECT_EQ(router.Match(Method::kGet, "/admin/health/check").kind, RouteMatch::Kind::kNotFound);
  EXPECT_EQ(router.Match(Method::kPost, "/admin/health/check/a/b").kind, RouteMatch::Kind::kNotFound);
  EXPECT_EQ(router.Match(Method::kGet, "/").kind, RouteMatch::Kind::kNotFound);
}

TEST_F(RouterTest, KnownPathWithWrongMethodListsAllowedMethods) {
  auto m = router.Match(Method::kPost, "/health");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kMethodNotAllowed);
  EXPECT_EQ(AllowHeader(m.allowed), "GET, HEAD, OPTIONS");
  auto items = router.Match(Method::kPut, "/items/7");
  ASSERT_EQ(items.kind, RouteMatch::Kind::kMethodNotAllowed);
  EXPECT_EQ(AllowHeader(items.allowed), "GET, HEAD, DELETE, OPTIONS");
  EXPECT_EQ(router.Match(Method::kOther, "/health").kind, RouteMatch::Kind::kMethodNotAllowed);
}

TEST_F(RouterTest, HeadIsServedByGet) {
  auto m = router.Match(Method::kHead, "/items/9");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route->method, Method::kGet);
}

TEST_F(RouterTest, RejectsBadDeclarations) {
  std::string error;
  EXPECT_FALSE(router.Add(Make(Method::kGet, "/health"), &error));
  EXPECT_NE(error.find("duplicate"), std::string::npos);
  EXPECT_FALSE(router.Add(Make(Method::kGet, "/items/:other"), &error)) << "same shape as /items/:id";
  EXPECT_FALSE(router.Add(Make(Method::kGet, "no-slash"), &error));
  EXPECT_FALSE(router.Add(Make(Method::kGet, "/x/:"), &error));
  EXPECT_FALSE(router.Add(Make(Method::kGet, "/x/*rest/more"), &error));
  Route no_permission = Make(Method::kGet, "/np", "");
  EXPECT_FALSE(router.Add(no_permission, &error));
  EXPECT_NE(error.find("permission"), std::string::npos);
  Route no_handler = Make(Method::kGet, "/nh");
  no_handler.handler = nullptr;
  EXPECT_FALSE(router.Add(no_handler, &error));
  Route both = Make(Method::kGet, "/both");
  both.async_handler = [](Request&, Responder) {};
  EXPECT_FALSE(router.Add(both, &error));
}

TEST(MessageTest, QueryParametersAreDecoded) {
  Request r;
  r.query = "limit=10&name=a%20b&flag&plus=x+y";
  EXPECT_EQ(r.QueryParam("limit").value(), "10");
  EXPECT_EQ(r.QueryParam("name").value(), "a b");
  EXPECT_EQ(r.QueryParam("flag").value(), "");
  EXPECT_EQ(r.QueryParam("plus").value(), "x y");
  EXPECT_FALSE(r.QueryParam("missing").has_value());
}

TEST(MessageTest, PercentDecodeRejectsMalformedEscapes) {
  EXPECT_EQ(PercentDecode("/a%2Fb", false).value(), "/a/b");
  EXPECT_FALSE(PercentDecode("/a%2", false).has_value());
  EXPECT_FALSE(PercentDecode("/a%zz", false).has_value());
  EXPECT_EQ(PercentDecode("a+b", false).value(), "a+b");
}

TEST(MessageTest, HeadersAreCaseInsensitive) {
  Headers h;
  h.Add("X-Request-ID", "a");
  ASSERT_NE(h.Find("x-request-id"), nullptr);
  EXPECT_EQ(*h.Find("X-REQUEST-ID"), "a");
  h.Set("x-request-id", "b");
  EXPECT_EQ(h.All().size(), 1u);
  EXPECT_EQ(*h.Find("X-Request-Id"), "b");
}

TEST(MessageTest, ErrorEnvelopeHasCodeMessageAndRequestId) {
  auto r = ErrorResponse(404, "not_found", "no route for /x\"y", "rid-1");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":{"code":"not_found","message":"no route for /x\"y","request_id":"rid-1"}})");
}

}  // namespace
}  // namespace bzzz::http
