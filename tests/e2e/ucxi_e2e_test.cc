// End-to-end UCXI: three bzzz processes. Versions written on one node are
// read and navigated on the others (through the DHT) with the CLI; every
// error class answers its UCXL code with the HTTP status of the code's
// number; the history survives a restart.
#include <gtest/gtest.h>
#include <signal.h>

#include "e2e/cluster.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using e2e::Cluster;
using e2e::json;
using testing::Eventually;

struct Answer {
  int status = 0;
  json body;
};

Answer Ucxi(Cluster& c, int i, const char* method, const std::string& path, const std::string& body = "",
            bool with_token = true) {
  cli::ClientOptions o;
  o.url = c.Url(i);
  if (with_token) o.token = e2e::kAdminToken;
  auto r = cli::Call(o, method, path, body);
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false)};
}

std::string Code(const Answer& a) {
  if (a.body.contains("error")) return a.body["error"].value("code", "");
  if (a.body.contains("response")) return a.body["response"].value("code", "");
  return "";
}

TEST(UcxiEndToEnd, WriteHereReadThereErrorsAndRestart) {
  Cluster c;
  // Roles r and qa are no RBAC roles: their keys are configured.
  c.node_args = {"--bootstrap-expect", "3", "--set", "security.keys.roles=r,qa"};
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i);
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 3 && c.Peers(1) == 3 && c.Peers(2) == 3; }, 20s));

  const std::string address = "ucxl://alice:developer@bzzz:task-7/*^/design/api.md";
  auto put1 = c.Cli({"ucxl", "put", address, "--content", "REST first", "--url", c.Url(0)});
  ASSERT_EQ(put1.first, 0) << put1.second;
  EXPECT_NE(put1.second.find("UCXL-201-CREATED"), std::string::npos) << put1.second;
  auto put2 = c.Cli({"ucxl", "put", address, "--content", "gRPC second", "--content-type", "text/markdown",
                     "--url", c.Url(0)});
  ASSERT_EQ(put2.first, 0) << put2.second;

  // Read on another node: resolved through the DHT.
  auto get = c.Cli({"ucxl", "get", address, "--json", "--url", c.Url(2)});
  ASSERT_EQ(get.first, 0) << get.second;
  const json g = json::parse(get.second.substr(get.second.find('{')), nullptr, false);
  ASSERT_TRUE(g.is_object()) << get.second;
  EXPECT_EQ(g["data"]["content"], "gRPC second");
  EXPECT_EQ(g["data"]["version"]["number"], 2);
  EXPECT_NE(g["data"]["source"], "local");
  auto back = c.Cli({"ucxl", "navigate", address, "--steps", "-1", "--url", c.Url(1)});
  ASSERT_EQ(back.first, 0) << back.second;
  EXPECT_NE(back.second.find("REST first"), std::string::npos) << back.second;
  auto first =
      c.Cli({"ucxl", "get", "ucxl://alice:developer@bzzz:task-7/*~1/design/api.md", "--url", c.Url(1)});
  EXPECT_NE(first.second.find("REST first"), std::string::npos) << first.second;
  auto discover = c.Cli({"ucxl", "discover", "ucxl://any:any@bzzz:any/*^", "--url", c.Url(0)});
  EXPECT_EQ(discover.first, 0) << discover.second;
  EXPECT_NE(discover.second.find("design/api.md"), std::string::npos) << discover.second;
  auto search = c.Cli({"ucxl", "search", "gRPC", "--url", c.Url(0)});
  EXPECT_NE(search.second.find("design/api.md"), std::string::npos) << search.second;
  auto announce = c.Cli({"ucxl", "announce", address, "--url", c.Url(0)});
  EXPECT_EQ(announce.first, 0) << announce.second;
  EXPECT_NE(announce.second.find("UCXL-202-ACCEPTED"), std::string::npos) << announce.second;
  // The CLI refuses a malformed address before sending, naming the field.
  auto bad = c.Cli({"ucxl", "get", "ucxl://alice:dev@bzzz:t/*~0/x", "--url", c.Url(0)});
  EXPECT_EQ(bad.first, 2) << bad.second;
  EXPECT_NE(bad.second.find("temporal"), std::string::npos) << bad.second;

  // Error classes: the HTTP status is the code's number.
  const std::pair<Answer, std::string> cases[] = {
      {Ucxi(c, 0, "GET", "/ucxi/v1/get?address=ucxl%3A%2F%2Fal%20ice%3Ar%40p%3At%2F*%5E%2Fx"),
       "UCXL-400-INVALID_ADDRESS"},
      {Ucxi(c, 0, "GET", "/ucxi/v1/get?address=ucxl://alice:developer@bzzz:task-7/*~9/design/api.md"),
       "UCXL-400-TEMPORAL_INVALID"},
      {Ucxi(c, 0, "GET", "/ucxi/v1/get?address=ucxl://alice:developer@bzzz:task-7/*%5E/missing"),
       "UCXL-404-NOT_FOUND"},
      {Ucxi(c, 0, "PUT", "/ucxi/v1/put?address=ucxl://a:r@p:t/*%5E/big", std::string(2 << 20, 'x')),
       "UCXL-413-PAYLOAD_TOO_LARGE"},
      {Ucxi(c, 0, "POST", "/ucxi/v1/post", "{not json"), "UCXL-400-INVALID_PAYLOAD"},
      {Ucxi(c, 0, "POST", "/ucxi/v1/get"), "UCXL-405-METHOD_NOT_ALLOWED"},
      {Ucxi(c, 0, "GET", "/ucxi/v1/status", "", /*with_token=*/false), "UCXL-401-UNAUTHORIZED"},
      // A valid pattern where one address is needed, and a second delete.
      {Ucxi(c, 0, "GET", "/ucxi/v1/get?address=ucxl://any:developer@bzzz:task-7/*%5E/design/api.md"),
       "UCXL-422-UNPROCESSABLE"},
      {Ucxi(c, 0, "PUT", "/ucxi/v1/put?address=ucxl://a:r@p:t/*%5E/twice", "x"), "UCXL-201-CREATED"},
      {Ucxi(c, 0, "DELETE", "/ucxi/v1/delete?address=ucxl://a:r@p:t/*%5E/twice"), "UCXL-200-SUCCESS"},
      {Ucxi(c, 0, "DELETE", "/ucxi/v1/delete?address=ucxl://a:r@p:t/*%5E/twice"), "UCXL-409-CONFLICT"},
  };
  for (const auto& [answer, code] : cases) {
    EXPECT_EQ(Code(answer), code) << answer.body.dump();
    EXPECT_EQ(answer.status, std::stoi(code.substr(5, 3))) << answer.body.dump();
    if (answer.body.contains("error")) {
      const json& e = answer.body["error"];
      EXPECT_EQ(e["source"], "ucxi-server");
      EXPECT_FALSE(e["request_id"].get<std::string>().empty());
      EXPECT_TRUE(e.contains("timestamp") && e.contains("path") && e.contains("details"));
    }
  }
  const Answer post =
      Ucxi(c, 1, "POST", "/ucxi/v1/post",
           json{{"address", "ucxl://bob:qa@bzzz:task-7/*^/tests/plan"}, {"content", "plan"}}.dump());
  EXPECT_EQ(post.status, 201) << post.body.dump();
  EXPECT_FALSE(post.body["response"]["request_id"].get<std::string>().empty());

  // Metrics.
  cli::ClientOptions o;
  o.url = c.Url(2);
  auto metrics = cli::Call(o, "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  for (const char* name : {"bzzz_ucxl_resolutions_total{", "bzzz_ucxl_resolution_duration_seconds_bucket",
                           "bzzz_ucxl_stored_versions", "bzzz_ucxl_stored_bytes"}) {
    EXPECT_NE(metrics->body.find(name), std::string::npos) << name;
  }

  // Restart the writer: its history is intact.
  c.nodes[0]->Signal(SIGTERM);
  ASSERT_EQ(c.nodes[0]->Wait(15s), 0);
  c.StartNode(0);
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 15s));
  const Answer v1 =
      Ucxi(c, 0, "GET",
           "/ucxi/v1/navigate?address=ucxl://alice:developer@bzzz:task-7/*%5E/design/api.md&steps=-1");
  EXPECT_EQ(v1.status, 200) << v1.body.dump();
  EXPECT_EQ(v1.body["response"]["data"]["content"], "REST first");
  EXPECT_EQ(v1.body["response"]["data"]["source"], "local");
  const std::string writer0 = v1.body["response"]["data"]["version"]["writer"].value("node_id", "");
  EXPECT_FALSE(writer0.empty()) << v1.body.dump();

  // Another node writes the same address: a third version in one history,
  // with its own writer; node 0's versions stay where they were.
  const Answer put3 =
      Ucxi(c, 1, "PUT", "/ucxi/v1/put?address=ucxl://alice:developer@bzzz:task-7/*%5E/design/api.md",
           "GraphQL third");
  ASSERT_EQ(put3.status, 201) << put3.body.dump();
  EXPECT_EQ(put3.body["response"]["data"]["version"]["number"], 3) << put3.body.dump();
  const Answer latest =
      Ucxi(c, 2, "GET", "/ucxi/v1/get?address=ucxl://alice:developer@bzzz:task-7/*%5E/design/api.md");
  EXPECT_EQ(latest.body["response"]["data"]["content"], "GraphQL third") << latest.body.dump();
  const std::string writer1 = latest.body["response"]["data"]["version"]["writer"].value("node_id", "");
  EXPECT_FALSE(writer1.empty());
  EXPECT_NE(writer1, writer0);
  const Answer second =
      Ucxi(c, 0, "GET", "/ucxi/v1/get?address=ucxl://alice:developer@bzzz:task-7/*~2/design/api.md");
  EXPECT_EQ(second.body["response"]["data"]["content"], "gRPC second") << second.body.dump();
  EXPECT_EQ(second.body["response"]["data"]["version"]["writer"]["node_id"], writer0);

  for (auto& n : c.nodes) n->Signal(SIGTERM);
  for (auto& n : c.nodes) EXPECT_EQ(n->Wait(15s), 0);
  c.bootstrap->Signal(SIGTERM);
  c.bootstrap->Wait(15s);
}

}  // namespace
}  // namespace bzzz
