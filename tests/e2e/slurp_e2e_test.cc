// SLURP end to end (docs/slurp.md). Three nodes on one PostgreSQL: events
// are posted with repeated Idempotency-Keys to every node while the admin
// is killed and another is elected; every event gets exactly one record,
// its citations resolved; a token of the record's role reads the records,
// a token without it gets none of them (withheld), and a caller without
// slurp:read gets 403; an HMMM decision becomes a record. One node without a context store: its queue fills
// past the bound (429) and slurp-health says why.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>

#include "e2e/cluster.h"
#include "security/authenticator.h"
#include "support/services.h"

namespace bzzz::e2e {
namespace {

using testing::Eventually;
using testing::PostgresServer;
using testing::ReadFile;

const std::string kDecisionToken = "decision-token-e2e-slurp-00000001";    // role decision: slurp:*, reads its records
const std::string kDeveloperToken = "developer-token-e2e-slurp-0000002";   // role developer: slurp:read, not the role
const std::string kUserToken = "user-token-e2e-slurp-00000000000003";      // role user: no slurp permission

struct Reply {
  int status = 0;
  json body;
  std::string retry_after;
};

Reply Call(const Cluster& c, int node, const char* method, const std::string& path, const std::string& body = "",
           const std::string& token = kAdminToken, const std::string& key = "") {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = token;
  o.timeout = 10s;
  if (!key.empty()) o.headers.push_back("Idempotency-Key: " + key);
  auto r = cli::Call(o, method, path, body);
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false), ""};
}

std::string Config(Cluster& c) {
  return c.dir.Write("bzzz.yaml", "security:\n  api_tokens:\n"
                                  "    - name: decider\n      token_hash: \"" + security::HashToken(kDecisionToken) +
                                  "\"\n      roles: [decision]\n"
                                  "    - name: dev\n      token_hash: \"" + security::HashToken(kDeveloperToken) +
                                  "\"\n      roles: [developer]\n"
                                  "    - name: user\n      token_hash: \"" + security::HashToken(kUserToken) +
                                  "\"\n      roles: [user]\n");
}

// The SLURP and election lines of every node's log, for a failure's message.
std::string Interesting(const Cluster& c) {
  std::string out;
  for (const auto& path : c.logs) {
    const std::string log = ReadFile(path);
    std::size_t pos = 0;
    while (pos < log.size()) {
      const auto nl = log.find('\n', pos);
      const std::string line = log.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      if ((line.find("[slurp]") != std::string::npos || line.find("[election]") != std::string::npos) &&
          line.find("[access]") == std::string::npos) {
        out += path.substr(path.rfind('/') + 1) + ": " + line + "\n";
      }
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  return out;
}

TEST(SlurpEndToEnd, EventsBecomeOneRecordEachAcrossAnAdminKillAndOnlyTheirRoleReadsThem) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_EQ(pg.CreateDatabase("bzzz_slurp"), "bzzz_slurp");
  Cluster c;
  c.node_args = {"--config", Config(c), "--set", "security.rate_limit.enabled=false", "--set",
                 "hmmm.objection_window=1s"};
  for (const auto& a : pg.NodeArgs("bzzz_slurp")) c.node_args.push_back(a);
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i);
  std::vector<std::string> ids(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Eventually([&] { return Call(c, i, "GET", "/health/ready").status == 200; }, 40s)) << ReadFile(c.logs[i]);
    ids[i] = Call(c, i, "GET", "/health/detailed").body.value("node_id", "");
  }
  std::string admin;
  ASSERT_TRUE(Eventually([&] {
    const Reply s = Call(c, 0, "GET", "/api/v1/slurp/status");
    admin = s.body.is_object() && s.body["admin"].is_string() ? s.body["admin"].get<std::string>() : "";
    return !admin.empty() && Call(c, 0, "GET", "/api/v1/slurp/status").body.value("shared_store", false);
  }, 40s));
  int admin_index = 0;
  for (int i = 0; i < 3; ++i) admin_index = ids[i] == admin ? i : admin_index;
  // The admin's autopilot adds the others to the electorate: only then can
  // they elect a successor.
  ASSERT_TRUE(Eventually([&] {
    const json s = c.Get(admin_index, "/api/election/status");
    return s.is_object() && s["electorate"]["members"].size() == 3;
  }, 40s)) << c.Get(admin_index, "/api/election/status").dump();

  // Something to cite: a task that ran.
  const Reply task = Call(c, 0, "POST", "/api/v1/tasks", R"({"executor":"builtin","input":{"op":"echo","value":1}})");
  ASSERT_EQ(task.status, 201) << task.body.dump();
  const std::string task_id = task.body["id"];

  // 40 events, each posted twice, to two different nodes; the admin is
  // killed after the first 20.
  const int kEvents = 40;
  std::set<int> alive = {0, 1, 2};
  std::map<std::string, std::int64_t> seq_of;
  for (int k = 0; k < kEvents; ++k) {
    if (k == kEvents / 2) {
      // The admin has processed some: its successor goes on from there.
      ASSERT_TRUE(Eventually([&] {
        return Call(c, admin_index, "GET", "/api/v1/slurp/status").body["queue"].value("done", 0) >= 5;
      }, 30s)) << Call(c, admin_index, "GET", "/api/v1/slurp/status").body.dump() << Interesting(c);
      c.nodes[admin_index]->Signal(SIGKILL);
      c.nodes[admin_index]->Wait(5s);
      alive.erase(admin_index);
    }
    const std::string key = "e2e-key-" + std::to_string(k);
    json body = {{"project", "e2e"}, {"summary", "decision " + std::to_string(k)}, {"decision", "do " + key},
                 {"authors", {"ana"}}, {"citations", {{{"kind", "task"}, {"id", task_id}}}}};
    if (!seq_of.empty()) body["citations"].push_back({{"kind", "event"}, {"id", std::to_string(seq_of.begin()->second)}});
    std::vector<int> targets(alive.begin(), alive.end());
    for (int copy = 0; copy < 2; ++copy) {
      const int node = targets[(k + copy) % targets.size()];
      Reply r;
      ASSERT_TRUE(Eventually([&] {
        r = Call(c, node, "POST", "/api/v1/slurp/events", body.dump(), kDecisionToken, key);
        return r.status == 202 || r.status == 200;
      }, 20s)) << r.status << " " << r.body.dump();
      const std::int64_t seq = r.body["event"]["seq"];
      if (seq_of.count(key)) {
        EXPECT_EQ(r.status, 200) << "the same key is the same event";
        EXPECT_EQ(seq, seq_of[key]);
      } else {
        seq_of[key] = seq;
      }
    }
  }
  // The same key with another body is refused.
  EXPECT_EQ(Call(c, *alive.begin(), "POST", "/api/v1/slurp/events",
                 R"({"project":"e2e","summary":"other","decision":"other"})", kDecisionToken, "e2e-key-0").status,
            409);

  // A new admin processes everything, from where the old one stopped.
  const int survivor = *alive.begin();
  json status;
  ASSERT_TRUE(Eventually([&] {
    status = Call(c, survivor, "GET", "/api/v1/slurp/status").body;
    return status.is_object() && status["admin"].is_string() && status["admin"] != admin &&
           status["queue"].value("queued", -1) == 0 && status["queue"].value("done", 0) >= kEvents;
  }, 60s)) << status.dump() << Interesting(c) << ReadFile(c.logs[admin_index]).substr(0, 20000);
  EXPECT_GT(status.value("fence", 0), 1);

  // Exactly one record per event, citations resolved, for the decision role.
  json records;
  ASSERT_TRUE(Eventually([&] {
    records = Call(c, survivor, "GET", "/api/v1/slurp/records?project=e2e&limit=1000", "", kDecisionToken).body;
    return records.is_object() && records.value("count", 0) == kEvents;
  }, 30s)) << records.dump();
  std::set<std::int64_t> seqs;
  std::set<std::uint64_t> terms;
  for (const auto& r : records["records"]) {
    EXPECT_TRUE(seqs.insert(r["event_seq"].get<std::int64_t>()).second) << "two records for one event";
    terms.insert(r["term"].get<std::uint64_t>());
    const json& rec = r["record"];
    EXPECT_EQ(rec["term"], r["term"]);
    EXPECT_EQ(rec["submitted_by"], "decider") << "the token that posted it, whatever the body says";
    for (const auto& cite : rec["citations"]) {
      EXPECT_FALSE(cite.value("author", "").empty()) << cite.dump();
      if (cite["kind"] == "task") {
        EXPECT_EQ(cite["id"], task_id);
      }
    }
  }
  std::set<std::int64_t> expected;
  for (const auto& [k, s] : seq_of) expected.insert(s);
  EXPECT_EQ(seqs, expected);
  std::fprintf(stderr, "slurp e2e: %d events, records written in %zu term(s)\n", kEvents, terms.size());

  // Who reads what.
  const Reply dev = Call(c, survivor, "GET", "/api/v1/slurp/records?project=e2e&limit=1000", "", kDeveloperToken);
  ASSERT_EQ(dev.status, 200);
  EXPECT_EQ(dev.body.value("count", -1), 0) << "sealed for the decision role";
  EXPECT_EQ(dev.body.value("withheld", 0), kEvents);
  EXPECT_EQ(Call(c, survivor, "GET", "/api/v1/slurp/records", "", kUserToken).status, 403);
  EXPECT_EQ(Call(c, survivor, "POST", "/api/v1/slurp/events", R"({"project":"e2e","summary":"s","decision":"d"})",
                 kDeveloperToken).status, 403);

  // An HMMM decision becomes a record too: a plan accepted when its
  // objection window closes, cited with its messages.
  const Reply opened = Call(c, survivor, "POST", "/api/v1/hmmm/rooms",
                            R"({"title":"pick a queue","project":"e2e",)"
                            R"("seed":{"type":"plan_proposed","agent":"planner","body":"use the shared queue"}})");
  ASSERT_EQ(opened.status, 201) << opened.body.dump();
  const std::string room = opened.body.value("id", "");
  json decided;
  ASSERT_TRUE(Eventually([&] {
    const json r = Call(c, survivor, "GET", "/api/v1/slurp/records?project=e2e&limit=1000", "", kDecisionToken).body;
    for (const auto& rec : r["records"]) {
      if (rec["record"]["event"]["source"] == "hmmm") decided = rec["record"];
    }
    return decided.is_object();
  }, 30s)) << Call(c, survivor, "GET", "/api/v1/slurp/events?source=hmmm").body.dump();
  EXPECT_EQ(decided["decision"], "use the shared queue");
  EXPECT_EQ(decided["summary"], "pick a queue");
  EXPECT_EQ(decided["authors"], json({"planner@" + ids[survivor]}));
  ASSERT_EQ(decided["citations"].size(), 2u) << decided.dump();  // the plan and the decision
  for (const auto& cite : decided["citations"]) {
    EXPECT_EQ(cite["kind"], "message");
    EXPECT_EQ(cite["id"].get<std::string>().rfind(room + "/", 0), 0u) << cite.dump();
  }

  // slurp-health: healthy on the new admin, not applicable elsewhere.
  for (int i : alive) {
    const json h = Call(c, i, "GET", "/health/detailed").body;
    const json& check = h["checks"]["slurp-health"];
    EXPECT_EQ(check.value("status", ""), "healthy") << h.dump();
  }
}

TEST(SlurpEndToEnd, AFullQueueIsRefusedWithRetryAfterAndHealthSaysWhy) {
  Cluster c;
  c.node_args = {"--config", Config(c), "--set", "security.rate_limit.enabled=false", "--set", "ucxi.enabled=false",
                 "--set", "slurp.queue_capacity=3"};
  c.StartNode(0, /*with_bootstrap=*/false);
  ASSERT_TRUE(Eventually([&] { return Call(c, 0, "GET", "/health/ready").status == 200; }, 40s)) << ReadFile(c.logs[0]);
  ASSERT_TRUE(Eventually([&] { return Call(c, 0, "GET", "/api/v1/slurp/status").body.value("is_admin", false); }, 20s));
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(Call(c, 0, "POST", "/api/v1/slurp/events", R"({"project":"p","summary":"s","decision":"d"})",
                   kDecisionToken, "full-" + std::to_string(k)).status, 202);
  }
  // 429 carries Retry-After: 1 (http::ErrorFromStatus for ResourceExhausted).
  const Reply full = Call(c, 0, "POST", "/api/v1/slurp/events", R"({"project":"p","summary":"s","decision":"d"})",
                          kDecisionToken, "full-3");
  EXPECT_EQ(full.status, 429) << full.body.dump();
  // A key already taken still answers 200 with its event.
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/slurp/events", R"({"project":"p","summary":"s","decision":"d"})",
                 kDecisionToken, "full-0").status, 200);
  // Bad bodies change nothing.
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/slurp/events", R"({"project":"p"})", kDecisionToken).status, 400);
  EXPECT_EQ(Call(c, 0, "POST", "/api/v1/slurp/events", R"({"project":"p","summary":"s","decision":"d"})",
                 kDecisionToken, std::string(300, 'k')).status, 400);
  json h;
  ASSERT_TRUE(Eventually([&] {
    h = Call(c, 0, "GET", "/health/detailed").body["checks"]["slurp-health"];
    return h.value("status", "") == "unhealthy";
  }, 30s)) << h.dump();
  EXPECT_NE(h.value("message", "").find("no context store"), std::string::npos) << h.dump();
  // The CLI: a post with a key prints the event (the same key again is the
  // same event), a full queue exits 1 with the node's reason, status shows
  // the queue.
  auto [pc, pout] = c.Cli({"slurp", "post", "--url", c.Url(0), "--key", "full-1",
                           R"({"project":"p","summary":"s","decision":"d"})"});
  EXPECT_EQ(pc, 0) << pout;
  EXPECT_NE(pout.find("full-1"), std::string::npos) << pout;
  auto [fc, fout] = c.Cli({"slurp", "post", "--url", c.Url(0), "--key", "cli-new",
                           R"({"project":"p","summary":"s","decision":"d"})"});
  EXPECT_NE(fc, 0) << fout;
  EXPECT_NE(fout.find("queue is full"), std::string::npos) << fout;
  auto [bc, bout] = c.Cli({"slurp", "post", "--url", c.Url(0), "not json"});
  EXPECT_NE(bc, 0) << bout;
  auto [sc, sout] = c.Cli({"slurp", "status", "--url", c.Url(0)});
  EXPECT_EQ(sc, 0) << sout;
  EXPECT_NE(sout.find("processing"), std::string::npos) << sout;
  auto [dc, dout] = c.Cli({"slurp", "dlq", "list", "--url", c.Url(0), "--json"});
  EXPECT_EQ(dc, 0) << dout;
  EXPECT_NE(dout.find("\"count\": 0"), std::string::npos) << dout;

  // The status section shows the queue as last read (once a second).
  EXPECT_TRUE(Eventually([&] {
    const json s = Call(c, 0, "GET", "/admin/status").body;
    return s.is_object() && s["slurp"]["queue"].value("queued", 0) == 3;
  }, 10s)) << Call(c, 0, "GET", "/admin/status").body.dump();
}

}  // namespace
}  // namespace bzzz::e2e
