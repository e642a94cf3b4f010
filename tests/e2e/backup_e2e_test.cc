// End-to-end backups (docs/operations.md "Backups"): a running node with
// data in every table of its store is backed up while it keeps writing;
// more is written after the backup; the node is stopped and the backup
// restored over its database; the restarted node has exactly what the
// backup held: its tasks, its UCXL versions (readable, sealed), its audit
// chain (verifies) and nothing written after. Restores are refused while
// a node runs, over an existing database without --force, and from files
// that are not a bzzz store or are newer than the binary.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <thread>

#include "cluster.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using e2e::Cluster;
using e2e::json;
using testing::Eventually;

json Call(Cluster& c, const char* method, const std::string& path, const std::string& body = "", int* status = nullptr) {
  cli::ClientOptions o;
  o.url = c.Url(0);
  o.token = e2e::kAdminToken;
  o.timeout = 10s;
  auto r = cli::Call(o, method, path, body);
  if (status) *status = r.ok() ? r->status : 0;
  return r.ok() ? json::parse(r->body, nullptr, false) : json();
}

std::string Submit(Cluster& c, const std::string& value) {
  const json t = Call(c, "POST", "/api/v1/tasks",
                      json{{"executor", "builtin"}, {"input", {{"op", "echo"}, {"value", value}}}}.dump());
  return t.is_object() ? t.value("id", "") : "";
}

int TaskStatus(Cluster& c, const std::string& id) {
  int status = 0;
  (void)Call(c, "GET", "/api/v1/tasks/" + id, "", &status);
  return status;
}

TEST(BackupEndToEnd, CreateWhileRunningRestoreAfterStopExactlyWhatItHeld) {
  Cluster c;
  const std::string seed = "127.0.0.1:" + std::to_string(c.bootstrap_port);
  const std::vector<std::string> args = {"--set", "p2p.listen=" + seed};
  c.StartNode(0, /*with_bootstrap=*/false, args);
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/health").is_object(); }, 20s));
  const std::string data = c.dir.File("n0");

  // Data in every table: tasks, UCXL versions, audit entries, node meta, an HMMM room.
  const std::string before = Submit(c, "before the backup");
  ASSERT_FALSE(before.empty());
  const std::string address = "ucxl://alice:developer@backup:t1/*^/plan.md";
  int status = 0;
  ASSERT_TRUE(Eventually([&] {
    (void)Call(c, "POST", "/ucxi/v1/post", json{{"address", address}, {"content", "the plan v1"}}.dump(), &status);
    return status == 201;
  }, 15s));
  (void)Call(c, "POST", "/api/v1/agents/scale", R"({"target": 2})");  // an administrative action, audited
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/api/v1/audit?limit=5")["entries"].size() > 0; }, 10s));
  int room_status = 0;
  (void)Call(c, "POST", "/api/v1/hmmm/rooms",
             json{{"id", "room-backup"}, {"title", "kept"}, {"seed", {{"type", "help_request"}, {"agent", "a"}, {"body", "x"}}}}.dump(),
             &room_status);
  ASSERT_EQ(room_status, 201);

  // Backup while the node keeps writing.
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int k = 0; writing; ++k) {
      (void)Submit(c, "during " + std::to_string(k));
      std::this_thread::sleep_for(20ms);
    }
  });
  const std::string backup = c.dir.File("node.bak");
  auto [code, out] = c.Cli({"backup", "create", "--data-dir", data, "-o", backup, "--json"});
  writing = false;
  writer.join();
  ASSERT_EQ(code, 0) << out;
  const json report = json::parse(out.substr(out.find('{')), nullptr, false);
  ASSERT_TRUE(report.is_object()) << out;
  for (const char* table : {"schema_migrations", "node_meta", "context_versions", "tasks", "audit_log", "audit_head",
                            "hmmm_rooms", "hmmm_messages"}) {
    EXPECT_GT(report["tables"].value(table, 0), 0) << table << " is empty in the backup: " << out;
  }
  EXPECT_GE(report["domains"].value("ucxl", 0), 2);
  EXPECT_EQ(c.Cli({"backup", "create", "--data-dir", data, "-o", backup}).first, 1) << "never overwrites";
  auto [vcode, vout] = c.Cli({"backup", "verify", backup});
  EXPECT_EQ(vcode, 0) << vout;

  // After the backup: a task the restore must take away.
  const std::string after = Submit(c, "after the backup");
  ASSERT_FALSE(after.empty());

  // Refused while the node runs.
  auto [running, rout] = c.Cli({"backup", "restore", backup, "--data-dir", data, "--force"});
  EXPECT_EQ(running, 1);
  EXPECT_NE(rout.find("stop it before restoring"), std::string::npos) << rout;

  c.nodes[0]->Signal(SIGTERM);
  ASSERT_EQ(c.nodes[0]->Wait(30s), 0);
  auto [exists, eout] = c.Cli({"backup", "restore", backup, "--data-dir", data});
  EXPECT_EQ(exists, 1);
  EXPECT_NE(eout.find("--force"), std::string::npos) << eout;
  auto [rcode, rout2] = c.Cli({"backup", "restore", backup, "--data-dir", data, "--force"});
  ASSERT_EQ(rcode, 0) << rout2;
  EXPECT_NE(rout2.find("before-restore-"), std::string::npos) << rout2;

  // The restored node: what the backup held, nothing after.
  c.StartNode(0, false, args);
  ASSERT_TRUE(Eventually([&] { return Call(c, "GET", "/health").is_object(); }, 20s));
  EXPECT_EQ(TaskStatus(c, before), 200);
  EXPECT_EQ(TaskStatus(c, after), 404);
  const json got = Call(c, "GET", "/ucxi/v1/get?address=" + std::string("ucxl%3A%2F%2Falice%3Adeveloper%40backup%3At1%2F*%5E%2Fplan.md"));
  EXPECT_EQ(got["response"]["data"].value("content", ""), "the plan v1") << got.dump();
  EXPECT_EQ(Call(c, "GET", "/api/v1/hmmm/rooms/room-backup").value("title", ""), "kept");
  auto [acode, aout] = c.Cli({"audit", "verify", "--data-dir", data});
  EXPECT_EQ(acode, 0) << aout;

  // Not a bzzz store; a store newer than this binary.
  const std::string junk = c.dir.Write("junk.db", "not a database at all");
  EXPECT_EQ(c.Cli({"backup", "verify", junk}).first, 1);
  const std::string newer = c.dir.File("newer.bak");
  ASSERT_EQ(c.Cli({"backup", "create", "--data-dir", data, "-o", newer}).first, 0);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(newer.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES ('tasks', 99, 'future', '2030-01-01T00:00:00Z')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  c.nodes[0]->Signal(SIGTERM);
  ASSERT_EQ(c.nodes[0]->Wait(30s), 0);
  auto [ncode, nout] = c.Cli({"backup", "restore", newer, "--data-dir", data, "--force"});
  EXPECT_EQ(ncode, 1);
  EXPECT_NE(nout.find("newer than this binary"), std::string::npos) << nout;
}

}  // namespace
}  // namespace bzzz
