// RecordStore: typed records in the DHT, provider records and replication
// (SPEC §3.4), on top of the P2P node's OpenDHT runner.
//
// - A record is a signed frame (kind kRecord) under "rec:<name>": a "meta"
//   message {content_type, size, sha256, chunks} and, up to 60,000 bytes, a
//   "content" message. Larger content is cut into content-addressed chunks
//   ("chunk:<sha1>"), which storage nodes check against their key.
// - The writer and every node asked to replicate a record *hold* it: its raw
//   values are kept in <data_dir>/dht/held/ and re-put each
//   dht.provider_refresh, and the node announces itself as a provider under
//   "prov:<name>" (signed, expiring after dht.provider_ttl).
// - Replication factor of a record = its live, distinct providers. Below
//   dht.replication_factor, holders ask the best-ranked peers that do not
//   hold it yet (rendezvous hashing on (name, node id), so every holder picks
//   the same ones) to fetch and hold it.
// - Reads go held copy -> the node's cache (cache/cache.h: memory, then
//   Redis when layered, shared by the nodes) -> the disk cache
//   (<data_dir>/dht/cache, size-bounded, safe to delete while running) ->
//   DHT. Every cached copy lives dht.cache_ttl and is verified like a
//   value from the DHT before it is used (Redis is not trusted: a forged
//   or damaged entry there is a miss, and is removed).
//
// Every blocking method waits at most dht.operation_timeout and must not be
// called from an OpenDHT callback. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/config.h"
#include "p2p/p2p.h"

namespace prometheus {
class Registry;
}

namespace bzzz::cache {
class Cache;
}

namespace bzzz::dht {

inline constexpr std::size_t kInlineBytes = 60000;
inline constexpr std::size_t kChunkBytes = 60000;
inline constexpr std::size_t kMaxRecordBytes = 16u << 20;
inline constexpr std::size_t kMaxNameBytes = 1024;

struct Record {
  std::string name;
  std::string content;
  std::string content_type;
  std::string writer;             // node id of the signer
  std::int64_t written_at_ms = 0;
  std::string sha256;             // hex, of the content
  std::size_t chunks = 0;
  std::string source;             // "held", "cache" or "dht"
};

struct Provider {
  std::string node_id;
  std::string http_endpoint;
  std::int64_t announced_at_ms = 0;
};

struct Replication {
  std::string name;
  int factor = 0;  // live distinct providers
  int target = 0;
  std::vector<Provider> providers;
};

struct HeldRecord {
  std::string name;
  std::size_t size = 0;
  int replication = -1;  // last measured factor; -1 before the first round
};

struct CacheClearResult {
  std::size_t files = 0;           // of the disk cache
  std::size_t bytes = 0;
  std::size_t memory_entries = 0;  // of the node's memory cache layer (Redis keeps shared copies)
};

struct Options {
  config::DhtConfig config;
  std::string data_dir;  // "" keeps held records and the cache in memory only (not at all for the disk cache)
  std::shared_ptr<cache::Cache> cache;  // null: the disk cache only
};

class RecordStore {
 public:
  static Result<std::unique_ptr<RecordStore>> Start(Options options, p2p::P2pNode& p2p,
                                                    prometheus::Registry* metrics);
  ~RecordStore();  // Stop()
  RecordStore(const RecordStore&) = delete;
  RecordStore& operator=(const RecordStore&) = delete;
  void Stop();

  // Signs and stores `content` under `name`; this node holds and provides it.
  // With `replicate` false no other node is asked to hold it (probes).
  // InvalidArgument for an empty or oversized name or content.
  Status Put(std::string_view name, std::string content, std::string_view content_type = "application/octet-stream",
             bool replicate = true);
  // NotFound when no node has it; Unavailable on a verification failure of
  // every copy found. `bypass_cache` skips the held copy and the cache.
  Result<Record> Get(std::string_view name, bool bypass_cache = false);
  // The newest verified copy of `name` by each writer that has one, newest
  // first, always from the DHT (never held or cached): for records that
  // several nodes write under one name, where the newest alone would hide
  // the others (UCXL histories). NotFound when there is no copy.
  Result<std::vector<Record>> GetEachWriter(std::string_view name);
  // This node's id: the `writer` of the records it puts.
  std::string WriterId() const;
  // Announces this node as a provider of a record it holds (NotFound otherwise).
  Status Announce(std::string_view name);
  // Live providers, one per node, newest announcement first.
  Result<std::vector<Provider>> Discover(std::string_view name);
  Result<Replication> MeasureReplication(std::string_view name);
  // Stops holding and providing `name` (its DHT copies expire by themselves).
  Status Release(std::string_view name);

  std::vector<HeldRecord> Held() const;
  double AverageReplication() const;  // over held records, as last measured
  CacheClearResult ClearCache();
  std::size_t CacheBytes() const;
  // Runs one replication round now (also runs every dht.provider_refresh).
  void ReplicateNow();

 private:
  RecordStore();
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::dht
