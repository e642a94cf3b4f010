// ContextStore: the versioned context behind UCXL addresses (SPEC §3.9).
//
// - Versions are append-only, numbered 1, 2, ... per content key (the
//   address without temporal, query and fragment); each records its author
//   (agent, role), time, content type, size and SHA-256. Delete appends a
//   tombstone; the history stays navigable.
// - Persisted through storage::Store. Content passes through a
//   ContentCodec on its way in and out: identity here, role encryption later.
// - With a RecordStore, every append is published to the DHT: the history
//   (metadata only) under "ucxl/h/<sha256(key)>" and each version's content
//   under "ucxl/v/<sha256(key)>/<n>", both provided by this node. A read
//   resolves local store -> DHT cache -> DHT, so any node resolves what any
//   other node stored (the history itself is always read from the DHT, as
//   it changes; version content is immutable and cached).
// Limitation: versions are numbered by the node that stores them. Two
// nodes writing the same address keep separate local histories, and the
// DHT history is the last writer's.
// Thread-safe (the store and the record store are).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "storage/store.h"
#include "ucxl/address.h"

namespace bzzz::dht {
class RecordStore;
}

namespace bzzz::ucxl {

class ContentCodec {
 public:
  virtual ~ContentCodec() = default;
  virtual Result<std::string> Seal(const std::string& key, const std::string& author_role,
                                   std::string content) = 0;
  virtual Result<std::string> Open(const std::string& key, std::string stored) = 0;
};

struct Author {
  std::string agent;
  std::string role;
};

// Where a read was answered from.
enum class Source { kLocal, kCache, kDht };
std::string_view SourceName(Source s);  // "local", "cache", "dht"

struct Entry {
  storage::ContextVersion version;
  std::string content;  // empty for a tombstone
  std::string address;  // canonical, pinned to the version: ucxl://.../*~N/path
  Source source = Source::kLocal;
};

struct ContextStoreOptions {
  std::size_t max_content_bytes = 8u << 20;  // ResourceExhausted above (413)
};

class ContextStore {
 public:
  // `records` may be null (no DHT: local only); `codec` null means identity.
  ContextStore(std::shared_ptr<storage::Store> store, dht::RecordStore* records,
               ContextStoreOptions options = {}, std::shared_ptr<ContentCodec> codec = nullptr,
               const Clock& clock = Clock::Real());

  // Appends a version at `address` (no wildcard; temporal must be *^).
  // InvalidArgument (wildcard, bad author), FailedPrecondition (temporal
  // other than *^), ResourceExhausted (too large).
  Result<Entry> Put(const Address& address, const Author& author, std::string content_type,
                    std::string content);
  // The version `address` names. NotFound when nothing is stored there or it
  // was deleted (the message says so); FailedPrecondition for a temporal
  // out of range.
  Result<Entry> Get(const Address& address);
  // Appends a tombstone. NotFound when there is nothing live to delete.
  Result<storage::ContextVersion> Delete(const Address& address, const Author& author);
  // Every version of the content at `address`, oldest first (local, else DHT).
  Result<std::vector<storage::ContextVersion>> History(const Address& address);
  // From the version `address` names, `steps` versions forward (> 0) or back
  // (< 0). FailedPrecondition when that leaves the history.
  Result<Entry> Navigate(const Address& address, std::int64_t steps);
  // Latest live versions whose key, type, author or content contain `text`.
  Result<std::vector<storage::ContextVersion>> Search(const std::string& text, std::size_t limit);
  // Latest live versions of the local keys `pattern` matches (wildcards).
  Result<std::vector<storage::ContextVersion>> Discover(const Address& pattern, std::size_t limit);
  // Announces this node as a provider of the content at `address`.
  Status Announce(const Address& address);
  // Node ids providing the content at `address` in the DHT.
  Result<std::vector<std::string>> Providers(const Address& address);

  static std::string HistoryRecordName(const std::string& key);
  static std::string VersionRecordName(const std::string& key, std::uint64_t number);

 private:
  Result<std::vector<storage::ContextVersion>> LocalOrRemoteHistory(const std::string& key, Source* source);
  Result<Entry> Load(const Address& address, const std::vector<storage::ContextVersion>& history,
                     std::size_t index, Source source);
  void Publish(const std::string& key, const storage::ContextVersion& version, const std::string& stored);
  // A version of `key` by `author`, stamped now; the caller fills the rest.
  storage::ContextVersion NewVersion(const std::string& key, const Author& author) const;

  std::shared_ptr<storage::Store> store_;
  dht::RecordStore* records_;
  ContextStoreOptions options_;
  std::shared_ptr<ContentCodec> codec_;
  const Clock& clock_;
};

}  // namespace bzzz::ucxl
