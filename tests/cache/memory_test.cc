#include "cache/memory.h"

#include <gtest/gtest.h>

#include <string>

namespace bzzz::cache {
namespace {

TEST(MemoryLayer, ReturnsWhatWasPutUntilItExpires) {
  MemoryLayer m(10, 1 << 20);
  ASSERT_TRUE(m.Put("a", "one", 1000));
  EXPECT_EQ(m.Get("a", 999).value_or(""), "one");
  EXPECT_FALSE(m.Get("a", 1000).has_value());  // expired at its deadline
  EXPECT_EQ(m.entries(), 0u);                  // and dropped when met
  EXPECT_EQ(m.bytes(), 0u);
  EXPECT_FALSE(m.Get("missing", 0).has_value());
}

TEST(MemoryLayer, ReplacingAKeyKeepsOneEntryAndTheNewValue) {
  MemoryLayer m(10, 1 << 20);
  ASSERT_TRUE(m.Put("a", "one", 1000));
  ASSERT_TRUE(m.Put("a", "two!", 1000));
  EXPECT_EQ(m.entries(), 1u);
  EXPECT_EQ(m.bytes(), 1 + 4 + MemoryLayer::kEntryOverhead);
  EXPECT_EQ(m.Get("a", 0).value_or(""), "two!");
}

TEST(MemoryLayer, EvictsTheLeastRecentlyUsedPastTheEntryLimit) {
  MemoryLayer m(3, 1 << 20);
  for (const char* k : {"a", "b", "c"}) ASSERT_TRUE(m.Put(k, "v", 1000));
  ASSERT_TRUE(m.Get("a", 0).has_value());  // a is now the most recently used
  ASSERT_TRUE(m.Put("d", "v", 1000));      // evicts b
  EXPECT_TRUE(m.Get("a", 0).has_value());
  EXPECT_FALSE(m.Get("b", 0).has_value());
  EXPECT_TRUE(m.Get("c", 0).has_value());
  EXPECT_TRUE(m.Get("d", 0).has_value());
  EXPECT_EQ(m.entries(), 3u);
  EXPECT_EQ(m.evictions(), 1u);
}

TEST(MemoryLayer, StaysWithinItsByteLimit) {
  const std::size_t limit = 8 * (100 + MemoryLayer::kEntryOverhead + 3);  // keys "k0".."k49"
  MemoryLayer m(1000, limit);
  const std::string value(100, 'x');
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(m.Put("k" + std::to_string(i % 100), value, 1000));
    EXPECT_LE(m.bytes(), limit);
  }
  EXPECT_GT(m.evictions(), 0u);
  EXPECT_TRUE(m.Get("k49", 0).has_value());  // the newest stays
}

TEST(MemoryLayer, RefusesAValueLargerThanAnEighthAndDropsTheOldOne) {
  MemoryLayer m(10, 8000);
  ASSERT_TRUE(m.Put("a", "small", 1000));
  EXPECT_FALSE(m.Put("a", std::string(2000, 'x'), 1000));
  EXPECT_FALSE(m.Get("a", 0).has_value());  // never the stale value
  EXPECT_EQ(m.bytes(), 0u);
}

TEST(MemoryLayer, ErasesOneKeyOrEveryKeyWithAPrefix) {
  MemoryLayer m(10, 1 << 20);
  for (const char* k : {"dht:a", "dht:b", "task:a"}) ASSERT_TRUE(m.Put(k, "v", 1000));
  EXPECT_TRUE(m.Erase("task:a"));
  EXPECT_FALSE(m.Erase("task:a"));
  EXPECT_EQ(m.ErasePrefix("dht:"), 2u);
  EXPECT_EQ(m.entries(), 0u);
  EXPECT_EQ(m.bytes(), 0u);
}

}  // namespace
}  // namespace bzzz::cache
