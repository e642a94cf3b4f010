// A node on PostgreSQL, end to end (docs/operations.md "PostgreSQL"): the
// db commands against a real server on loopback; a node serving from it;
// the server stopped under the node (readiness says so, a task submitted
// meanwhile is accepted once the server is back and runs), every
// connection killed (nothing fails), a backup taken while the node runs and
// restored into a fresh database the node is then pointed at; and a node
// that cannot reach its database refusing to start with the reason.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "cluster.h"
#include "support/services.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using e2e::Cluster;
using e2e::json;
using testing::Eventually;
using testing::PostgresServer;

struct Reply {
  int status = 0;
  json body;
};

Reply Call(Cluster& c, const char* method, const std::string& path, const std::string& body = "",
           std::chrono::milliseconds timeout = 10s) {
  cli::ClientOptions o;
  o.url = c.Url(0);
  o.token = e2e::kAdminToken;
  o.timeout = timeout;
  auto r = cli::Call(o, method, path, body);
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false)};
}

const std::string kTask = json{{"executor", "builtin"}, {"input", {{"op", "echo"}, {"value", "hello"}}}}.dump();

std::string StateOf(Cluster& c, const std::string& id) {
  const Reply r = Call(c, "GET", "/api/v1/tasks/" + id);
  return r.status == 200 ? r.body.value("state", "") : "";
}

std::vector<std::string> Settings(const PostgresServer& pg, const std::string& database) {
  std::vector<std::string> args = pg.NodeArgs(database, 1, 6);
  args.insert(args.end(), {"--set", "operations.health_check_interval=300ms"});
  return args;
}

std::vector<std::string> With(std::vector<std::string> head, const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

TEST(PostgresEndToEnd, ANodeServesFromPostgresSurvivesItsOutagesAndMovesToARestoredDatabase) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_EQ(pg.CreateDatabase("bzzz_e2e"), "bzzz_e2e");
  Cluster c;
  const auto settings = Settings(pg, "bzzz_e2e");
  const std::string data = c.dir.File("n0");

  // The operator's db commands, before and after migrating.
  auto [tc, tout] = c.Cli(With({"db", "test-connection", "--data-dir", data}, settings));
  EXPECT_EQ(tc, 0) << tout;
  EXPECT_NE(tout.find("connection ok: postgres 127.0.0.1:" + std::to_string(pg.port()) + "/bzzz_e2e"),
            std::string::npos)
      << tout;
  auto [hc, hout] = c.Cli(With({"db", "health-check", "--data-dir", data}, settings));
  EXPECT_EQ(hc, 1) << "pending migrations are not fit to serve: " << hout;
  auto [mc, mout] = c.Cli(With({"db", "migrate", "--data-dir", data}, settings));
  EXPECT_EQ(mc, 0) << mout;
  EXPECT_NE(mout.find("applied migration tasks/1 tasks"), std::string::npos) << mout;
  auto [hc2, hout2] = c.Cli(With({"db", "health-check", "--data-dir", data}, settings));
  EXPECT_EQ(hc2, 0) << hout2;
  EXPECT_NE(hout2.find("\"pool\""), std::string::npos) << hout2;

  // A node on it.
  const std::string seed = "127.0.0.1:" + std::to_string(c.bootstrap_port);
  const auto node_args = With({"--set", "p2p.listen=" + seed}, settings);
  c.StartNode(0, /*with_bootstrap=*/false, node_args);
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/health/ready").status == 200; }, 30s))
      << testing::ReadFile(c.logs[0]);
  const Reply health = Call(c, "GET", "/health/detailed");
  const std::string storage_details = health.body["checks"]["storage-health"].dump();
  EXPECT_NE(storage_details.find("\"backend\":\"postgres\""), std::string::npos) << health.body.dump();
  EXPECT_NE(storage_details.find("\"pool\""), std::string::npos) << storage_details;

  const Reply first = Call(c, "POST", "/api/v1/tasks", kTask);
  ASSERT_EQ(first.status, 201) << first.body.dump();
  const std::string first_id = first.body.value("id", "");
  ASSERT_TRUE(Eventually([&] { return StateOf(c, first_id) == "succeeded"; }, 20s));
  const std::string node_id = health.body.value("node_id", "");
  ASSERT_TRUE(Eventually([&] {
    return pg.Sql("SELECT state || ' ' || node_id FROM tasks WHERE id = '" + first_id + "'", "bzzz_e2e") ==
           "succeeded " + node_id;
  }, 10s)) << "the task's row in PostgreSQL";

  // The server stops: readiness says so; a task submitted meanwhile is
  // accepted once it is back (201 only after the commit) and runs.
  ASSERT_TRUE(pg.Stop());
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/health/ready").status == 503; }, 15s));
  auto during = std::async(std::launch::async, [&] { return Call(c, "POST", "/api/v1/tasks", kTask, 60s); });
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(pg.Start());
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/health/ready").status == 200; }, 20s));
  const Reply accepted = during.get();
  std::fprintf(stderr, "a task submitted during the outage: HTTP %d\n", accepted.status);
  if (accepted.status == 201) {
    const std::string id = accepted.body.value("id", "");
    EXPECT_TRUE(Eventually([&] { return StateOf(c, id) == "succeeded"; }, 20s)) << id;
  } else {
    // Refused is allowed (the client knows it was not accepted); lost is not.
    EXPECT_TRUE(accepted.status == 503 || accepted.status == 0) << accepted.status << " " << accepted.body.dump();
  }
  EXPECT_EQ(StateOf(c, first_id), "succeeded");

  // Every connection of the node killed by the server: no call fails.
  bool killed = false;
  pg.Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bzzz'", "postgres",
         &killed);
  ASSERT_TRUE(killed);
  const Reply after_kill = Call(c, "POST", "/api/v1/tasks", kTask);
  ASSERT_EQ(after_kill.status, 201) << after_kill.body.dump();
  const std::string kept_id = after_kill.body.value("id", "");
  ASSERT_TRUE(Eventually([&] { return StateOf(c, kept_id) == "succeeded"; }, 20s));

  // A backup while the node runs, then the node moved to a fresh database
  // restored from it.
  const std::string backup = c.dir.File("cluster.dump");
  auto [bc, bout] = c.Cli(With({"backup", "create", "--data-dir", data, "-o", backup, "--json"}, settings));
  ASSERT_EQ(bc, 0) << bout;
  const json report = json::parse(bout.substr(bout.find('{')), nullptr, false);
  EXPECT_EQ(report.value("backend", ""), "postgres") << bout;
  EXPECT_GE(report["tables"].value("tasks", 0), 2) << bout;
  auto [vc, vout] = c.Cli({"backup", "verify", backup});
  EXPECT_EQ(vc, 0) << vout;
  const Reply later = Call(c, "POST", "/api/v1/tasks", kTask);
  ASSERT_EQ(later.status, 201);
  const std::string later_id = later.body.value("id", "");

  c.nodes[0]->Signal(SIGTERM);
  ASSERT_EQ(c.nodes[0]->Wait(30s), 0) << testing::ReadFile(c.logs[0]);
  ASSERT_EQ(pg.CreateDatabase("bzzz_restored"), "bzzz_restored");
  const auto restored = Settings(pg, "bzzz_restored");
  auto [rc, rout] = c.Cli(With({"backup", "restore", backup, "--data-dir", data}, restored));
  ASSERT_EQ(rc, 0) << rout;
  auto [again, aout] = c.Cli(With({"backup", "restore", backup, "--data-dir", data}, restored));
  EXPECT_EQ(again, 1) << "a database with data needs --force: " << aout;
  c.StartNode(0, false, With({"--set", "p2p.listen=" + seed}, restored));
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/health/ready").status == 200; }, 30s))
      << testing::ReadFile(c.logs[0]);
  EXPECT_EQ(StateOf(c, first_id), "succeeded");
  EXPECT_EQ(StateOf(c, kept_id), "succeeded");
  EXPECT_EQ(Call(c, "GET", "/api/v1/tasks/" + later_id).status, 404) << "written after the backup";
  auto [audit, audit_out] = c.Cli(With({"audit", "verify", "--data-dir", data}, restored));
  EXPECT_EQ(audit, 0) << audit_out;

  // No database, no node: it says why and exits.
  c.nodes[0]->Signal(SIGTERM);
  ASSERT_EQ(c.nodes[0]->Wait(30s), 0);
  ASSERT_TRUE(pg.Stop());
  c.StartNode(0, false, node_args);
  EXPECT_NE(c.nodes[0]->Wait(30s), 0);
  EXPECT_NE(testing::ReadFile(c.logs[0]).find("cannot connect to PostgreSQL at 127.0.0.1:" + std::to_string(pg.port())),
            std::string::npos)
      << testing::ReadFile(c.logs[0]);
}

}  // namespace
}  // namespace bzzz
