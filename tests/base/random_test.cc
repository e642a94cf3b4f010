// Random ids (base/random.h) and the invariant check (base/invariant.h).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "base/errc.h"
#include "base/hex.h"
#include "base/invariant.h"
#include "base/random.h"

namespace bzzz {
namespace {

TEST(RandomTest, HexIdsHaveTheirLengthAndDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = RandomHex(8);
    EXPECT_TRUE(IsLowerHex(id, 16)) << id;
    EXPECT_TRUE(seen.insert(id).second) << "repeated: " << id;
  }
  EXPECT_TRUE(IsLowerHex(RandomHex(32), 64));
  EXPECT_NE(RandomNonZeroU64(), 0u);
}

TEST(RandomTest, UuidIsVersion4WithTheRfcVariant) {
  for (int i = 0; i < 100; ++i) {
    const std::string u = RandomUuid();
    ASSERT_EQ(u.size(), 36u) << u;
    EXPECT_EQ(u[8], '-');
    EXPECT_EQ(u[13], '-');
    EXPECT_EQ(u[18], '-');
    EXPECT_EQ(u[23], '-');
    EXPECT_EQ(u[14], '4') << u;
    EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos) << u;
    std::string digits = u;
    std::erase(digits, '-');
    EXPECT_TRUE(IsLowerHex(digits, 32)) << u;
  }
}

TEST(InvariantDeathTest, AViolationStopsTheProcessNamingIt) {
  EXPECT_DEATH(BZZZ_INVARIANT(1 + 1 == 3, "arithmetic is broken"),
               "invariant violated at .*random_test.cc:[0-9]+: arithmetic is broken \\(1 \\+ 1 == 3\\)");
  BZZZ_INVARIANT(1 + 1 == 2, "never printed");  // holds: nothing happens
}

// A subsystem's reasons: generic code and HTTP status from its category.
enum class TestErrc { kGone = 1 };
class TestCategory final : public ErrorCategory {
 public:
  const char* name() const noexcept override { return "test"; }
  std::string message(int) const override { return "gone"; }
  StatusCode Generic(int) const override { return StatusCode::kNotFound; }
  int HttpStatus(int) const override { return 410; }
};
const TestCategory kTestCategory;
std::error_code make_error_code(TestErrc e) { return {static_cast<int>(e), kTestCategory}; }

}  // namespace
}  // namespace bzzz

template <>
struct std::is_error_code_enum<bzzz::TestErrc> : std::true_type {};

namespace bzzz {
namespace {

TEST(ErrcTest, AReasonCarriesItsGenericCodeAndCategory) {
  const Status s = Error(TestErrc::kGone, "the thing is gone");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "the thing is gone");
  EXPECT_EQ(s.reason(), TestErrc::kGone);
  ASSERT_NE(CategoryOf(s), nullptr);
  EXPECT_EQ(CategoryOf(s)->HttpStatus(s.reason().value()), 410);
  EXPECT_EQ(CategoryOf(NotFound("plain")), nullptr);
}

}  // namespace
}  // namespace bzzz
