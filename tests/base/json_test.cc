// Parsing untrusted JSON within limits: depth and element counts are
// measured without recursion, brackets inside strings do not count, and
// what exceeds a limit is refused before nlohmann sees it.
#include "base/json.h"
#include "base/utf8.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bzzz {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonLimits, DepthIsMeasuredAndRefused) {
  const JsonLimits limits{8, 1000};
  EXPECT_EQ(JsonShapeProblem(Nested(8), limits), "");
  EXPECT_NE(JsonShapeProblem(Nested(9), limits).find("deeper than 8"), std::string::npos);
  EXPECT_EQ(JsonShapeProblem(R"({"a":{"b":[1,2,{"c":[]}]}})", limits), "");
  // Brackets in strings and escaped quotes are not structure.
  EXPECT_EQ(JsonShapeProblem(R"(["[[[[[[[[[[[[[[[[", "\"[[[[[[[[[[[[["])", limits), "");
}

TEST(JsonLimits, ElementsAreCountedAndRefused) {
  const JsonLimits limits{64, 10};
  EXPECT_EQ(JsonShapeProblem("[1,2,3,4,5,6,7,8,9]", limits), "");
  EXPECT_NE(JsonShapeProblem("[1,2,3,4,5,6,7,8,9,10,11,12]", limits).find("more than 10"), std::string::npos);
  EXPECT_EQ(JsonShapeProblem(R"(["a,b,c,d,e,f,g,h,i,j,k,l,m"])", limits), "");
}

TEST(JsonLimits, ParseJsonRefusesWhatExceedsTheCurrentLimits) {
  const JsonLimits before = CurrentJsonLimits();
  EXPECT_EQ(before.max_depth, 64);
  // The body that crashed a node: 70,000 nested arrays (140 KB).
  std::string why;
  const nlohmann::json deep = ParseJson(Nested(70000), &why);
  EXPECT_TRUE(deep.is_discarded());
  EXPECT_NE(why.find("deeper than 64"), std::string::npos) << why;
  const nlohmann::json ok = ParseJson(Nested(64), &why);
  EXPECT_FALSE(ok.is_discarded());
  EXPECT_EQ(why, "");
  EXPECT_TRUE(ParseJson("{not json", &why).is_discarded());
  EXPECT_EQ(why, "malformed JSON");

  SetJsonLimits({4, 100});
  EXPECT_TRUE(ParseJson(Nested(5)).is_discarded());
  EXPECT_FALSE(ParseJson(Nested(4)).is_discarded());
  SetJsonLimits(before);
  EXPECT_FALSE(ParseJson(Nested(5)).is_discarded());
}

struct Inner {
  std::string name;
  std::vector<int> ids;
};
BZZZ_JSON_STRICT(Inner, name, ids)

struct Outer {
  int count = 0;
  std::uint16_t port = 0;
  bool on = false;
  double ratio = 0;
  std::vector<std::string> tags;
  Inner inner;
};
BZZZ_JSON_STRICT(Outer, count, port, on, ratio, tags, inner)

TEST(JsonStrictTest, RoundTripsAndRefusesWhatNlohmannsMacrosWouldConvert) {
  const Outer o{7, 8080, true, 0.25, {"a", "b"}, {"x", {1, 2}}};
  const nlohmann::json j = o;
  EXPECT_EQ(j.dump(),
            R"({"count":7,"inner":{"ids":[1,2],"name":"x"},"on":true,"port":8080,"ratio":0.25,"tags":["a","b"]})");
  const Outer back = j.get<Outer>();
  EXPECT_EQ(nlohmann::json(back), j);

  auto refused = [&](const char* field, nlohmann::json value) {
    nlohmann::json bad = j;
    if (value.is_discarded()) {
      bad.erase(field);
    } else {
      bad[field] = value;
    }
    try {
      (void)bad.get<Outer>();
    } catch (const nlohmann::json::exception& e) {
      return std::string(e.what()).find(field) != std::string::npos;  // the message names the field
    }
    return false;
  };
  EXPECT_TRUE(refused("count", 1.9));                   // nlohmann's macros: 1
  EXPECT_TRUE(refused("count", true));                  // nlohmann's macros: 1
  EXPECT_TRUE(refused("count", 4294967297LL));          // nlohmann's macros: 1
  EXPECT_TRUE(refused("port", 70000));                  // out of range for uint16
  EXPECT_TRUE(refused("port", -1));
  EXPECT_TRUE(refused("on", 1));
  EXPECT_TRUE(refused("ratio", "0.5"));
  EXPECT_TRUE(refused("tags", nlohmann::json::array({"a", 1})));
  EXPECT_TRUE(refused("tags", "a"));
  EXPECT_TRUE(refused("inner", nlohmann::json{{"name", "x"}, {"ids", {1, 2.5}}}));
  EXPECT_TRUE(refused("count", nlohmann::json(nlohmann::json::value_t::discarded)));  // missing
}

}  // namespace
}  // namespace bzzz

namespace bzzz {
namespace {

TEST(Utf8Test, WellFormedSequencesOnly) {
  EXPECT_TRUE(ValidUtf8("plain ascii"));
  EXPECT_TRUE(ValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e"));  // é € 𝄞
  EXPECT_FALSE(ValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(ValidUtf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(ValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(ValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(ValidUtf8("\x80"));              // a stray continuation byte
  EXPECT_EQ(Utf8SequenceAt("a\xe2\x82\xac", 1), 3u);
  EXPECT_EQ(Utf8SequenceAt("a\xe2\x82\xac", 2), 0u);
}

// What AppendJsonString writes parses back to the same text (control
// characters, quotes, non-ASCII), and bytes that are not UTF-8 become
// U+FFFD as in DumpJson, so the result is always valid JSON.
TEST(JsonWriterTest, AppendJsonStringRoundTripsAndReplacesBadBytes) {
  for (std::string s : {std::string("plain"), std::string("q\"b\\s/\n\t\r\b\f\x01\x1f\x7f"),
                        std::string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e"), std::string()}) {
    std::string out;
    AppendJsonString(out, s);
    const nlohmann::json j = ParseJson(out);
    ASSERT_TRUE(j.is_string()) << out;
    EXPECT_EQ(j.get<std::string>(), s);
    EXPECT_EQ(j.get<std::string>(), ParseJson(DumpJson(nlohmann::json(s))).get<std::string>());
  }
  std::string out;
  AppendJsonString(out, "a\xff" "b\xed\xa0\x80" "c");
  const nlohmann::json j = ParseJson(out);
  ASSERT_TRUE(j.is_string()) << out;
  EXPECT_EQ(j.get<std::string>(), "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "c");
}

}  // namespace
}  // namespace bzzz
