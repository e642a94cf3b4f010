// Records, providers and replication on five real P2P nodes on loopback.
#include "dht/record_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "cache/cache.h"
#include "p2p/cluster.h"
#include "support/services.h"
#include "support/support.h"

namespace bzzz::dht {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Member {
  std::unique_ptr<testing::TempDir> dir;
  std::unique_ptr<p2p::P2pNode> p2p;
  std::unique_ptr<RecordStore> records;
  void Stop() {
    if (records) records->Stop();
    records.reset();
    p2p.reset();
  }
};

class RecordStoreTest : public ::testing::Test {
 protected:
  static constexpr int kNodes = 5;

  void SetUp() override {
    for (int i = 0; i < kNodes; ++i) {
      Member m;
      m.dir = std::make_unique<testing::TempDir>();
      std::vector<std::string> seeds;
      for (const auto& other : members_) seeds.push_back("127.0.0.1:" + std::to_string(other.p2p->port()));
      m.p2p = testing::StartP2pNode("node" + std::to_string(i), seeds, m.dir->path());
      ASSERT_NE(m.p2p, nullptr);
      Options o;
      o.config = testing::FastDhtConfig();
      o.data_dir = m.dir->path();
      auto store = RecordStore::Start(o, *m.p2p, nullptr);
      ASSERT_TRUE(store.ok()) << store.status().message();
      m.records = std::move(store).value();
      members_.push_back(std::move(m));
    }
    ASSERT_TRUE(Eventually(
        [&] {
          for (const auto& m : members_) {
            if (m.p2p->ConnectedPeers() != kNodes - 1) return false;
          }
          return true;
        },
        10s));
  }

  void TearDown() override {
    // Record stores first: their rounds would otherwise wait on departed nodes.
    for (auto& m : members_) {
      if (m.records) m.records->Stop();
    }
    for (auto& m : members_) m.Stop();
  }

  std::vector<Member> members_;
};

TEST_F(RecordStoreTest, WhatOneNodePutsAnotherGets) {
  ASSERT_TRUE(members_[0]
                  .records->Put("ucxl://dev:developer@bzzz:p2p/*^/notes.md", "hello dht", "text/markdown")
                  .ok());
  auto r = members_[3].records->Get("ucxl://dev:developer@bzzz:p2p/*^/notes.md");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->content, "hello dht");
  EXPECT_EQ(r->content_type, "text/markdown");
  EXPECT_EQ(r->writer, members_[0].p2p->node_id());
  EXPECT_EQ(r->source, "dht");
  // The second read is local: from the cache, or from a replica this node
  // was recruited to hold meanwhile (replication rounds run every 500 ms).
  auto again = members_[3].records->Get("ucxl://dev:developer@bzzz:p2p/*^/notes.md");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->source == "cache" || again->source == "held") << again->source;
  // The cache may be deleted while running.
  fs::remove_all(members_[3].dir->path() + "/dht/cache");
  auto after_rm = members_[3].records->Get("ucxl://dev:developer@bzzz:p2p/*^/notes.md");
  ASSERT_TRUE(after_rm.ok()) << after_rm.status().message();
  EXPECT_EQ(after_rm->content, "hello dht");
  EXPECT_EQ(members_[3].records->Get("no/such/record").status().code(), StatusCode::kNotFound);
}

// A member's record whose inline content does not match its hash is refused
// by the storage nodes (not only by readers): it is never stored.
TEST_F(RecordStoreTest, StorageNodesRefuseContentThatFailsItsHash) {
  p2p::Frame f;
  f.kind = p2p::FrameKind::kRecord;
  f.credential = members_[0].p2p->credential();
  f.seq = 1;
  f.sent_at_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  f.topic = "forged/record";
  f.messages.push_back({"meta", f.sent_at_ns / 1000, 0,
                        R"({"content_type":"text/plain","size":5,"sha256":"00","chunks":[]})"});
  f.messages.push_back({"content", f.sent_at_ns / 1000, 0, "hello"});
  auto bytes = p2p::EncodeFrame(f, members_[0].p2p->identity());
  ASSERT_TRUE(bytes.ok());
  std::uint64_t rejected_before = 0;
  for (const auto& m : members_) rejected_before += m.p2p->Stats().rejected;
  std::promise<bool> done;
  members_[0].p2p->DhtPut("rec:forged/record", *bytes, p2p::ValueClass::kRecord, 0,
                          [&done](bool ok) { done.set_value(ok); });
  (void)done.get_future().wait_for(5s);
  EXPECT_TRUE(Eventually(
      [&] {
        std::uint64_t rejected = 0;
        for (const auto& m : members_) rejected += m.p2p->Stats().rejected;
        return rejected > rejected_before;
      },
      5s));
  EXPECT_FALSE(members_[3].records->Get("forged/record").ok());
}

TEST_F(RecordStoreTest, LargeContentIsChunkedAndReassembled) {
  std::string big(300 * 1000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  ASSERT_TRUE(members_[1].records->Put("big/blob", big).ok());
  // A caller retries a read that did not complete: on a loaded CI machine
  // the five chunk reads once took longer than the 5 s operation timeout
  // ("no copy of big/blob verified: chunks not fetched within ...").
  auto r = members_[4].records->Get("big/blob", /*bypass_cache=*/true);
  for (int attempt = 1; attempt < 3 && !r.ok(); ++attempt) {
    r = members_[4].records->Get("big/blob", /*bypass_cache=*/true);
  }
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->chunks, 5u);
  EXPECT_EQ(r->content, big);
}

TEST_F(RecordStoreTest, ProvidersAreDiscoveredOncePerNode) {
  ASSERT_TRUE(members_[2].records->Put("shared/doc", "v1").ok());
  ASSERT_TRUE(members_[2].records->Announce("shared/doc").ok());  // twice: still one provider entry
  // (Not "shared/doc" on another node: a replication round may already have
  // recruited that node to hold a replica, and then it may announce it.)
  EXPECT_EQ(members_[0].records->Announce("never/put").code(), StatusCode::kNotFound)
      << "announced without holding";
  auto providers = members_[0].records->Discover("shared/doc");
  ASSERT_TRUE(providers.ok()) << providers.status().message();
  std::set<std::string> ids;
  for (const auto& p : *providers) ids.insert(p.node_id);
  EXPECT_EQ(ids.size(), providers->size()) << "duplicate providers";
  EXPECT_TRUE(ids.count(members_[2].p2p->node_id()));
}

TEST_F(RecordStoreTest, ReplicationReachesTargetAndIsRestoredAfterAHolderDies) {
  ASSERT_TRUE(members_[0].records->Put("replicated/record", "keep me").ok());
  auto factor = [&](int reader) {
    auto r = members_[reader].records->MeasureReplication("replicated/record");
    return r.ok() ? r->factor : -1;
  };
  ASSERT_TRUE(Eventually([&] { return factor(0) == 3; }, 15s)) << "factor " << factor(0);
  // Kill a holder other than the writer.
  auto r = members_[0].records->MeasureReplication("replicated/record");
  ASSERT_TRUE(r.ok());
  int victim = -1;
  for (int i = 1; i < kNodes && victim < 0; ++i) {
    for (const auto& p : r->providers) {
      if (p.node_id == members_[i].p2p->node_id()) victim = i;
    }
  }
  ASSERT_GT(victim, 0);
  const std::string victim_id = members_[victim].p2p->node_id();
  members_[victim].Stop();
  const int reader = victim == 1 ? 2 : 1;
  // The victim's provider record expires, then a new holder is recruited.
  EXPECT_TRUE(Eventually(
      [&] {
        auto now = members_[reader].records->MeasureReplication("replicated/record");
        if (!now.ok() || now->factor < 3) return false;
        for (const auto& p : now->providers) {
          if (p.node_id == victim_id) return false;
        }
        return true;
      },
      20s));
  auto content = members_[reader].records->Get("replicated/record", true);
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(content->content, "keep me");
}

TEST_F(RecordStoreTest, HeldRecordsSurviveARestart) {
  ASSERT_TRUE(members_[1].records->Put("durable/x", "payload").ok());
  const std::string dir = members_[1].dir->path();
  members_[1].records->Stop();
  members_[1].records.reset();
  Options o;
  o.config = testing::FastDhtConfig();
  o.data_dir = dir;
  auto store = RecordStore::Start(o, *members_[1].p2p, nullptr);
  ASSERT_TRUE(store.ok());
  members_[1].records = std::move(store).value();
  auto held = members_[1].records->Held();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].name, "durable/x");
  auto r = members_[1].records->Get("durable/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->source, "held");
}

TEST_F(RecordStoreTest, BadInputIsRefused) {
  auto& s = *members_[0].records;
  EXPECT_EQ(s.Put("", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Put(std::string(2000, 'n'), "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Put("ctl\x01name", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Put("huge", std::string(kMaxRecordBytes + 1, 'x')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Get("").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RecordStoreTest, CacheClearRemovesFilesAndReadsStillWork) {
  ASSERT_TRUE(members_[0].records->Put("cached/a", "A").ok());
  ASSERT_TRUE(members_[2].records->Get("cached/a").ok());
  EXPECT_GT(members_[2].records->CacheBytes(), 0u);
  const auto cleared = members_[2].records->ClearCache();
  EXPECT_EQ(cleared.files, 1u);
  EXPECT_EQ(members_[2].records->CacheBytes(), 0u);
  auto r = members_[2].records->Get("cached/a");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->source, "dht");
}

// The node's cache with a Redis layer shared by members 1 and 2 (no disk
// cache: data_dir ""; the records are put with replicate false, so only
// the writer holds them): what one fetched from the DHT the other reads from
// Redis, and an entry in Redis that is not the record asked for (here a
// genuine signed record of another name) is refused, dropped and read from
// the DHT instead. Redis is not trusted.
TEST_F(RecordStoreTest, RedisSharesFetchedRecordsAndIsNotTrusted) {
  testing::RedisServer redis;
  ASSERT_TRUE(redis.ok()) << redis.error();
  config::CacheConfig cc;
  cc.layers = {"memory", "redis"};
  cc.redis.host = "127.0.0.1";
  cc.redis.port = redis.port();
  std::vector<std::shared_ptr<cache::Cache>> caches;
  for (int i : {1, 2}) {
    members_[i].records->Stop();
    caches.push_back(cache::Cache::Open(cc));
    Options o;
    o.config = testing::FastDhtConfig();
    o.cache = caches.back();
    auto store = RecordStore::Start(o, *members_[i].p2p, nullptr);
    ASSERT_TRUE(store.ok()) << store.status().message();
    members_[i].records = std::move(store).value();
  }
  for (const char* name : {"shared/b", "shared/c"}) {
    ASSERT_TRUE(members_[0].records->Put(name, std::string("content of ") + name, "text/plain", false).ok());
  }

  auto first = members_[1].records->Get("shared/b");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->source, "dht");
  EXPECT_EQ(redis.Cli("EXISTS bzzz:dht:shared/b"), "1");
  auto shared = members_[2].records->Get("shared/b");
  ASSERT_TRUE(shared.ok()) << shared.status().message();
  EXPECT_EQ(shared->source, "cache");
  EXPECT_EQ(shared->content, "content of shared/b");
  EXPECT_EQ(caches[1]->Health().hits, 1u);  // from Redis, then promoted
  EXPECT_EQ(members_[2].records->Get("shared/b")->source, "cache");
  EXPECT_EQ(caches[1]->Health().hits, 2u);

  // The forgery: shared/b's signed frames stored under shared/c's key.
  config::CacheConfig redis_only = cc;
  redis_only.layers = {"redis"};  // sees what is in Redis, not a memory copy of its own
  auto forger = cache::Cache::Open(redis_only);
  auto genuine = forger->Get("dht", "shared/b");
  ASSERT_TRUE(genuine.has_value());
  forger->Put("dht", "shared/c", genuine->value);
  auto c = members_[2].records->Get("shared/c");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->content, "content of shared/c");
  EXPECT_EQ(c->source, "dht");
  // Dropped, then replaced by the genuine record fetched from the DHT.
  auto replaced = forger->Get("dht", "shared/c");
  ASSERT_TRUE(replaced.has_value());
  EXPECT_NE(replaced->value, genuine->value);

  // Garbage is refused the same way.
  ASSERT_EQ(redis.Cli("SET bzzz:dht:shared/garbage xyz"), "OK");
  EXPECT_EQ(members_[1].records->Get("shared/garbage").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(redis.Cli("EXISTS bzzz:dht:shared/garbage"), "0");

  // `dht cache clear` empties the memory layer of DHT records.
  EXPECT_GE(members_[2].records->ClearCache().memory_entries, 1u);
  EXPECT_EQ(members_[2].records->Get("shared/b")->source, "cache");  // Redis keeps the shared copy
}

}  // namespace
}  // namespace bzzz::dht
