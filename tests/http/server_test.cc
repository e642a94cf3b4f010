// The HTTP server over a real socket: status codes, envelopes, headers,
// limits, access control, async handlers, keep-alive, metrics and drain.
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "cli/client.h"
#include "security/access_controller.h"
#include "support/support.h"

namespace bzzz::http {
namespace {

using nlohmann::json;
using bzzz::testing::RawExchange;
using bzzz::testing::RawStatus;

constexpr char kAdminToken[] = "admin-secret-token";
constexpr char kReaderToken[] = "reader-secret-token";

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto router = std::make_shared<Router>();
    auto add = [&](Method m, std::string pattern, std::string permission, Handler h) {
      Route r;
      r.method = m;
      r.pattern = std::move(pattern);
      r.permission = std::move(permission);
      r.handler = std::move(h);
      ASSERT_TRUE(router->Add(std::move(r)));
    };
    add(Method::kGet, "/public", std::string(kPublic), [](Request& req) {
      return Response::Json(200, json{{"ok", true}, {"principal", req.identity.principal}}.dump());
    });
    add(Method::kGet, "/items/:id", std::string(kPublic),
        [](Request& req) { return Response::Json(200, json{{"id", req.Param("id")}}.dump()); });
    add(Method::kPost, "/echo", std::string(kPublic),
        [](Request& req) { return Response::Text(200, req.body, "application/octet-stream"); });
    add(Method::kGet, "/secret", "admin:read", [](Request& req) {
      return Response::Json(200, json{{"principal", req.identity.principal}}.dump());
    });
    add(Method::kGet, "/throws", std::string(kPublic),
        [](Request&) -> Response { throw std::runtime_error("boom"); });
    add(Method::kGet, "/limited", std::string(kPublic), [](Request&) { return Response::Json(200, "{}"); });
    Route slow;
    slow.method = Method::kGet;
    slow.pattern = "/slow";
    slow.permission = std::string(kPublic);
    slow.async_handler = [this](Request&, Responder respond) {
      std::thread([this, respond] {
        slow_started.store(true);
        while (!release_slow.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        respond(Response::Json(200, R"({"slow":true})"));
      }).detach();
    };
    ASSERT_TRUE(router->Add(std::move(slow)));

    std::vector<config::ApiToken> tokens = {
        {"admin", "", {"system_admin"}, security::HashToken(kAdminToken)},
        {"reader", "", {"user"}, security::HashToken(kReaderToken)},
    };
    std::vector<std::unique_ptr<security::Authenticator>> auth;
    auth.push_back(std::make_unique<security::StaticTokenAuthenticator>(tokens, ""));
    auto access = std::make_shared<security::AccessController>(std::move(auth), security::Rbac(), true, &registry);

    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.body_limit_bytes = 1024;
    options.access_log = false;
    server = std::make_unique<Server>(options, router, access, &registry);
    server->Use([](Request& req, const Route& route) -> std::optional<Response> {
      if (route.pattern == "/limited") {
        Response r = ErrorResponse(429, "rate_limited", "slow down", req.request_id);
        r.headers.Set("Retry-After", "1");
        return r;
      }
      return std::nullopt;
    });
    server->Observe([this](const RequestRecord& r) {
      std::lock_guard lock(mu);
      records.push_back(std::string(r.method) + " " + std::string(r.route) + " " + std::to_string(r.status));
    });
    ASSERT_TRUE(server->Start().ok());
    client.url = "http://127.0.0.1:" + std::to_string(server->Port());
  }

  void TearDown() override {
    release_slow = true;
    server->Stop();
  }

  cli::ClientResponse Get(const std::string& path, const std::string& token = "") {
    cli::ClientOptions o = client;
    o.token = token;
    auto r = cli::Call(o, "GET", path);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::ClientResponse{};
  }

  std::string Raw(const std::string& bytes) { return RawExchange(server->Port(), bytes); }

  prometheus::Registry registry;
  std::unique_ptr<Server> server;
  cli::ClientOptions client;
  std::atomic<bool> slow_started{false};
  std::atomic<bool> release_slow{false};
  std::mutex mu;
  std::vector<std::string> records;
};

std::string HeaderValue(const std::string& raw, const std::string& name) {
  std::regex re("\r\n" + name + ": ([^\r]*)\r\n", std::regex::icase);
  std::smatch m;
  return std::regex_search(raw, m, re) ? m[1].str() : "";
}

TEST_F(ServerTest, ServesPublicRouteWithSecurityHeadersAndRequestId) {
  const std::string raw = Raw("GET /public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 200);
  EXPECT_EQ(HeaderValue(raw, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(HeaderValue(raw, "X-Frame-Options"), "DENY");
  EXPECT_EQ(HeaderValue(raw, "Cache-Control"), "no-store");
  EXPECT_NE(HeaderValue(raw, "Content-Security-Policy"), "");
  const std::regex uuid_v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(HeaderValue(raw, "X-Request-ID"), uuid_v4));
  EXPECT_NE(raw.find(R"("principal":"anonymous")"), std::string::npos);
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    const std::string id = HeaderValue(Raw("GET /public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "X-Request-ID");
    EXPECT_TRUE(std::regex_match(id, uuid_v4)) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 50u) << "every request gets an id of its own";
}

TEST_F(ServerTest, EchoesWellFormedRequestIdAndReplacesBadOnes) {
  std::string raw = Raw("GET /public HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-123\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(HeaderValue(raw, "X-Request-ID"), "abc-123");
  raw = Raw("GET /public HTTP/1.1\r\nHost: x\r\nX-Request-ID: <script>\r\nConnection: close\r\n\r\n");
  EXPECT_NE(HeaderValue(raw, "X-Request-ID"), "<script>");
  EXPECT_EQ(HeaderValue(raw, "X-Request-ID").size(), 36u);
}

TEST_F(ServerTest, UnknownRouteIs404Envelope) {
  const std::string raw = Raw("GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-ID: r1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 404);
  const auto body = json::parse(raw.substr(raw.find("\r\n\r\n") + 4));
  EXPECT_EQ(body["error"]["code"], "not_found");
  EXPECT_EQ(body["error"]["request_id"], "r1");
  EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
}

TEST_F(ServerTest, WrongMethodIs405WithAllow) {
  const std::string raw = Raw("DELETE /public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 405);
  EXPECT_EQ(HeaderValue(raw, "Allow"), "GET, HEAD, OPTIONS");
  EXPECT_NE(raw.find("method_not_allowed"), std::string::npos);
  const std::string weird = Raw("BREW /public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(weird), 405);
  EXPECT_NE(weird.find("BREW is not allowed on /public"), std::string::npos) << weird;
  const std::string options = Raw("OPTIONS /items/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(options), 204);
  EXPECT_EQ(HeaderValue(options, "Allow"), "GET, HEAD, OPTIONS");
}

TEST_F(ServerTest, HeadHasNoBody) {
  const std::string raw = Raw("HEAD /items/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 200);
  EXPECT_EQ(HeaderValue(raw, "Content-Length"), "10");
  EXPECT_EQ(raw.substr(raw.find("\r\n\r\n") + 4), "");
}

TEST_F(ServerTest, ProtectedRouteNeedsIdentityAndPermission) {
  auto none = Get("/secret");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(json::parse(none.body)["error"]["code"], "unauthorized");
  EXPECT_EQ(Get("/secret", "wrong-token").status, 401);
  auto malformed = Raw("GET /secret HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(malformed), 401);
  EXPECT_EQ(HeaderValue(malformed, "WWW-Authenticate"), "Bearer realm=\"bzzz\"");
  auto forbidden = Get("/secret", kReaderToken);
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(json::parse(forbidden.body)["error"]["code"], "forbidden");
  auto ok = Get("/secret", kAdminToken);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(json::parse(ok.body)["principal"], "admin");
}

TEST_F(ServerTest, OversizedBodyIs413AndDoesNotReachTheHandler) {
  const std::string big(20 * 1024 * 1024, 'x');
  const std::string raw = Raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(big.size()) +
                              "\r\n\r\n" + big);
  EXPECT_EQ(RawStatus(raw), 413);
  EXPECT_NE(raw.find("payload_too_large"), std::string::npos);
  EXPECT_NE(raw.find("request body exceeds the limit of 1024 bytes"), std::string::npos) << raw;
  std::string chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  EXPECT_EQ(RawStatus(Raw(chunked)), 413);
  const std::string small = Raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_EQ(RawStatus(small), 200);
  EXPECT_EQ(small.substr(small.find("\r\n\r\n") + 4), "hello");
}

TEST_F(ServerTest, MalformedRequestsAre400) {
  EXPECT_EQ(RawStatus(Raw("GARBAGE\r\n\r\n")), 400);
  EXPECT_EQ(RawStatus(Raw("GET /public HTTP/9.9\r\n\r\n")), 400);
  EXPECT_EQ(RawStatus(Raw("GET /public HTTP/1.1\r\nContent-Length: abc\r\n\r\n")), 400);
  EXPECT_EQ(RawStatus(Raw("GET /a%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 400);
  EXPECT_EQ(RawStatus(Raw("GET http://evil/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 400);
  // The server is still fine afterwards.
  EXPECT_EQ(Get("/public").status, 200);
  // Refused requests are observed (they reach /debug/requests).
  ASSERT_TRUE(bzzz::testing::Eventually(
      [&] {
        std::lock_guard lock(mu);
        return std::count(records.begin(), records.end(), "OTHER unparsed 400") >= 3;
      },
      std::chrono::seconds(2)));
}

TEST_F(ServerTest, HugeHeadersAre431) {
  const std::string raw = Raw("GET /public HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'h') + "\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 431);
}

TEST_F(ServerTest, HandlerExceptionIs500Envelope) {
  auto r = Get("/throws");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "internal");
}

TEST_F(ServerTest, MiddlewareCanAnswerFirst) {
  const std::string raw = Raw("GET /limited HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 429);
  EXPECT_EQ(HeaderValue(raw, "Retry-After"), "1");
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  const std::string raw = Raw(
      "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /items/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(raw.find(R"({"id":"1"})"), std::string::npos);
  EXPECT_NE(raw.find(R"({"id":"2"})"), std::string::npos);
  EXPECT_NE(raw.find(R"({"id":"3"})"), std::string::npos);
}

TEST_F(ServerTest, MetricsUseRouteTemplatesNotPaths) {
  Get("/items/42");
  Get("/items/43");
  Get("/nope");
  // Metrics are recorded after the response is written: wait for them.
  std::string text;
  auto serialize = [&] {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry.Collect());
    text = out.str();
    return text.find(R"(no_http_requests_total{method="GET",route="/items/:id",status="200"} 2)") !=
               std::string::npos &&
           text.find(R"(route="unmatched",status="404")") != std::string::npos;
  };
  ASSERT_TRUE(bzzz::testing::Eventually(serialize, std::chrono::seconds(5))) << text;
  EXPECT_EQ(text.find("/items/42"), std::string::npos);
  EXPECT_NE(text.find("no_http_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(text.find("no_http_requests_in_flight"), std::string::npos);
}

TEST_F(ServerTest, ObserversSeeEveryRequest) {
  Get("/items/7");
  Get("/secret");
  ASSERT_TRUE(bzzz::testing::Eventually(
      [&] {
        std::lock_guard lock(mu);
        return records.size() >= 2;
      },
      std::chrono::seconds(2)));
  std::lock_guard lock(mu);
  // Observers run after the write, on the connection's thread: the two
  // requests may be observed in either order.
  std::sort(records.begin(), records.end());
  EXPECT_EQ(records, (std::vector<std::string>{"GET /items/:id 200", "GET /secret 401"}));
}

TEST_F(ServerTest, DrainLetsInFlightRequestsFinishAndRefusesNewConnections) {
  auto pending = std::async(std::launch::async, [&] { return Get("/slow"); });
  ASSERT_TRUE(bzzz::testing::Eventually([&] { return slow_started.load(); }, std::chrono::seconds(5)));
  EXPECT_EQ(server->InFlight(), 1);
  server->StopAccepting();
  EXPECT_FALSE(server->WaitDrained(std::chrono::milliseconds(100)));
  release_slow = true;
  EXPECT_TRUE(server->WaitDrained(std::chrono::seconds(5)));
  const auto answer = pending.get();
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, R"({"slow":true})");
  cli::ClientOptions o = client;
  o.timeout = std::chrono::milliseconds(1000);
  EXPECT_FALSE(cli::Call(o, "GET", "/public").ok()) << "listener should be closed";
}

// A server on a free loopback port without an access log.
ServerOptions QuietOptions() {
  ServerOptions options;
  options.port = 0;
  options.access_log = false;
  return options;
}

// Half the cores, but at least two I/O threads: with one, every connection
// waits whenever that thread waits for a core (BENCHMARKS.md, HTTP).
TEST(ServerStartTest, DefaultIoThreadsAreHalfTheCoresButAtLeastTwo) {
  auto router = std::make_shared<Router>();
  ServerOptions options = QuietOptions();
  Server by_default(options, router, nullptr, nullptr);
  ASSERT_TRUE(by_default.Start().ok());
  const int half = static_cast<int>(std::thread::hardware_concurrency() / 2);
  EXPECT_EQ(by_default.IoThreads(), std::max(2, half));
  options.threads = 3;
  Server three(options, router, nullptr, nullptr);
  ASSERT_TRUE(three.Start().ok());
  EXPECT_EQ(three.IoThreads(), 3);
}

TEST(ServerStartTest, PortInUseIsUnavailable) {
  auto router = std::make_shared<Router>();
  ServerOptions options = QuietOptions();
  Server first(options, router, nullptr, nullptr);
  ASSERT_TRUE(first.Start().ok());
  options.port = first.Port();
  Server second(options, router, nullptr, nullptr);
  const Status s = second.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(std::to_string(first.Port())), std::string::npos);
}


// A TCP connection to 127.0.0.1:port from `source` (any 127.0.0.0/8
// address); -1 when it cannot connect.
int ConnectFrom(const char* source, std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, source, &local.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    close(fd);
    return -1;
  }
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Whether the server closed `fd` (end of file or reset) within the socket's
// receive timeout.
bool ClosedByServer(int fd) {
  char c;
  const ssize_t n = recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

class HostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto router = std::make_shared<Router>();
    Route r;
    r.method = Method::kGet;
    r.pattern = "/health/live";
    r.permission = std::string(kPublic);
    r.handler = [](Request&) { return Response::Json(200, R"({"status":"alive"})"); };
    ASSERT_TRUE(router->Add(std::move(r)));
    ServerOptions options;
    options.port = 0;
    options.threads = 1;
    options.access_log = false;
    options.header_timeout = std::chrono::milliseconds(500);
    options.max_connections_per_client = 4;
    server = std::make_unique<Server>(options, router, nullptr, &registry);
    ASSERT_TRUE(server->Start().ok());
  }
  void TearDown() override { server->Stop(); }

  prometheus::Registry registry;
  std::unique_ptr<Server> server;
};

// A client that trickles its headers (slowloris) is cut off at
// header_timeout, long before the keep-alive timeout, however steadily it
// sends.
TEST_F(HostileClientTest, TrickledHeadersAreCutOffAtTheHeaderTimeout) {
  const int fd = ConnectFrom("127.0.0.1", server->Port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  bool closed = false;
  for (std::size_t i = 0; i < request.size() && !closed; ++i) {
    if (send(fd, &request[i], 1, MSG_NOSIGNAL) != 1) closed = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // 5 s in all, if the server let it
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) closed = ClosedByServer(fd);
  }
  EXPECT_TRUE(closed || ClosedByServer(fd));
  close(fd);
}

// One client address holds at most max_connections_per_client connections;
// its next one is closed at once, while another client is served.
TEST_F(HostileClientTest, OneClientCannotHoldEverySlot) {
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    const int fd = ConnectFrom("127.0.0.2", server->Port());
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }
  // Accepted by the server before the fifth arrives.
  ASSERT_TRUE(testing::Eventually(
      [&] {
        const std::string text = [&] {
          std::ostringstream out;
          prometheus::TextSerializer().Serialize(out, registry.Collect());
          return out.str();
        }();
        return text.find("no_http_open_connections 4") != std::string::npos;
      },
      std::chrono::seconds(5)));
  const int fifth = ConnectFrom("127.0.0.2", server->Port());
  ASSERT_GE(fifth, 0);  // the kernel completes the handshake; the server closes it
  EXPECT_TRUE(ClosedByServer(fifth));
  close(fifth);
  // Another address is served meanwhile.
  const std::string answer = RawExchange(server->Port(), "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(answer), 200) << answer;
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  EXPECT_NE(out.str().find("bzzz_http_connections_refused_total{reason=\"per_client\"} 1"), std::string::npos)
      << out.str();
  // Closing one frees a slot for that client again.
  close(held.back());
  held.pop_back();
  ASSERT_TRUE(testing::Eventually(
      [&] {
        const int fd = ConnectFrom("127.0.0.2", server->Port());
        if (fd < 0) return false;
        const std::string req = "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        send(fd, req.data(), req.size(), MSG_NOSIGNAL);
        char buf[512];
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        close(fd);
        return n > 12 && std::string(buf, 12) == "HTTP/1.1 200";
      },
      std::chrono::seconds(5)));
  for (int fd : held) close(fd);
}

}  // namespace
}  // namespace bzzz::http
