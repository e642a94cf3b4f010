#include "base/hex.h"

#include <gtest/gtest.h>

namespace bzzz {
namespace {

TEST(HexTest, EncodesAndChecks) {
  const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  EXPECT_EQ(HexOf(bytes, sizeof bytes), "000fa5ff");
  EXPECT_EQ(HexOf(std::string_view("AB")), "4142");
  EXPECT_EQ(HexOf(nullptr, 0), "");
  EXPECT_TRUE(IsLowerHex("000fa5ff"));
  EXPECT_TRUE(IsLowerHex("000fa5ff", 8));
  EXPECT_FALSE(IsLowerHex("000fa5ff", 7));
  EXPECT_FALSE(IsLowerHex("000FA5FF"));
  EXPECT_FALSE(IsLowerHex("0g"));
  EXPECT_TRUE(IsLowerHex(""));
  EXPECT_FALSE(IsLowerHex("", 2));
}

}  // namespace
}  // namespace bzzz
