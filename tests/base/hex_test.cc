// hex.h and base64.h: the encoders.
#include "base/hex.h"

#include <gtest/gtest.h>

#include "base/base64.h"

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

TEST(Base64Test, UrlSafeWithoutPaddingAndOriginalRoundTripStrictly) {
  const std::string bytes("\xfb\xff\x00\x01hello", 9);
  EXPECT_EQ(Base64Url(bytes), "-_8AAWhlbGxv");
  EXPECT_EQ(*FromBase64Url("-_8AAWhlbGxv"), bytes);
  EXPECT_EQ(Base64(bytes), "+/8AAWhlbGxv");
  EXPECT_EQ(Base64("ab"), "YWI=");
  EXPECT_EQ(*FromBase64("YWI="), "ab");
  EXPECT_FALSE(FromBase64Url("YWI=").ok());    // padding is not URL-safe-without-padding
  EXPECT_FALSE(FromBase64Url("+/8A").ok());    // the original alphabet
  EXPECT_FALSE(FromBase64Url("YWJj!").ok());   // a stray character
  EXPECT_FALSE(FromBase64("YWI").ok());        // missing padding
  EXPECT_EQ(*FromBase64Url(""), "");
}

}  // namespace
}  // namespace bzzz
