// ContextStore: the versioned context behind UCXL addresses (SPEC §3.9).
//
// - Versions are append-only, numbered 1, 2, ... per content key (the
//   address without temporal, query and fragment); each records its author
//   (agent, role), time, content type, size and SHA-256. Delete appends a
//   tombstone; the history stays navigable.
// - Persisted through a ContextRepository (ucxl/repository.h). Content
//   passes through a ContentCodec on its way in and out: identity without
//   one, sealed per role with ucxl::RoleCodec (keys/).
// - Many nodes may write one address; their versions form one shared
//   history that every node orders the same way. A version is named by its
//   writer (node id) and the writer's own number; the shared order is the
//   hybrid logical clock (created_ms, logical), then writer, then writer's
//   number (MergeHistories), and `number` is the position in it (1-based).
//   A write is stamped after every version its writer knew, so it never
//   sorts before what it followed, whatever the clocks say. A write never
//   replaces or hides another node's version.
// - With a RecordStore, every write publishes, signed by the writer:
//   the version's content under "ucxl/v/<sha256(key)>/<writer>/<n>" and the
//   shared history as this writer knows it (its own versions and those it
//   learnt from others, metadata only) under "ucxl/h/<sha256(key)>". Every
//   writer's newest history record coexists under that name; a read merges
//   them all with the local versions, a writer's own entries winning over
//   what others say of them. Content is checked against the hash its writer
//   published and must be signed by that writer.
// - A read resolves local store -> DHT cache -> DHT: the history is always
//   read from the DHT (it changes), version content is immutable and cached.
//   When the DHT cannot be reached, a node that has versions of the address
//   answers with those (its own) rather than failing.
// - Concurrent writers may both become "latest" for a moment on different
//   nodes; once each writer's record is visible every node has the same
//   history, and a version written later by the clock sorts later.
// Thread-safe (the store and the record store are).

#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "ucxl/repository.h"
#include "ucxl/address.h"

namespace bzzz::dht {
class RecordStore;
}

namespace bzzz::ucxl {

// Who is reading: the roles the caller holds, or every role (the
// permission ucxl:admin, and in-process readers that answer no caller).
struct Reader {
  std::vector<std::string> roles;
  bool all = false;
  static Reader Everyone() { return {{}, true}; }
  bool MayRead(const std::string& role) const;
};

// How content is stored: identity without a codec; sealed per role with
// one (keys/, ucxl/role_codec.h).
class ContentCodec {
 public:
  virtual ~ContentCodec() = default;
  // The bytes to store for `content` at content key `key`.
  virtual Result<std::string> Seal(const std::string& key, std::string content) = 0;
  // The content of stored bytes for `reader`: PermissionDenied when the
  // reader (or this node) may not read it.
  virtual Result<std::string> Open(const std::string& key, std::string stored, const Reader& reader) = 0;
  // The roles that may read `stored` at `key`; nullopt: anyone (no sealing).
  virtual std::optional<std::vector<std::string>> Readers(const std::string& key, const std::string& stored) {
    (void)key;
    (void)stored;
    return std::nullopt;
  }
  // New stored bytes sealed to the newest keys; nullopt when already current.
  virtual Result<std::optional<std::string>> Rewrap(const std::string& key, const std::string& stored) {
    (void)key;
    (void)stored;
    return std::optional<std::string>();
  }
};

struct Author {
  std::string agent;
  std::string role;
};

// Where a read was answered from.
enum class Source { kLocal, kCache, kDht };
std::string_view SourceName(Source s);  // "local", "cache", "dht"

struct Entry {
  ContextVersion version;
  std::string content;  // empty for a tombstone
  std::string address;  // canonical, pinned to the version: ucxl://.../*~N/path
  Source source = Source::kLocal;
};

struct ContextStoreOptions {
  std::size_t max_content_bytes = 8u << 20;  // ResourceExhausted above (413)
};

// MergeHistories is the shared order as a pure function: the versions this
// node wrote and every writer's history record, merged and numbered. Every
// node computes the same history from the same versions, in any order.
struct WriterRecord {
  std::string writer;                   // the record's verified signer
  std::vector<ContextVersion> versions;  // what it says (number ignored)
};
std::vector<ContextVersion> MergeHistories(const std::string& own_writer, std::vector<ContextVersion> own,
                                           const std::vector<WriterRecord>& records);
bool VersionBefore(const ContextVersion& a, const ContextVersion& b);

class ContextStore {
 public:
  // `records` may be null (no DHT: local only); `codec` null means identity.
  ContextStore(std::shared_ptr<ContextRepository> store, dht::RecordStore* records,
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
  // PermissionDenied when `reader` may not read the content.
  Result<Entry> Get(const Address& address, const Reader& reader = Reader::Everyone());
  // Appends a tombstone. NotFound when there is nothing live to delete.
  Result<ContextVersion> Delete(const Address& address, const Author& author);
  // Every version of the content at `address`, oldest first (local, else DHT).
  Result<std::vector<ContextVersion>> History(const Address& address);
  // From the version `address` names, `steps` versions forward (> 0) or back
  // (< 0). FailedPrecondition when that leaves the history.
  Result<Entry> Navigate(const Address& address, std::int64_t steps, const Reader& reader = Reader::Everyone());
  // Latest live versions (by key, after the key `after`) that `reader` may
  // read and whose key, type, author or content contain `text`: the keys of
  // this node and, with a DHT, of every writer's index record (the whole
  // cluster), each at its shared latest version.
  Result<std::vector<ContextVersion>> Search(const std::string& text, std::size_t limit,
                                             const Reader& reader = Reader::Everyone(), const std::string& after = "");
  // The same keys that `pattern` matches (wildcards) and `reader` may read,
  // at their latest version, by key after `after`.
  Result<std::vector<ContextVersion>> Discover(const Address& pattern, std::size_t limit,
                                               const Reader& reader = Reader::Everyone(),
                                               const std::string& after = "");
  // Publishes this node's index record ("ucxl/index": every live key it
  // wrote, with the roles that may read it) when a write changed it since
  // the last publication. Called periodically (UcxiServices); false when
  // there was nothing to publish.
  Result<bool> PublishIndexIfChanged();
  static constexpr std::string_view kIndexRecord = "ucxl/index";
  // Re-wraps one version this node wrote (the re-wrap job): stores and
  // republishes its re-sealed bytes. False when it was already current.
  Result<bool> Rewrap(const ContextVersion& version, const std::string& stored);
  ContentCodec* codec() const { return codec_.get(); }
  ContextRepository& repository() const { return *store_; }
  // Announces this node as a provider of the content at `address`.
  Status Announce(const Address& address);
  // Node ids providing the content at `address` in the DHT.
  Result<std::vector<std::string>> Providers(const Address& address);

  static std::string HistoryRecordName(const std::string& key);
  static std::string VersionRecordName(const std::string& key, const std::string& writer,
                                       std::uint64_t writer_number);
  // The node id this store writes as ("local" without a record store).
  const std::string& writer_id() const { return writer_id_; }

 private:
  // Local versions merged with every writer's history record, numbered in
  // the shared order.
  Result<std::vector<ContextVersion>> SharedHistory(const std::string& key);
  Result<Entry> Load(const Address& address, const ContextVersion& version, const Reader& reader);
  // Publishes a version this node appended and the shared history with it
  // (`known`, read before the append, plus the version); returns that history.
  Result<std::vector<ContextVersion>> Publish(const std::string& key, const ContextVersion& version,
                                              const std::string& stored, std::vector<ContextVersion> known);
  // The history before a write: shared when it can be read, else local.
  std::vector<ContextVersion> HistoryBeforeWrite(const std::string& key);
  // A key known to search and discover, with who may read it.
  struct Candidate {
    ContextVersion version;                         // the local latest (for this node's keys)
    std::optional<std::vector<std::string>> readers;  // nullopt: anyone
    bool local = false;
  };
  // This node's live keys with their readers.
  Result<std::vector<Candidate>> LocalCandidates();
  // Local and indexed keys, by key after `after`, that `key_filter` keeps
  // and `reader` may read, at their shared latest live version, kept when
  // `text` is empty or found in the metadata or the content as read.
  Result<std::vector<ContextVersion>> Find(std::size_t limit, const Reader& reader, const std::string& after,
                                           const std::function<bool(const std::string& key)>& key_filter,
                                           const std::string& text);
  // Serializes merge-and-publish per key (striped), so that this node's
  // newest history record always includes all of its versions.
  std::mutex& PublishLock(const std::string& key);
  // A version of `key` by `author`, stamped by the hybrid logical clock
  // after every version in `history`; the caller fills the rest.
  ContextVersion NewVersion(const std::string& key, const Author& author,
                            const std::vector<ContextVersion>& history) const;

  std::shared_ptr<ContextRepository> store_;
  dht::RecordStore* records_;
  ContextStoreOptions options_;
  std::shared_ptr<ContentCodec> codec_;
  const Clock& clock_;
  std::string writer_id_;
  std::array<std::mutex, 32> publish_locks_;
  std::atomic<std::uint64_t> writes_{1};           // bumped by every put and delete
  std::atomic<std::uint64_t> indexed_writes_{0};   // the count the last index record covers
};

}  // namespace bzzz::ucxl
