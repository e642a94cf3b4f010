// Private to the record store: the bytes it trusts least. A record as
// the DHT holds it (a signed frame, "meta" JSON and either the content
// inline or the keys of its chunks) is checked before use, whoever wrote
// it; the files of held records and of the cache are read back the same
// careful way, since a disk can hand back anything.
//
// File layout (held and cache): magic "BZH1" or "BZC1", expires_ms (u64),
// count (u32), then count times (len u32, bytes); native byte order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "dht/record_store.h"
#include "p2p/wire.h"

namespace bzzz::dht::internal {

inline constexpr char kHeldMagic[4] = {'B', 'Z', 'H', '1'};
inline constexpr char kCacheMagic[4] = {'B', 'Z', 'C', '1'};

// The blob file format in memory: magic, expiry, count, then each blob
// with its length. DecodeBlobs is false for a short, oversized or foreign
// buffer (it is also how a cache value from Redis is read: never trusted).
std::string EncodeBlobs(const char magic[4], std::int64_t expires_ms, const std::vector<p2p::Bytes>& blobs);
bool DecodeBlobs(std::string_view data, const char magic[4], std::int64_t* expires_ms, std::vector<p2p::Bytes>* blobs);

// Held records are durable (they are what this node provides); cache
// entries need not be (no fsync).
bool WriteBlobs(const std::filesystem::path& path, const char magic[4], std::int64_t expires_ms,
                const std::vector<p2p::Bytes>& blobs, bool durable);
// False for a missing, short, oversized or foreign file.
bool ReadBlobs(const std::filesystem::path& path, const char magic[4], std::int64_t* expires_ms,
               std::vector<p2p::Bytes>* blobs);

// The values of one record: its signed frame and its chunks, verified.
struct RawRecord {
  std::vector<p2p::Bytes> blobs;  // [frame, chunk...]
  Record record;
};

// Checks a record frame and its chunks for `name`; fills `out`. "" when
// valid, else why not.
std::string Assemble(std::string_view name, std::vector<p2p::Bytes> blobs, RawRecord* out);

// "" for a usable record name, else why not.
std::string ValidateName(std::string_view name);

}  // namespace bzzz::dht::internal
