// The console's routes over a real socket (console/console.h): the files
// with their policy and validators, who the caller is and what it may do,
// the history long poll, and files read from console.assets_dir.
#include "console/console.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include <filesystem>
#include <regex>

#include "cli/client.h"
#include "http/server.h"
#include "security/access_controller.h"
#include "support/support.h"

namespace bzzz::console {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::RawExchange;
using testing::RawStatus;

constexpr char kAdmin[] = "console-admin-token";
constexpr char kReader[] = "console-reader-token";

class ConsoleTest : public ::testing::Test {
 protected:
  void Start(std::string assets_dir = "") {
    metrics = std::make_shared<prometheus::Registry>();
    health = std::make_shared<ops::HealthRegistry>(metrics.get());
    ops::HistorySources sources;
    sources.health = health;
    sources.metrics = metrics.get();
    sources.node_id = "n1";
    history = ops::History::Start(std::move(sources), {.interval = 50ms, .samples = 100, .changes = 10});
    router = std::make_shared<http::Router>();
    // Routes of other subsystems, whose permissions /api/v1/me reports.
    for (const char* permission : {"tasks:read", "tasks:write", "dlq:write", "hmmm:admin", "election:read"}) {
      http::Route r;
      r.method = http::Method::kGet;
      r.pattern = std::string("/x/") + permission;
      r.permission = permission;
      r.handler = [](http::Request&) { return http::Response::Json(200, "{}"); };
      ASSERT_TRUE(router->Add(std::move(r)));
    }
    ASSERT_TRUE(RegisterConsoleRoutes(*router, {.assets_dir = std::move(assets_dir),
                                                .history = history,
                                                .node_id = "n1",
                                                .node_name = "node-one",
                                                .version = "9.9.9",
                                                .started_at = std::chrono::system_clock::time_point(
                                                    std::chrono::milliseconds(1796000000000))})
                    .ok());
    std::vector<std::unique_ptr<security::Authenticator>> auth;
    auth.push_back(std::make_unique<security::StaticTokenAuthenticator>(
        std::vector<config::ApiToken>{{"reader", "", {"read_only"}, security::HashToken(kReader)}}, kAdmin));
    auto access =
        std::make_shared<security::AccessController>(std::move(auth), security::Rbac(), true, metrics.get());
    http::ServerOptions options;
    options.port = 0;
    options.threads = 1;
    options.access_log = false;
    server = std::make_unique<http::Server>(options, router, access, metrics.get());
    ASSERT_TRUE(server->Start().ok());
  }
  void TearDown() override {
    if (server) server->Stop();
    if (history) history->Stop();
  }

  std::string Raw(const std::string& path, const std::string& headers = "") {
    return RawExchange(server->Port(),
                       "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + headers + "Connection: close\r\n\r\n");
  }
  static std::string Header(const std::string& raw, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(raw, m, std::regex("\r\n" + name + ": ([^\r]*)\r\n", std::regex::icase))) return "";
    return m[1];
  }
  static std::string Body(const std::string& raw) {
    const auto at = raw.find("\r\n\r\n");
    return at == std::string::npos ? "" : raw.substr(at + 4);
  }
  cli::ClientResponse Call(const std::string& path, const std::string& token) {
    cli::ClientOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(server->Port());
    o.token = token;
    auto r = cli::Call(o, "GET", path);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cli::ClientResponse{};
  }

  std::shared_ptr<prometheus::Registry> metrics;
  std::shared_ptr<ops::HealthRegistry> health;
  std::shared_ptr<ops::History> history;
  std::shared_ptr<http::Router> router;
  std::unique_ptr<http::Server> server;
};

TEST_F(ConsoleTest, ThePageAndItsFilesAreServedWithTheConsolePolicyAndValidators) {
  Start();
  const std::string page = Raw("/ui/");
  ASSERT_EQ(RawStatus(page), 200) << page;
  EXPECT_EQ(Header(page, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(Header(page, "Content-Security-Policy"), kConsolePolicy);
  EXPECT_EQ(Header(page, "Cache-Control"), "no-cache");
  const std::string etag = Header(page, "ETag");
  ASSERT_FALSE(etag.empty());
  const std::string again = Raw("/ui/", "If-None-Match: " + etag + "\r\n");
  EXPECT_EQ(RawStatus(again), 304);
  EXPECT_EQ(Body(again), "");
  EXPECT_EQ(RawStatus(Raw("/ui/", "If-None-Match: \"other\"\r\n")), 200);

  const std::string bare = Raw("/ui");
  EXPECT_EQ(RawStatus(bare), 301);
  EXPECT_EQ(Header(bare, "Location"), "/ui/");

  for (const Asset& a : BuiltinAssets()) {
    const std::string raw = Raw("/ui/" + std::string(a.name));
    ASSERT_EQ(RawStatus(raw), 200) << a.name;
    EXPECT_EQ(Header(raw, "Content-Type"), a.content_type) << a.name;
    EXPECT_EQ(Body(raw), a.body) << a.name;
  }
  for (const char* missing : {"/ui/nope.js", "/ui/..%2Fconsole.cc", "/ui/.hidden", "/ui/a/b.js"}) {
    EXPECT_EQ(RawStatus(Raw(missing)), 404) << missing;
  }
  // Every other route keeps the API's policy.
  const std::string api = Raw("/api/v1/me");
  EXPECT_EQ(Header(api, "Content-Security-Policy"), "default-src 'none'; frame-ancestors 'none'");
}

// The policy forbids inline script and style: the page must not need them.
TEST_F(ConsoleTest, ThePageLoadsOnlyItsOwnFiles) {
  std::string index;
  for (const Asset& a : BuiltinAssets()) {
    if (a.name == "index.html") index = std::string(a.body);
  }
  ASSERT_FALSE(index.empty());
  EXPECT_NE(index.find("src=\"app.js\""), std::string::npos);
  EXPECT_NE(index.find("href=\"app.css\""), std::string::npos);
  const std::regex script("<script([^>]*)>", std::regex::icase);
  for (auto it = std::sregex_iterator(index.begin(), index.end(), script); it != std::sregex_iterator(); ++it) {
    EXPECT_NE((*it)[1].str().find("src="), std::string::npos) << "an inline script: " << it->str();
  }
  EXPECT_EQ(index.find("style=\""), std::string::npos) << "an inline style attribute";
  EXPECT_EQ(index.find("<style"), std::string::npos) << "an inline style element";
  EXPECT_EQ(std::regex_search(index, std::regex(" on[a-z]+=\"", std::regex::icase)), false)
      << "an inline event handler";
  EXPECT_EQ(std::regex_search(index, std::regex("(src|href)=\"(https?:)?//", std::regex::icase)), false)
      << "a file from another origin";
}

TEST_F(ConsoleTest, MeNamesTheCallerAndThePermissionsItHolds) {
  Start();
  const auto admin = Call("/api/v1/me", kAdmin);
  ASSERT_EQ(admin.status, 200) << admin.body;
  const json a = json::parse(admin.body);
  EXPECT_EQ(a["principal"], "bootstrap-admin");
  EXPECT_EQ(a["node_id"], "n1");
  EXPECT_EQ(a["node_name"], "node-one");
  EXPECT_EQ(a["version"], "9.9.9");
  EXPECT_EQ(a["started_ms"], 1796000000000);
  EXPECT_EQ(a["permissions"], json({"dlq:write", "election:read", "hmmm:admin", "system:read", "tasks:read",
                                    "tasks:write"}));

  const auto reader = Call("/api/v1/me", kReader);
  ASSERT_EQ(reader.status, 200) << reader.body;
  const json r = json::parse(reader.body);
  EXPECT_EQ(r["principal"], "reader");
  EXPECT_EQ(r["roles"], json({"read_only"}));
  EXPECT_EQ(r["permissions"], json({"election:read", "system:read", "tasks:read"})) << "no write, no admin";

  EXPECT_EQ(Call("/api/v1/me", "").status, 401);
  EXPECT_EQ(Call("/api/v1/me", "not-a-token").status, 401);
}

TEST_F(ConsoleTest, HistoryIsALongPollAndRefusesBadParameters) {
  Start();
  ASSERT_TRUE(testing::Eventually([&] { return history->Latest() >= 1; }, 5s));
  const std::uint64_t now = history->Latest();
  const auto r = Call("/api/v1/console/history?after=" + std::to_string(now) + "&wait_ms=10000", kReader);
  ASSERT_EQ(r.status, 200) << r.body;
  const json h = json::parse(r.body);
  EXPECT_EQ(h["node_id"], "n1");
  ASSERT_FALSE(h["samples"].empty()) << "the answer came with the next sample";
  EXPECT_GT(h["samples"][0]["seq"].get<std::uint64_t>(), now);
  for (const char* bad : {"after=-1", "after=x", "wait_ms=30001", "wait_ms=-5"}) {
    const auto b = Call(std::string("/api/v1/console/history?") + bad, kReader);
    EXPECT_EQ(b.status, 400) << bad;
    EXPECT_EQ(json::parse(b.body)["error"]["code"], "bad_request") << bad;
  }
  EXPECT_EQ(Call("/api/v1/console/history", "").status, 401);
}

TEST_F(ConsoleTest, FilesComeFromTheAssetsDirectoryWhenOneIsSet) {
  testing::TempDir dir;
  dir.Write("index.html", "<p>one</p>");
  dir.Write("app.js", "let x = 1;");
  dir.Write("notes.txt", "not served");
  Start(dir.path());
  EXPECT_EQ(Body(Raw("/ui/")), "<p>one</p>");
  dir.Write("index.html", "<p>two</p>");
  EXPECT_EQ(Body(Raw("/ui/")), "<p>two</p>") << "read at every request";
  EXPECT_EQ(Header(Raw("/ui/app.js"), "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(RawStatus(Raw("/ui/notes.txt")), 404) << "only the console's kinds of file";
  EXPECT_EQ(RawStatus(Raw("/ui/app.css")), 404);
  EXPECT_EQ(RawStatus(Raw("/ui/..%2F..%2Fetc%2Fpasswd")), 404);
  std::filesystem::create_directory(dir.File("dir.js"));
  EXPECT_EQ(RawStatus(Raw("/ui/dir.js")), 404) << "a directory is not a file";
}

}  // namespace
}  // namespace bzzz::console
