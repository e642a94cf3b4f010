// End-to-end role encryption of UCXL context (docs/keys.md): three bzzz
// processes, two admin-capable and one worker.
//
//   - two nodes write one address at once; every node that may read it
//     computes the same history (temporal navigation means the same);
//   - a reader without the role gets UCXL-403-FORBIDDEN, and so does any
//     reader on the worker until the admin grants it the role;
//   - no plaintext anywhere: every file of every data directory (SQLite
//     with its WAL, held DHT records, the DHT cache, the key files) is
//     searched for a planted marker;
//   - a rotation while writes go on, the re-wrap job killed with -9 in the
//     middle and resuming its pass, then min_decryption_version;
//   - a member revoked and the role rotated: it cannot read what follows.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cluster.h"
#include "security/authenticator.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using e2e::Cluster;
using e2e::json;
using testing::Eventually;

const std::string kDevToken = "dev-token-e2e-keys-000000000001";
const std::string kOpsToken = "ops-token-e2e-keys-000000000002";
const std::string kMarker = "PLANTED-PLAINTEXT-MARKER-5531";

struct Answer {
  int status = 0;
  json body;
};

Answer Call(Cluster& c, int i, const char* method, const std::string& path, const std::string& body = "",
            const std::string& token = e2e::kAdminToken) {
  cli::ClientOptions o;
  o.url = c.Url(i);
  o.token = token;
  o.timeout = 10s;
  auto r = cli::Call(o, method, path, body);
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false)};
}

std::string Encode(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", ch);
      out += buf;
    }
  }
  return out;
}

Answer Put(Cluster& c, int i, const std::string& address, const std::string& content,
           const std::string& token = kDevToken) {
  return Call(c, i, "POST", "/ucxi/v1/post", json{{"address", address}, {"content", content}}.dump(), token);
}
Answer Get(Cluster& c, int i, const std::string& address, const std::string& token = kDevToken) {
  return Call(c, i, "GET", "/ucxi/v1/get?address=" + Encode(address), "", token);
}
std::string Code(const Answer& a) {
  if (a.body.is_object() && a.body.contains("error")) return a.body["error"].value("code", "");
  if (a.body.is_object() && a.body.contains("response")) return a.body["response"].value("code", "");
  return "";
}

// Every file under `dir` but logs that contains `needle`.
std::vector<std::string> FilesContaining(const std::string& dir, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); it != std::filesystem::end(it);
       it.increment(ec)) {
    if (ec || !it->is_regular_file() || it->path().extension() == ".log") continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    if (s.str().find(needle) != std::string::npos) found.push_back(it->path().string());
  }
  return found;
}

std::string NodeId(Cluster& c, int i) {
  const json k = c.Get(i, "/api/v1/keys");
  return k.is_object() ? k["node"].value("id", "") : "";
}
std::string AdminOf(Cluster& c, int i) {
  const json k = c.Get(i, "/api/v1/keys");
  return k.is_object() ? k["node"].value("admin", "") : "";
}
bool Holds(Cluster& c, int i, const std::string& role, int version) {
  const json k = c.Get(i, "/api/v1/keys");
  if (!k.is_object()) return false;
  for (const auto& r : k["roles"]) {
    if (r["role"] != role) continue;
    for (const auto& v : r["versions"]) {
      if (v["version"] == version) return v["held_here"].get<bool>();
    }
  }
  return false;
}
// The key, re-wrap and election lines of every log of the cluster (each
// run of each node), for a failure message about key generations.
std::string KeyLines(const Cluster& c) {
  std::string out;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(c.dir.File(""), ec)) {
    if (e.path().extension() == ".log") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    out += "--- " + f.filename().string() + " ---\n";
    std::istringstream in(testing::ReadFile(f.string()));
    for (std::string line; std::getline(in, line);) {
      if (line.find("keys") != std::string::npos || line.find("re-wrap") != std::string::npos ||
          line.find("admin") != std::string::npos || line.find("election") != std::string::npos) {
        out += line + "\n";
      }
    }
  }
  return out;
}
json Rewrap(Cluster& c, int i) {
  const json k = c.Get(i, "/api/v1/keys");
  return k.is_object() ? k["rewrap"] : json();
}

// (writer, writer's number, content) of versions 1..n as node i reads them.
std::vector<std::string> Timeline(Cluster& c, int i, const std::string& base, int n) {
  std::vector<std::string> out;
  for (int v = 1; v <= n; ++v) {
    const Answer a = Get(c, i, "ucxl://alice:developer@proj:t1/*~" + std::to_string(v) + base);
    if (a.status != 200) return {"status " + std::to_string(a.status) + " at " + std::to_string(v)};
    const json& d = a.body["response"]["data"];
    out.push_back(d["version"]["writer"]["node_id"].get<std::string>() + "/" +
                  std::to_string(d["version"]["writer"]["number"].get<int>()) + "/" + d["content"].get<std::string>());
  }
  return out;
}

TEST(KeysEndToEnd, RolesRotationRewrapRevocationAndNoPlaintextAnywhere) {
  Cluster c;
  const std::string config = c.dir.Write(
      "bzzz.yaml", "security:\n  api_tokens:\n    - name: dev\n      token_hash: \"" + security::HashToken(kDevToken) +
                       "\"\n      roles: [developer]\n    - name: ops\n      token_hash: \"" +
                       security::HashToken(kOpsToken) + "\"\n      roles: [operator]\n");
  c.node_args = {"--bootstrap-expect", "2", "--config", config, "--set", "security.keys.poll_interval=300ms"};
  c.StartBootstrap();
  // Node 2 joins as a worker: it holds no role key unless granted.
  const std::string admin_capable = c.node_token;
  const std::string worker = Cluster::TokenIn(
      c.Cli({"cluster", "token", "create", "--data-dir", c.dir.File("n0"), "--role", "worker", "--uses", "1"}).second);
  ASSERT_FALSE(worker.empty());
  // Both admin-capable nodes re-wrap slowly (2 versions/s), so that the one
  // that is not the admin can be killed in the middle of a pass below: the
  // pass starts at the rotation and the test looks at it a second later
  // (at 4/s a pass of 4 versions was over by then, and the test failed).
  c.StartNode(0, true, {"--set", "security.keys.rewrap_per_second=2"});
  c.StartNode(1, true, {"--set", "security.keys.rewrap_per_second=2"});
  c.node_token = worker;
  c.StartNode(2);
  c.node_token = admin_capable;
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 3 && c.Peers(1) == 3 && c.Peers(2) == 3; }, 30s));
  std::string admin;
  ASSERT_TRUE(Eventually([&] {
    admin = AdminOf(c, 0);
    return !admin.empty() && AdminOf(c, 1) == admin && AdminOf(c, 2) == admin;
  }, 20s));
  const std::vector<std::string> ids = {NodeId(c, 0), NodeId(c, 1), NodeId(c, 2)};
  const int a = admin == ids[0] ? 0 : 1;  // the admin's index
  ASSERT_EQ(ids[a], admin);
  // The authorities hold developer v1 (the other one by grant), the worker nothing.
  ASSERT_TRUE(Eventually([&] { return Holds(c, 0, "developer", 1) && Holds(c, 1, "developer", 1); }, 20s));
  EXPECT_FALSE(Holds(c, 2, "developer", 1));

  // Two nodes write one address at once.
  const std::string at = "ucxl://alice:developer@proj:t1/*^/notes.md";
  {
    std::thread w0([&] {
      for (int k = 0; k < 4; ++k) EXPECT_EQ(Put(c, 0, at, "n0 #" + std::to_string(k) + " " + kMarker).status, 201);
    });
    std::thread w1([&] {
      for (int k = 0; k < 4; ++k) EXPECT_EQ(Put(c, 1, at, "n1 #" + std::to_string(k) + " " + kMarker).status, 201);
    });
    w0.join();
    w1.join();
  }
  std::vector<std::string> t0;
  ASSERT_TRUE(Eventually([&] {
    t0 = Timeline(c, 0, "/notes.md", 8);
    return t0.size() == 8 && t0 == Timeline(c, 1, "/notes.md", 8);
  }, 20s)) << (t0.empty() ? "" : t0[0]);

  // Who may read: operator holds no reader role; the worker holds no key.
  const Answer ops = Get(c, 0, at, kOpsToken);
  EXPECT_EQ(ops.status, 403) << ops.body.dump();
  EXPECT_EQ(Code(ops), "UCXL-403-FORBIDDEN");
  const Answer blind = Get(c, 2, at);
  EXPECT_EQ(Code(blind), "UCXL-403-FORBIDDEN") << blind.body.dump();
  EXPECT_EQ(blind.body.dump().find(kMarker), std::string::npos);
  // Search shows the reader only what it may read.
  const Answer dev_search = Call(c, 0, "GET", "/ucxi/v1/search?q=" + kMarker, "", kDevToken);
  EXPECT_EQ(dev_search.body["response"]["data"]["results"].size(), 1u) << dev_search.body.dump();
  const Answer ops_search = Call(c, 0, "GET", "/ucxi/v1/search?q=", "", kOpsToken);
  EXPECT_EQ(ops_search.body["response"]["data"]["results"].size(), 0u) << ops_search.body.dump();

  // The admin grants developer to the worker: it reads the same history.
  const Answer grant = Call(c, a, "POST", "/api/v1/keys/grant",
                            json{{"role", "developer"}, {"node_id", ids[2]}}.dump());
  ASSERT_EQ(grant.status, 200) << grant.body.dump();
  const Answer not_admin = Call(c, 1 - a, "POST", "/api/v1/keys/rotate", json{{"role", "developer"}}.dump());
  EXPECT_EQ(not_admin.status, 409) << not_admin.body.dump();
  // Bad bodies are refused and change nothing; operator reads, cannot change.
  const auto revision = c.Get(a, "/api/v1/keys")["revision"];
  for (const auto& [path, body] : std::vector<std::pair<std::string, std::string>>{
           {"/api/v1/keys/rotate", "{}"},
           {"/api/v1/keys/rotate", "not json"},
           {"/api/v1/keys/rotate", R"({"role": "any"})"},
           {"/api/v1/keys/rotate", R"({"role": "a b"})"},
           {"/api/v1/keys/config", R"({"role": "developer", "min_decryption_version": 0})"},
           {"/api/v1/keys/config", R"({"role": "developer", "min_decryption_version": "2"})"},
           {"/api/v1/keys/config", R"({"role": "developer", "min_decryption_version": 9})"},
           {"/api/v1/keys/config", R"({"role": "nosuchrole", "min_decryption_version": 1})"},
           {"/api/v1/keys/grant", R"({"role": "developer"})"},
           {"/api/v1/keys/grant", R"({"role": "developer", "node_id": "not-a-node"})"}}) {
    const Answer bad = Call(c, a, "POST", path, body);
    EXPECT_TRUE(bad.status == 400 || bad.status == 404) << path << " " << body << ": " << bad.status;
  }
  EXPECT_EQ(c.Get(a, "/api/v1/keys")["revision"], revision);
  EXPECT_EQ(Call(c, a, "GET", "/api/v1/keys", "", kOpsToken).status, 200);
  EXPECT_EQ(Call(c, a, "POST", "/api/v1/keys/rotate", json{{"role", "developer"}}.dump(), kOpsToken).status, 403);
  EXPECT_EQ(Call(c, a, "POST", "/api/v1/keys/rotate", json{{"role", "developer"}}.dump(), kDevToken).status, 403);
  ASSERT_TRUE(Eventually([&] { return Timeline(c, 2, "/notes.md", 8) == t0; }, 20s))
      << Timeline(c, 2, "/notes.md", 8)[0];

  // No plaintext in any file of any data directory.
  for (const char* d : {"n0", "n1", "n2", "boot"}) {
    EXPECT_EQ(FilesContaining(c.dir.File(d), kMarker), std::vector<std::string>{}) << d;
  }

  // Node 1 writes 16 more addresses; then developer rotates while writes go on.
  for (int k = 0; k < 16; ++k) {
    ASSERT_EQ(Put(c, 1, "ucxl://alice:developer@proj:t1/*^/bulk/" + std::to_string(k), "bulk " + kMarker).status, 201);
  }
  // Search covers the cluster: node 2 wrote nothing and finds node 1's
  // keys, a page at a time; a caller without a reader role finds none.
  json page;
  ASSERT_TRUE(Eventually([&] {
    const Answer found = Call(c, 2, "GET", "/ucxi/v1/search?q=bulk&limit=10", "", kDevToken);
    if (found.status != 200) return false;
    page = found.body["response"]["data"];
    return page["results"].size() == 10 && page["next"].is_string();
  }, 20s)) << page.dump();
  // The other writers' index records reach node 2 through the DHT: the
  // second page and the content search see all 16 once they have.
  Answer rest;
  EXPECT_TRUE(Eventually([&] {
    rest = Call(c, 2, "GET", "/ucxi/v1/search?q=bulk&limit=10&after=" + Encode(page["next"].get<std::string>()), "",
                kDevToken);
    return rest.body["response"]["data"]["results"].size() == 6u;
  }, 20s)) << rest.body.dump();
  EXPECT_EQ(Call(c, 2, "GET", "/ucxi/v1/search?q=bulk", "", kOpsToken).body["response"]["data"]["results"].size(), 0u);
  Answer content;
  EXPECT_TRUE(Eventually([&] {
    content = Call(c, 2, "GET", "/ucxi/v1/search?q=" + kMarker + "&limit=100", "", kDevToken);
    return content.body["response"]["data"]["results"].size() == 17u;  // notes.md + 16 bulk
  }, 20s)) << content.body.dump();

  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    for (int k = 0; writing; ++k) {
      if (Put(c, a, "ucxl://alice:developer@proj:t1/*^/during", "during " + std::to_string(k)).status != 201) ++failures;
      std::this_thread::sleep_for(50ms);
    }
  });
  const int before = c.Get(a, "/api/v1/keys")["generation"].get<int>();
  const Answer rotated = Call(c, a, "POST", "/api/v1/keys/rotate", json{{"role", "developer"}}.dump());
  ASSERT_EQ(rotated.status, 201) << rotated.body.dump();
  EXPECT_EQ(rotated.body["version"], 2);
  const int generation = c.Get(a, "/api/v1/keys")["generation"].get<int>();
  EXPECT_EQ(generation, before + 1);
  std::this_thread::sleep_for(1s);
  writing = false;
  writer.join();
  EXPECT_EQ(failures.load(), 0);

  // The node that is not the admin re-wraps at 2 versions/s: kill -9 in the
  // middle, restart, resume. (Killing the admin would move the admin role,
  // and a new admin publishes a new key generation: the pass would start
  // over towards it, rightly, and prove nothing about resuming.)
  // The victim's pass must aim at the rotation's generation: a pass still
  // aiming at the one before would rightly start over after the restart
  // (two clean-clone runs saw 10, then 11), and prove nothing about resuming.
  const int victim = 1 - a;
  json progress;
  ASSERT_TRUE(Eventually([&] {
    progress = Rewrap(c, victim);
    return progress.is_object() && progress["target_generation"] == generation && progress["done"] == false &&
           progress["scanned"].get<int>() >= 2;
  }, 20s)) << progress.dump() << KeyLines(c);
  const auto started = progress["started_ms"].get<std::int64_t>();
  const int target = progress["target_generation"].get<int>();
  c.nodes[victim]->Signal(SIGKILL);
  c.nodes[victim]->Wait(10s);
  c.StartNode(victim, true, {"--set", "security.keys.rewrap_per_second=50"});
  ASSERT_TRUE(Eventually([&] {
    progress = Rewrap(c, victim);
    return progress.is_object() && progress["done"] == true;
  }, 60s)) << progress.dump();
  EXPECT_EQ(progress["started_ms"], started) << "the pass resumed, not restarted";
  EXPECT_EQ(progress["target_generation"], target) << KeyLines(c);
  EXPECT_EQ(progress["failed"], 0);
  EXPECT_EQ(progress["scanned"], progress["total"]);
  ASSERT_TRUE(Eventually([&] {
    const json p = Rewrap(c, a);
    return p.is_object() && p["done"] == true && p["target_generation"] == target;
  }, 30s));

  // The admin stayed where it was (its node was not killed).
  ASSERT_TRUE(Eventually([&] { return AdminOf(c, 0) == admin && AdminOf(c, 1) == admin; }, 30s)) << AdminOf(c, 0);

  // Retire developer v1: everything re-wrapped still reads, everywhere.
  const Answer retire = Call(c, a, "POST", "/api/v1/keys/config",
                             json{{"role", "developer"}, {"min_decryption_version", 2}}.dump());
  ASSERT_EQ(retire.status, 200) << retire.body.dump();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Eventually([&] { return Timeline(c, i, "/notes.md", 8) == t0; }, 20s))
        << i << ": " << Timeline(c, i, "/notes.md", 8)[0];
    EXPECT_EQ(Get(c, i, "ucxl://alice:developer@proj:t1/*^/bulk/7").status, 200) << i;
  }

  // Revoke the worker and rotate: it cannot read what is written next.
  ASSERT_EQ(c.Cli({"cluster", "revoke", ids[2], "--url", c.Url(a)}).first, 0);
  const Answer again = Call(c, a, "POST", "/api/v1/keys/rotate", json{{"role", "developer"}}.dump());
  ASSERT_EQ(again.status, 201) << again.body.dump();
  ASSERT_TRUE(Eventually([&] { return Holds(c, 1 - a, "developer", 3); }, 20s));
  const std::string after = "ucxl://alice:developer@proj:t1/*^/after-revocation";
  ASSERT_EQ(Put(c, 1 - a, after, "secret after " + kMarker).status, 201);
  EXPECT_EQ(Get(c, a, after).status, 200);
  std::this_thread::sleep_for(2s);  // grants would have arrived by now
  EXPECT_FALSE(Holds(c, 2, "developer", 3));
  const Answer revoked = Get(c, 2, after);
  EXPECT_NE(revoked.status, 200) << revoked.body.dump();
  EXPECT_EQ(revoked.body.dump().find(kMarker), std::string::npos);
  for (const char* d : {"n0", "n1", "n2", "boot"}) {
    EXPECT_EQ(FilesContaining(c.dir.File(d), kMarker), std::vector<std::string>{}) << d;
  }
}

}  // namespace
}  // namespace bzzz
