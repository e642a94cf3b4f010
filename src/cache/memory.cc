#include "cache/memory.h"

namespace bzzz::cache {

std::optional<std::string> MemoryLayer::Get(const std::string& key, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  if (it->second->expires_ms <= now_ms) {
    RemoveLocked(it->second);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

bool MemoryLayer::Put(const std::string& key, std::string_view value, std::int64_t expires_ms) {
  const std::size_t size = key.size() + value.size() + kEntryOverhead;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) RemoveLocked(it->second);
  if (size > max_bytes_ / 8 || max_entries_ == 0) return false;
  MakeRoomLocked(size);
  lru_.push_front(Entry{key, std::string(value), expires_ms});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += size;
  return true;
}

bool MemoryLayer::Erase(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  RemoveLocked(it->second);
  return true;
}

std::size_t MemoryLayer::ErasePrefix(std::string_view prefix) {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (std::string_view(it->key).starts_with(prefix)) {
      RemoveLocked(it);
      ++n;
    }
    it = next;
  }
  return n;
}

std::size_t MemoryLayer::entries() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

std::size_t MemoryLayer::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

std::uint64_t MemoryLayer::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

void MemoryLayer::RemoveLocked(List::iterator it) {
  bytes_ -= it->Bytes();
  index_.erase(std::string_view(it->key));
  lru_.erase(it);
}

void MemoryLayer::MakeRoomLocked(std::size_t incoming) {
  while (!lru_.empty() && (lru_.size() + 1 > max_entries_ || bytes_ + incoming > max_bytes_)) {
    RemoveLocked(std::prev(lru_.end()));
    ++evictions_;
  }
}

}  // namespace bzzz::cache
