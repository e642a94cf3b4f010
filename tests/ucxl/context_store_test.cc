// The versioned context store: append-only versions with authors and
// hashes, tombstones, temporal reads and navigation, search and discovery,
// history across a restart (SQLite), and cross-node resolution through the
// DHT (three in-process P2P nodes with record stores).
#include "ucxl/context_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "base/clock.h"
#include "dht/record_store.h"
#include "p2p/cluster.h"
#include "http/message.h"
#include "storage/sqlite/sqlite.h"
#include "ucxl/errc.h"
#include "support/support.h"

namespace bzzz::ucxl {
namespace {

using namespace std::chrono_literals;

Address A(const std::string& s) {
  auto a = Parse(s);
  EXPECT_TRUE(a.ok()) << s << ": " << a.status().message();
  return *a;
}

std::shared_ptr<ContextRepository> OpenStore(const std::string& dir) {
  storage::sqlite::SqliteOptions o;
  o.path = dir + "/bzzz.db";
  auto storage = storage::sqlite::Open(o);
  EXPECT_TRUE(storage.ok());
  EXPECT_TRUE(storage->store->Migrate().ok());
  return storage->contexts;
}

const Author kAlice{"alice", "developer"};

TEST(ContextStore, VersionsTombstonesTemporalReadsAndNavigation) {
  testing::TempDir dir;
  ContextStore cs(OpenStore(dir.path()), nullptr);
  const Address at = A("ucxl://alice:developer@bzzz:t1/*^/notes/plan.md");
  for (const char* text : {"v1", "v2", "v3"}) {
    auto e = cs.Put(at, kAlice, "text/markdown", text);
    ASSERT_TRUE(e.ok()) << e.status().message();
  }
  auto latest = cs.Get(at);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->content, "v3");
  EXPECT_EQ(latest->version.number, 3u);
  EXPECT_EQ(latest->version.author_agent, "alice");
  EXPECT_EQ(latest->version.size, 2u);
  EXPECT_EQ(latest->version.content_hash.size(), 64u);
  EXPECT_EQ(latest->address, "ucxl://alice:developer@bzzz:t1/*~3/notes/plan.md");
  EXPECT_EQ(latest->source, Source::kLocal);
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/*~/notes/plan.md"))->content, "v1");
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/~~2/notes/plan.md"))->content, "v1");
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/^^1/notes/plan.md"))->content, "v2");
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/2100-01-01T00:00:00Z/notes/plan.md"))->content, "v3");
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/*~9/notes/plan.md")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/2000-01-01T00:00:00Z/notes/plan.md")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(cs.Get(A("ucxl://alice:developer@bzzz:t1/*^/nothing")).status().IsNotFound());

  // Navigate from v3 two back, then one forward.
  auto back = cs.Navigate(at, -2);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->content, "v1");
  EXPECT_EQ(cs.Navigate(A("ucxl://alice:developer@bzzz:t1/*~1/notes/plan.md"), 1)->content, "v2");
  EXPECT_EQ(cs.Navigate(at, 1).status().code(), StatusCode::kFailedPrecondition);

  // Delete writes a tombstone; the latest is gone, the history stays.
  auto del = cs.Delete(at, kAlice);
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->tombstone);
  EXPECT_EQ(del->number, 4u);
  auto gone = cs.Get(at);
  EXPECT_TRUE(gone.status().IsNotFound());
  EXPECT_NE(gone.status().message().find("deleted at version 4"), std::string::npos);
  EXPECT_EQ(cs.Get(A("ucxl://alice:developer@bzzz:t1/~~1/notes/plan.md"))->content, "v3");
  EXPECT_EQ(cs.History(at)->size(), 4u);
  auto again = cs.Delete(at, kAlice);  // nothing live: a conflict, not a missing address
  EXPECT_EQ(again.status().code(), StatusCode::kConflict);
  EXPECT_EQ(again.status().reason(), Errc::kAlreadyDeleted);
  EXPECT_EQ(UcxlCodeOf(again.status()).status, 409);
  EXPECT_TRUE(cs.Delete(A("ucxl://alice:developer@bzzz:t1/*^/never"), kAlice).status().IsNotFound());
  ASSERT_TRUE(cs.Put(at, kAlice, "text/markdown", "v5").ok());  // writes resume after a delete
  EXPECT_EQ(cs.Get(at)->version.number, 5u);
}

TEST(ContextStore, RefusesWhatItCannotStore) {
  testing::TempDir dir;
  ContextStore cs(OpenStore(dir.path()), nullptr, ContextStoreOptions{16});
  // Each refusal carries its UCXL reason, and the reason its code.
  const Status pattern = cs.Put(A("ucxl://any:r@p:t/*^/x"), kAlice, "t", "x").status();
  EXPECT_EQ(pattern.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pattern.reason(), Errc::kNeedsConcreteAddress);
  EXPECT_EQ(UcxlCodeOf(pattern).status, 422);
  const Status temporal = cs.Put(A("ucxl://a:r@p:t/*~2/x"), kAlice, "t", "x").status();
  EXPECT_EQ(temporal.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(UcxlCodeOf(temporal).name, "TEMPORAL_INVALID");
  const Status large = cs.Put(A("ucxl://a:r@p:t/*^/x"), kAlice, "t", std::string(17, 'x')).status();
  EXPECT_EQ(UcxlCodeOf(large).status, 413);
  EXPECT_EQ(http::HttpStatusOf(large), 413);  // one mapping: the generic API agrees
  EXPECT_EQ(cs.Put(A("ucxl://a:r@p:t/*^/x"), Author{"", "r"}, "t", "x").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cs.Put(A("ucxl://a:r@p:t/*^/x"), kAlice, "t", std::string(17, 'x')).status().code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(cs.Get(A("ucxl://a:any@p:t/*^/x")).status().code(), StatusCode::kInvalidArgument);
  // A content type that is not printable ASCII (it could not be written
  // back as JSON): refused before anything is stored.
  EXPECT_EQ(cs.Put(A("ucxl://a:r@p:t/*^/x"), kAlice, "text/\xff\xfe", "x").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(cs.Put(A("ucxl://a:r@p:t/*^/x"), kAlice, "text/plain\n", "x").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(cs.History(A("ucxl://a:r@p:t/*^/x"))->empty());  // nothing was stored
}

TEST(ContextStore, SearchDiscoverAndHistoryAfterRestart) {
  testing::TempDir dir;
  {
    ContextStore cs(OpenStore(dir.path()), nullptr);
    ASSERT_TRUE(
        cs.Put(A("ucxl://alice:dev@bzzz:t1/*^/design/api.md"), kAlice, "text/markdown", "REST api").ok());
    ASSERT_TRUE(
        cs.Put(A("ucxl://alice:dev@bzzz:t1/*^/design/api.md"), kAlice, "text/markdown", "gRPC api").ok());
    ASSERT_TRUE(
        cs.Put(A("ucxl://bob:qa@bzzz:t2/*^/tests/plan"), Author{"bob", "qa"}, "text/plain", "api tests")
            .ok());
    ASSERT_TRUE(
        cs.Put(A("ucxl://bob:qa@other:t3/*^/x"), Author{"bob", "qa"}, "text/plain", "unrelated").ok());
  }
  ContextStore cs(OpenStore(dir.path()), nullptr);  // reopened: the history is intact
  auto h = cs.History(A("ucxl://alice:dev@bzzz:t1/*^/design/api.md"));
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ(cs.Get(A("ucxl://alice:dev@bzzz:t1/*~1/design/api.md"))->content, "REST api");
  auto found = cs.Search("api", 10);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->size(), 2u);
  EXPECT_EQ(cs.Search("REST", 10)->size(), 0u);  // only latest versions are searched
  EXPECT_EQ(cs.Discover(A("ucxl://any:any@bzzz:any/*^"), 10)->size(), 2u);
  EXPECT_EQ(cs.Discover(A("ucxl://bob:any@any:any/*^"), 10)->size(), 2u);
  EXPECT_EQ(cs.Discover(A("ucxl://any:any@any:any/*^/design"), 10)->size(), 1u);
  EXPECT_EQ(cs.Discover(A("ucxl://any:any@any:any/*^"), 1)->size(), 1u);
}

// In-process nodes, each with P2P, a record store and a context store,
// connected to one another.
struct DhtNode {
  std::unique_ptr<testing::TempDir> dir;
  std::unique_ptr<p2p::P2pNode> p2p;
  std::unique_ptr<dht::RecordStore> records;
  std::unique_ptr<ContextStore> context;
};

std::vector<DhtNode> StartDhtNodes(int count) {
  std::vector<DhtNode> nodes;
  for (int i = 0; i < count; ++i) {
    DhtNode n;
    n.dir = std::make_unique<testing::TempDir>();
    std::vector<std::string> seeds;
    for (const auto& other : nodes) seeds.push_back("127.0.0.1:" + std::to_string(other.p2p->port()));
    n.p2p = testing::StartP2pNode("n" + std::to_string(i), seeds, n.dir->path());
    EXPECT_NE(n.p2p, nullptr);
    if (!n.p2p) return {};
    dht::Options o;
    o.config = testing::FastDhtConfig();
    o.data_dir = n.dir->path();
    auto records = dht::RecordStore::Start(o, *n.p2p, nullptr);
    EXPECT_TRUE(records.ok());
    if (!records.ok()) return {};
    n.records = std::move(records).value();
    n.context = std::make_unique<ContextStore>(OpenStore(n.dir->path()), n.records.get());
    nodes.push_back(std::move(n));
  }
  const bool connected = testing::Eventually(
      [&] {
        for (const auto& n : nodes) {
          if (n.p2p->ConnectedPeers() != static_cast<std::size_t>(count - 1)) return false;
        }
        return true;
      },
      10s);
  EXPECT_TRUE(connected);
  return nodes;
}

void StopDhtNodes(std::vector<DhtNode>& nodes) {
  for (auto& n : nodes) n.records->Stop();
  for (auto& n : nodes) n.p2p->Stop();
}

// Three nodes: what one stores, the others resolve through the DHT.
TEST(ContextStore, OtherNodesResolveThroughTheDht) {
  auto nodes = StartDhtNodes(3);
  ASSERT_EQ(nodes.size(), 3u);
  const Address at = A("ucxl://alice:developer@bzzz:t1/*^/shared/decision.md");
  ASSERT_TRUE(nodes[0].context->Put(at, kAlice, "text/markdown", "first").ok());
  ASSERT_TRUE(nodes[0].context->Put(at, kAlice, "text/markdown", "second").ok());

  auto remote = nodes[2].context->Get(at);
  ASSERT_TRUE(remote.ok()) << remote.status().message();
  EXPECT_EQ(remote->content, "second");
  EXPECT_EQ(remote->version.number, 2u);
  EXPECT_EQ(remote->version.writer, nodes[0].p2p->node_id());
  EXPECT_EQ(remote->version.writer_number, 2u);
  EXPECT_NE(remote->source, Source::kLocal);
  auto first = nodes[1].context->Get(A("ucxl://alice:developer@bzzz:t1/*~1/shared/decision.md"));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->content, "first");
  EXPECT_EQ(nodes[1].context->Navigate(at, -1)->content, "first");
  EXPECT_EQ(nodes[1].context->History(at)->size(), 2u);
  auto providers = nodes[2].context->Providers(at);
  ASSERT_TRUE(providers.ok());
  EXPECT_NE(std::find(providers->begin(), providers->end(), nodes[0].p2p->node_id()), providers->end());

  // A delete on the writer is seen elsewhere too.
  ASSERT_TRUE(nodes[0].context->Delete(at, kAlice).ok());
  EXPECT_TRUE(testing::Eventually([&] { return nodes[2].context->Get(at).status().IsNotFound(); }, 10s));
  StopDhtNodes(nodes);
}

// The (writer, writer's number) of each version, in history order.
std::vector<std::pair<std::string, std::uint64_t>> Ids(const std::vector<ContextVersion>& history) {
  std::vector<std::pair<std::string, std::uint64_t>> ids;
  for (const auto& v : history) ids.emplace_back(v.writer, v.writer_number);
  return ids;
}

// Two nodes write one address at once: neither version replaces or hides
// the other, every node sees one history in the same order, and what one
// member signs under another's names changes nothing.
TEST(ContextStore, ConcurrentWritersShareOneHistory) {
  auto nodes = StartDhtNodes(3);
  ASSERT_EQ(nodes.size(), 3u);
  const Address at = A("ucxl://alice:developer@bzzz:t1/*^/shared/plan.md");
  const std::string key = ContentKey(at);
  {
    std::thread a([&] { EXPECT_TRUE(nodes[0].context->Put(at, kAlice, "text/plain", "from n0").ok()); });
    std::thread b([&] { EXPECT_TRUE(nodes[1].context->Put(at, kAlice, "text/plain", "from n1").ok()); });
    a.join();
    b.join();
  }
  auto third = nodes[1].context->Put(at, kAlice, "text/plain", "n1 again");
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_EQ(third->version.number, 3u);  // n1 saw n0's version before its second write
  EXPECT_EQ(third->version.writer_number, 2u);

  // Every node: three versions, the same order, each with its writer.
  std::vector<std::pair<std::string, std::uint64_t>> expected;
  ASSERT_TRUE(testing::Eventually(
      [&] {
        auto h = nodes[0].context->History(at);
        if (!h.ok() || h->size() != 3) return false;
        expected = Ids(*h);
        return true;
      },
      10s));
  EXPECT_EQ(expected.back(), std::make_pair(nodes[1].p2p->node_id(), std::uint64_t{2}));
  for (auto& n : nodes) {
    ASSERT_TRUE(testing::Eventually(
        [&] {
          auto h = n.context->History(at);
          return h.ok() && Ids(*h) == expected;
        },
        10s))
        << n.p2p->node_id();
    auto latest = n.context->Get(at);
    ASSERT_TRUE(latest.ok()) << latest.status().message();
    EXPECT_EQ(latest->content, "n1 again");
    std::set<std::string> contents;
    for (int number = 1; number <= 3; ++number) {
      auto v =
          n.context->Get(A("ucxl://alice:developer@bzzz:t1/*~" + std::to_string(number) + "/shared/plan.md"));
      ASSERT_TRUE(v.ok()) << v.status().message();
      contents.insert(v->content);
    }
    EXPECT_EQ(contents, (std::set<std::string>{"from n0", "from n1", "n1 again"}));
  }

  // A member (n2) signs other content under n0's version name, and a
  // history record that gives n0's version another hash: n0's own word wins.
  const std::string n0 = nodes[0].p2p->node_id();
  // (A put once failed on a loaded bare machine: the forgery is retried
  // until stored, since what is tested is how readers treat it; the last
  // refusal is shown if it never is.)
  Status put;
  ASSERT_TRUE(testing::Eventually(
      [&] { return (put = nodes[2].records->Put(ContextStore::VersionRecordName(key, n0, 1), "forged")).ok(); }, 20s))
      << put.ToString();
  const std::string fake_hash(64, 'a');
  const std::string forged_history =
      R"({"key":")" + key + R"(","versions":[{"writer":")" + n0 +
      R"(","writer_number":1,"author_agent":"mallory","author_role":"developer","created_ms":1,)"
      R"("content_type":"text/plain","size":6,"content_hash":")" +
      fake_hash + R"(","tombstone":false}]})";
  ASSERT_TRUE(testing::Eventually(
      [&] { return (put = nodes[2].records->Put(ContextStore::HistoryRecordName(key), forged_history)).ok(); }, 20s))
      << put.ToString();
  auto h = nodes[1].context->History(at);
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(Ids(*h), expected);
  for (const auto& v : *h) EXPECT_NE(v.author_agent, "mallory");
  std::set<std::string> contents;
  for (int number = 1; number <= 3; ++number) {
    auto v = nodes[1].context->Get(
        A("ucxl://alice:developer@bzzz:t1/*~" + std::to_string(number) + "/shared/plan.md"));
    ASSERT_TRUE(v.ok()) << v.status().message();
    contents.insert(v->content);
  }
  EXPECT_EQ(contents, (std::set<std::string>{"from n0", "from n1", "n1 again"}));
  StopDhtNodes(nodes);
}

// A clock off the real one by a fixed offset (a node whose clock is wrong).
class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(std::chrono::milliseconds offset) : offset_(offset) {}
  SystemTime Now() const override { return Clock::Real().Now() + offset_; }
  SteadyTime Monotonic() const override { return Clock::Real().Monotonic(); }

 private:
  std::chrono::milliseconds offset_;
};

// A writer whose clock is an hour behind still sorts after the version it
// followed (hybrid logical clock), on every node.
TEST(ContextStore, AWriteSortsAfterWhatItsWriterSawWhateverTheClocks) {
  auto nodes = StartDhtNodes(3);
  ASSERT_EQ(nodes.size(), 3u);
  const Address at = A("ucxl://alice:developer@bzzz:t1/*^/clock/skew.md");
  testing::TempDir other;
  const OffsetClock behind(-std::chrono::hours(1));
  // Node 1 writes with the slow clock (its own store, the same node id).
  ContextStore slow(OpenStore(other.path()), nodes[1].records.get(), {}, nullptr, behind);
  auto first = nodes[0].context->Put(at, kAlice, "text/plain", "first");
  ASSERT_TRUE(first.ok());
  auto second = slow.Put(at, kAlice, "text/plain", "second");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->version.number, 2u);
  EXPECT_EQ(second->version.created_ms, first->version.created_ms);
  EXPECT_EQ(second->version.logical, first->version.logical + 1);
  for (auto& n : nodes) {
    ASSERT_TRUE(testing::Eventually(
        [&] {
          auto latest = n.context->Get(at);
          return latest.ok() && latest->content == "second";
        },
        10s));
  }
  StopDhtNodes(nodes);
}

// Every node computes the same history from the same versions, whatever
// order the writers' records arrive in and whoever repeats whom.
TEST(MergeHistories, SameVersionsAnyArrivalOrderSameHistory) {
  std::mt19937 rng(20261206);
  const std::vector<std::string> writers = {"aaaa", "bbbb", "cccc", "dddd"};
  for (int round = 0; round < 300; ++round) {
    // Each writer's own versions, stamped by a shared HLC-ish clock with ties.
    std::map<std::string, std::vector<ContextVersion>> own;
    std::int64_t now = 1000;
    std::uint32_t logical = 0;
    const int count = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < count; ++i) {
      const std::string& w = writers[rng() % writers.size()];
      if (rng() % 3 == 0) {
        ++logical;
      } else {
        now += 1 + static_cast<std::int64_t>(rng() % 2);
        logical = 0;
      }
      ContextVersion v;
      v.key = "k";
      v.writer = w;
      v.writer_number = own[w].size() + 1;
      v.created_ms = now;
      v.logical = logical;
      v.tombstone = rng() % 5 == 0;
      v.content_hash = std::string(64, static_cast<char>('a' + i % 6));
      own[w].push_back(v);
    }
    // Each writer's record: its own versions and some others' it learnt.
    std::vector<WriterRecord> records;
    for (const auto& [w, versions] : own) {
      WriterRecord r{w, versions};
      for (const auto& [other, theirs] : own) {
        if (other == w) continue;
        for (const auto& v : theirs) {
          if (rng() % 2) r.versions.push_back(v);
        }
      }
      records.push_back(std::move(r));
    }
    // Node views: some node holds one writer's versions locally.
    std::vector<std::vector<ContextVersion>> results;
    for (int view = 0; view < 6; ++view) {
      auto shuffled = records;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      for (auto& r : shuffled) std::shuffle(r.versions.begin(), r.versions.end(), rng);
      std::sort(shuffled.begin(), shuffled.end(), [](const auto& a, const auto& b) { return a.writer < b.writer; });
      const std::string& local = writers[view % writers.size()];
      std::vector<ContextVersion> mine;
      std::vector<WriterRecord> rest;
      for (auto& r : shuffled) {
        if (r.writer == local) {
          for (auto v : own[local]) {
            v.number = v.writer_number;
            mine.push_back(v);
          }
        } else {
          rest.push_back(r);
        }
      }
      results.push_back(MergeHistories(local, mine, rest));
    }
    for (std::size_t i = 1; i < results.size(); ++i) {
      ASSERT_EQ(results[i].size(), results[0].size()) << round;
      for (std::size_t j = 0; j < results[0].size(); ++j) {
        EXPECT_EQ(results[i][j].writer, results[0][j].writer) << round;
        EXPECT_EQ(results[i][j].writer_number, results[0][j].writer_number) << round;
        EXPECT_EQ(results[i][j].number, j + 1);
      }
    }
    std::size_t total = 0;
    for (const auto& [w, versions] : own) total += versions.size();
    EXPECT_EQ(results[0].size(), total);
    // Each writer's versions keep their own order.
    std::map<std::string, std::uint64_t> last;
    for (const auto& v : results[0]) {
      EXPECT_GT(v.writer_number, last[v.writer]);
      last[v.writer] = v.writer_number;
    }
  }
}

}  // namespace
}  // namespace bzzz::ucxl
