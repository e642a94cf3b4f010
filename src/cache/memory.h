// MemoryLayer: the cache's in-process layer, an LRU of string values with
// a TTL each, bounded by an entry count and a byte count (key + value +
// a fixed overhead per entry). An expired entry is dropped when a Get
// meets it or when it reaches the LRU end. Thread-safe (one mutex; values are copied out).
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace bzzz::cache {

class MemoryLayer {
 public:
  MemoryLayer(std::size_t max_entries, std::size_t max_bytes) : max_entries_(max_entries), max_bytes_(max_bytes) {}

  // `now_ms` is any monotonic clock in milliseconds, the same for every call.
  std::optional<std::string> Get(const std::string& key, std::int64_t now_ms);
  // False when the entry alone is larger than an eighth of max_bytes (then
  // any older value under `key` is removed, so a reader never sees it).
  bool Put(const std::string& key, std::string_view value, std::int64_t expires_ms);
  bool Erase(const std::string& key);
  std::size_t ErasePrefix(std::string_view prefix);

  std::size_t entries() const;
  std::size_t bytes() const;
  std::uint64_t evictions() const;

  static constexpr std::size_t kEntryOverhead = 64;

 private:
  struct Entry {
    std::string key;
    std::string value;
    std::int64_t expires_ms = 0;
    std::size_t Bytes() const { return key.size() + value.size() + kEntryOverhead; }
  };
  using List = std::list<Entry>;
  void RemoveLocked(List::iterator it);
  void MakeRoomLocked(std::size_t incoming);  // evicts from the LRU end

  const std::size_t max_entries_;
  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  List lru_;  // most recently used first
  std::unordered_map<std::string_view, List::iterator> index_;  // views into the entries' keys
  std::size_t bytes_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace bzzz::cache
