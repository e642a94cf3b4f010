// The audit hash chain (what verification concludes from each kind of
// tampering) and the AuditLog over a real SQLite store.
#include "audit/audit.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "audit/chain.h"
#include "http/router.h"
#include "storage/sqlite/sqlite.h"
#include "support/support.h"

namespace bzzz::audit {
namespace {

using nlohmann::json;

std::vector<AuditRow> Chain(const p2p::NodeIdentity& id, int n) {
  std::vector<AuditRow> rows;
  std::string prev = kGenesisHash;
  for (int i = 1; i <= n; ++i) {
    AuditRow r;
    r.seq = i;
    r.time_ms = 1700000000000 + i;
    r.node_id = id.node_id();
    r.kind = "admin_action";
    r.principal = "alice";
    r.action = "POST /api/v1/dlq/:id/replay";
    r.target = "/api/v1/dlq/t" + std::to_string(i) + "/replay";
    r.outcome = "200";
    r.client = "127.0.0.1";
    r.details = "{}";
    r.prev_hash = prev;
    SealEntry(r, id);
    prev = r.hash;
    rows.push_back(r);
  }
  return rows;
}

AuditHead HeadOf(const std::vector<AuditRow>& rows) { return {rows.back().seq, rows.back().hash}; }

ChainReport Verify(const std::vector<AuditRow>& rows, const p2p::PublicKey& key, const AuditHead& head) {
  bool served = false;
  auto report = VerifyChain(
      [&]() -> Result<std::vector<AuditRow>> {
        if (served) return std::vector<AuditRow>{};
        served = true;
        return rows;
      },
      key, head);
  EXPECT_TRUE(report.ok());
  return report.ok() ? *report : ChainReport{};
}

// "seq:kind" of every problem, in order.
std::vector<std::string> Problems(const ChainReport& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems) out.push_back(std::to_string(p.seq) + ":" + p.kind);
  return out;
}

class AuditChainTest : public ::testing::Test {
 protected:
  p2p::NodeIdentity id = p2p::NodeIdentity::Generate();
  std::vector<AuditRow> rows = Chain(id, 20);
  AuditHead head = HeadOf(rows);
};

TEST_F(AuditChainTest, AnIntactChainVerifies) {
  const ChainReport r = Verify(rows, id.public_key(), head);
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(Problems(r));
  EXPECT_EQ(r.entries, 20);
  EXPECT_EQ(r.first_seq, 1);
  EXPECT_EQ(r.last_seq, 20);
  EXPECT_EQ(rows[0].prev_hash, kGenesisHash);
  // Every field is covered: changing any one changes the hash.
  for (std::string AuditRow::*field : {&AuditRow::node_id, &AuditRow::kind, &AuditRow::principal,
                                       &AuditRow::action, &AuditRow::target, &AuditRow::outcome,
                                       &AuditRow::client, &AuditRow::request_id, &AuditRow::details,
                                       &AuditRow::prev_hash}) {
    AuditRow changed = rows[3];
    changed.*field += "x";
    EXPECT_NE(EntryHash(changed), rows[3].hash);
  }
  AuditRow later = rows[3];
  later.time_ms += 1;
  EXPECT_NE(EntryHash(later), rows[3].hash);
}

TEST_F(AuditChainTest, AnEntryChangedAfterSigningIsNamed) {
  rows[6].principal = "mallory";
  const ChainReport r = Verify(rows, id.public_key(), head);
  EXPECT_EQ(Problems(r), std::vector<std::string>{"7:changed"});
  EXPECT_EQ(r.problems_total, 1);
}

TEST_F(AuditChainTest, AnEntryRehashedOrResignedByAnotherKeyIsForged) {
  rows[6].principal = "mallory";
  rows[6].hash = EntryHash(rows[6]);
  EXPECT_EQ(Problems(Verify(rows, id.public_key(), head)), std::vector<std::string>{"7:forged"});
  SealEntry(rows[6], p2p::NodeIdentity::Generate());
  EXPECT_EQ(Problems(Verify(rows, id.public_key(), head)), std::vector<std::string>{"7:forged"});
  // The whole log re-signed by another key: every entry is forged.
  const auto other = Chain(p2p::NodeIdentity::Generate(), 20);
  EXPECT_EQ(Verify(other, id.public_key(), HeadOf(other)).problems_total, 20);
}

TEST_F(AuditChainTest, RemovedEntriesAreNamed) {
  rows.erase(rows.begin() + 4, rows.begin() + 6);  // seqs 5 and 6
  ChainReport r = Verify(rows, id.public_key(), head);
  ASSERT_EQ(Problems(r), std::vector<std::string>{"5:removed"});
  EXPECT_NE(r.problems[0].detail.find("entries 5..6"), std::string::npos) << r.problems[0].detail;

  rows.erase(rows.begin());  // seq 1
  r = Verify(rows, id.public_key(), head);
  EXPECT_EQ(Problems(r), (std::vector<std::string>{"1:removed", "5:removed"}));
}

TEST_F(AuditChainTest, SwappedSeqsAreReportedAsReordered) {
  // What swapping two rows' primary keys in the table looks like.
  std::swap(rows[4], rows[5]);
  rows[4].seq = 5;
  rows[5].seq = 6;
  const ChainReport r = Verify(rows, id.public_key(), head);
  ASSERT_EQ(Problems(r), (std::vector<std::string>{"5:reordered", "6:reordered"}));
  EXPECT_NE(r.problems[0].detail.find("written as entry 6"), std::string::npos) << r.problems[0].detail;
}

TEST_F(AuditChainTest, AnEntryOutOfOrderInAnExportIsReordered) {
  std::swap(rows[9], rows[10]);  // 11 listed before 10
  const ChainReport r = Verify(rows, id.public_key(), head);
  EXPECT_FALSE(r.ok());
  bool named = false;
  for (const auto& p : r.problems) named |= p.seq == 10 && p.kind == "reordered";
  EXPECT_TRUE(named) << ::testing::PrintToString(Problems(r));
}

TEST_F(AuditChainTest, TruncationAndInsertionAreCaughtAgainstTheHead) {
  auto shorter = rows;
  shorter.resize(17);
  EXPECT_EQ(Problems(Verify(shorter, id.public_key(), head)), std::vector<std::string>{"18:truncated"});
  EXPECT_EQ(Problems(Verify(rows, id.public_key(), HeadOf(shorter))), std::vector<std::string>{"18:inserted"});
  // A head that names another hash for the last entry.
  AuditHead wrong = head;
  wrong.hash = rows[3].hash;
  EXPECT_EQ(Problems(Verify(rows, id.public_key(), wrong)), std::vector<std::string>{"20:changed"});
  // An empty log with an empty head is intact; with a head, truncated.
  EXPECT_TRUE(Verify({}, id.public_key(), {}).ok());
  EXPECT_EQ(Problems(Verify({}, id.public_key(), head)), std::vector<std::string>{"1:truncated"});
}

// An AuditLog over a real SQLite store in a temporary directory.
class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::sqlite::SqliteOptions options;
    options.path = dir.File("bzzz.db");
    auto opened = storage::sqlite::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    storage = std::move(*opened);
    ASSERT_TRUE(storage.store->Migrate().ok());
  }
  void TearDown() override {
    if (storage.store) storage.store->Close();
  }

  std::shared_ptr<AuditLog> StartLog(AuditOptions options = {}) {
    auto log = AuditLog::Start(storage.audit, id, options, &registry);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? *log : nullptr;
  }

  std::vector<AuditRow> All() {
    AuditQuery q;
    q.ascending = true;
    q.limit = 100000;
    auto rows = storage.audit->ListAudit(q);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? *rows : std::vector<AuditRow>{};
  }

  ChainReport VerifyStore() {
    auto head = storage.audit->ReadAuditHead();
    EXPECT_TRUE(head.ok());
    auto report = VerifyChain(StoredEntries(*storage.audit, 7), id.public_key(), *head);
    EXPECT_TRUE(report.ok());
    return report.ok() ? *report : ChainReport{};
  }

  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.File("bzzz.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  static AuditEvent Event(std::string kind, std::string action) {
    AuditEvent e;
    e.kind = std::move(kind);
    e.principal = "alice";
    e.action = std::move(action);
    e.outcome = "200";
    return e;
  }

  bzzz::testing::TempDir dir;
  storage::Storage storage;
  p2p::NodeIdentity id = p2p::NodeIdentity::Generate();
  prometheus::Registry registry;
};

TEST_F(AuditLogTest, EntriesAreWrittenSignedAndTheChainContinuesAfterARestart) {
  auto log = StartLog();
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(log->Record(Event("admin_action", "action " + std::to_string(i))));
  ASSERT_TRUE(log->Flush(std::chrono::seconds(10)).ok());
  EXPECT_EQ(log->Head().seq, 30);
  log->Stop();
  EXPECT_FALSE(log->Record(Event("admin_action", "after stop")));

  auto again = StartLog();
  EXPECT_EQ(again->Head().seq, 30);
  ASSERT_TRUE(again->Record(Event("admin_action", "after restart")));
  ASSERT_TRUE(again->Flush(std::chrono::seconds(10)).ok());
  const auto rows = All();
  ASSERT_EQ(rows.size(), 31u);
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].seq, static_cast<std::int64_t>(i) + 1);
  EXPECT_EQ(rows[30].action, "after restart");
  EXPECT_EQ(rows[30].node_id, id.node_id());
  EXPECT_TRUE(SignatureValid(rows[30], id.public_key()));
  const ChainReport r = VerifyStore();
  EXPECT_TRUE(r.ok()) << ::testing::PrintToString(Problems(r));
  EXPECT_EQ(r.entries, 31);
}

TEST_F(AuditLogTest, TamperingWithTheTableIsFound) {
  auto log = StartLog();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->Record(Event("admin_action", "a" + std::to_string(i))));
  ASSERT_TRUE(log->Flush(std::chrono::seconds(10)).ok());
  log->Stop();
  ASSERT_TRUE(VerifyStore().ok());

  Exec("UPDATE audit_log SET principal = 'mallory' WHERE seq = 2");
  EXPECT_EQ(Problems(VerifyStore()), std::vector<std::string>{"2:changed"});
  Exec("DELETE FROM audit_log WHERE seq = 5");
  EXPECT_EQ(Problems(VerifyStore()), (std::vector<std::string>{"2:changed", "5:removed"}));
  Exec("UPDATE audit_log SET seq = 100 WHERE seq = 7; UPDATE audit_log SET seq = 7 WHERE seq = 8; "
       "UPDATE audit_log SET seq = 8 WHERE seq = 100");
  EXPECT_EQ(Problems(VerifyStore()),
            (std::vector<std::string>{"2:changed", "5:removed", "7:reordered", "8:reordered"}));
  Exec("DELETE FROM audit_log WHERE seq >= 9");
  EXPECT_EQ(Problems(VerifyStore()),
            (std::vector<std::string>{"2:changed", "5:removed", "7:reordered", "8:reordered", "9:truncated"}));
}

TEST_F(AuditLogTest, RefusalsAreRateLimitedAndWhatIsDroppedIsCounted) {
  AuditOptions options;
  options.refusals_per_second = 1;
  options.refusal_burst = 2;
  auto log = StartLog(options);
  int accepted = 0;
  for (int i = 0; i < 5; ++i) accepted += log->Record(Event("auth_failure", "GET /x"));
  EXPECT_EQ(accepted, 2);
  // Admin actions are never limited.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(log->Record(Event("admin_action", "POST /admin/shutdown")));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(log->Record(Event("permission_denied", "POST /y")));
  ASSERT_TRUE(log->Flush(std::chrono::seconds(10)).ok());
  const auto rows = All();
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(json::parse(rows.back().details).value("suppressed", 0), 3);
  bool counted = false;
  for (const auto& family : registry.Collect()) {
    if (family.name != "no_audit_dropped_total") continue;
    for (const auto& m : family.metric) {
      for (const auto& label : m.label) counted |= label.value == "rate" && m.counter.value == 3;
    }
  }
  EXPECT_TRUE(counted);
}

TEST_F(AuditLogTest, SecretsNeverReachTheLog) {
  auto log = StartLog();
  AuditEvent e = Event("admin_action", "POST /api/v1/cluster/tokens");
  e.target = "/api/v1/cluster/tokens?access_token=s3cr3tValue1";
  e.details = json{{"password", "hunter2hunter2"}, {"note", "Authorization: Bearer abc.def.ghi"}}.dump();
  ASSERT_TRUE(log->Record(e));
  // Not UTF-8, not JSON: kept readable, and still verifiable.
  AuditEvent odd = Event("admin_action", "POST /odd");
  odd.target = std::string("/odd/\xff\xfe", 7);
  odd.details = "not json";
  ASSERT_TRUE(log->Record(odd));
  ASSERT_TRUE(log->Flush(std::chrono::seconds(10)).ok());
  for (const AuditRow& row : All()) {
    const std::string text = row.target + row.details + row.action;
    for (const char* secret : {"s3cr3tValue1", "hunter2hunter2", "abc.def.ghi"}) {
      EXPECT_EQ(text.find(secret), std::string::npos) << text;
    }
    EXPECT_TRUE(json::parse(row.details, nullptr, false).is_object()) << row.details;
  }
  EXPECT_TRUE(VerifyStore().ok());
}

TEST_F(AuditLogTest, TheHttpPipelineRecordsRefusalsAndAdminActions) {
  http::Router router;
  auto ok = [](http::Request&) { return http::Response::Json(200, "{}"); };
  ASSERT_TRUE(http::AddRoute(router, http::Method::kPost, "/admin/shutdown", "admin:write", "", ok));
  ASSERT_TRUE(http::AddRoute(router, http::Method::kPost, "/api/v1/tasks", "tasks:write", "", ok));
  ASSERT_TRUE(http::AddRoute(router, http::Method::kDelete, "/api/v1/dht/cache", "dht:admin", "", ok));
  auto log = StartLog();
  ASSERT_TRUE(log->RegisterRoutes(router).ok());
  auto record = [&](std::string_view method, std::string_view route, int status, std::string_view body = {}) {
    http::RequestRecord r;
    r.method = method;
    r.route = route;
    r.path = route;
    r.status = status;
    r.principal = "bob";
    r.client_address = "127.0.0.9";
    r.request_id = "rid-1";
    r.error_body = body;
    log->ObserveRequest(r);
  };
  record("POST", "/api/v1/tasks", 201);                       // ordinary: not audited
  record("GET", "/api/v1/tasks", 200);                        // ordinary: not audited
  record("POST", "/admin/shutdown", 202);                     // admin action
  record("DELETE", "/api/v1/dht/cache", 500);                 // admin action that failed
  record("GET", "/api/v1/tasks", 401, R"({"error":{"code":"unauthorized","message":"invalid token"}})");
  record("POST", "/admin/shutdown", 403, R"({"error":{"code":"forbidden","message":"needs admin:write"}})");
  ASSERT_TRUE(log->Flush(std::chrono::seconds(10)).ok());
  const auto rows = All();
  std::vector<std::string> seen;
  for (const auto& r : rows) seen.push_back(r.kind + " " + r.action + " " + r.outcome);
  EXPECT_EQ(seen, (std::vector<std::string>{"admin_action POST /admin/shutdown 202",
                                            "admin_action DELETE /api/v1/dht/cache 500",
                                            "auth_failure GET /api/v1/tasks 401",
                                            "permission_denied POST /admin/shutdown 403"}));
  EXPECT_EQ(json::parse(rows[2].details).value("reason", ""), "invalid token");
  EXPECT_EQ(rows[3].client, "127.0.0.9");
  EXPECT_EQ(rows[3].principal, "bob");
}

TEST(AuditRulesTest, AdminActionsAreMutationsOfAdministrativeResources) {
  EXPECT_TRUE(IsAdminAction("POST", "admin:write"));
  EXPECT_TRUE(IsAdminAction("POST", "election:admin"));
  EXPECT_TRUE(IsAdminAction("DELETE", "dlq:write"));
  EXPECT_TRUE(IsAdminAction("POST", "agents:write"));
  EXPECT_TRUE(IsAdminAction("POST", "cluster:admin"));
  EXPECT_FALSE(IsAdminAction("GET", "admin:read"));
  EXPECT_FALSE(IsAdminAction("POST", "tasks:write"));
  EXPECT_FALSE(IsAdminAction("PUT", "ucxl:write"));
  EXPECT_FALSE(IsAdminAction("POST", "public"));
}

}  // namespace
}  // namespace bzzz::audit
