#include "base/backoff.h"

#include <gtest/gtest.h>

namespace bzzz {
namespace {

using namespace std::chrono_literals;

TEST(BackoffTest, DoublesCapsAndJittersIntoTheUpperHalf) {
  EXPECT_EQ(BackoffMs(1, 100, 5000, 0.0), 50);
  EXPECT_EQ(BackoffMs(1, 100, 5000, 1.0), 100);
  EXPECT_EQ(BackoffMs(3, 100, 5000, 0.0), 200);
  EXPECT_EQ(BackoffMs(100, 100, 5000, 1.0), 5000);
  EXPECT_EQ(BackoffMs(0, 100, 5000, 1.0), 100) << "at least one failure";
  Backoff b(50ms, 2000ms);
  for (int i = 1; i <= 10; ++i) {
    const auto d = b.Next();
    const auto step = std::min<std::int64_t>(2000, 50LL << (i - 1));
    EXPECT_GE(d.count(), step / 2) << i;
    EXPECT_LE(d.count(), step) << i;
  }
  EXPECT_EQ(b.failures(), 10);
  b.Reset();
  EXPECT_LE(b.Next().count(), 50);
  for (int i = 0; i < 1000; ++i) {
    const double u = UniformJitter();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
}

}  // namespace
}  // namespace bzzz
