#include "http/wire.h"

#include <gtest/gtest.h>

namespace bzzz::http {
namespace {

std::string Serialize(const Response& r, WireOptions o = {}) {
  if (o.request_id.empty()) o.request_id = "rid";
  std::string out = "stale content";
  SerializeResponse(r, o, out);
  return out;
}

TEST(WireTest, StatusLineHeadersAndBody) {
  const std::string out = Serialize(Response::Json(200, R"({"a":1})"));
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\nServer: bzzz\r\nDate: ", 0), 0u) << out;
  EXPECT_NE(out.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nX-Request-ID: rid\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nX-Content-Type-Options: nosniff\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nCache-Control: no-store\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Connection:"), std::string::npos) << "HTTP/1.1 keep-alive is implicit";
  EXPECT_TRUE(out.ends_with("\r\nContent-Length: 7\r\n\r\n{\"a\":1}")) << out;
}

TEST(WireTest, ConnectionHeaderFollowsKeepAliveAndVersion) {
  EXPECT_NE(Serialize(Response::Json(200, "{}"), {11, false, false, "r"}).find("\r\nConnection: close\r\n"),
            std::string::npos);
  const std::string v10 = Serialize(Response::Json(200, "{}"), {10, true, false, "r"});
  EXPECT_EQ(v10.rfind("HTTP/1.0 200 OK", 0), 0u);
  EXPECT_NE(v10.find("\r\nConnection: keep-alive\r\n"), std::string::npos);
}

TEST(WireTest, HeadKeepsLengthWithoutBody) {
  const std::string out = Serialize(Response::Json(200, "0123456789"), {11, true, true, "r"});
  EXPECT_NE(out.find("Content-Length: 10\r\n\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

TEST(WireTest, NoContentHasNoBodyNorLength) {
  const std::string out = Serialize(Response::Text(204, "ignored"));
  EXPECT_EQ(out.rfind("HTTP/1.1 204 No Content\r\n", 0), 0u);
  EXPECT_EQ(out.find("Content-Length"), std::string::npos);
  EXPECT_EQ(out.find("\r\nContent-Type:"), std::string::npos);
  EXPECT_EQ(out.find("ignored"), std::string::npos);
}

TEST(WireTest, HeaderInjectionAndFramingHeadersAreDropped) {
  Response r = Response::Json(200, "{}");
  r.headers.Add("X-Good", "yes");
  r.headers.Add("X-Evil", "a\r\nSet-Cookie: pwned=1");
  r.headers.Add("X-Bad\r\nName", "v");
  r.headers.Add("Content-Length", "999");
  r.headers.Add("Cache-Control", "max-age=5");
  const std::string out = Serialize(r);
  EXPECT_NE(out.find("\r\nX-Good: yes\r\n"), std::string::npos);
  EXPECT_EQ(out.find("pwned"), std::string::npos);
  EXPECT_EQ(out.find("X-Bad"), std::string::npos);
  EXPECT_EQ(out.find("999"), std::string::npos);
  EXPECT_NE(out.find("\r\nCache-Control: max-age=5\r\n"), std::string::npos);
  EXPECT_EQ(out.find("no-store"), std::string::npos);
  EXPECT_EQ(Serialize(Response::Json(200, "{}"), {11, true, false, "bad\r\nid"}).find("bad"), std::string::npos);
}

TEST(WireTest, UnknownAndInvalidStatuses) {
  EXPECT_EQ(Serialize(Response::Json(299, "{}")).rfind("HTTP/1.1 299 Unknown\r\n", 0), 0u);
  EXPECT_EQ(Serialize(Response::Json(42, "{}")).rfind("HTTP/1.1 500 Internal Server Error\r\n", 0), 0u);
}

}  // namespace
}  // namespace bzzz::http
