// UCXL addresses: a table of valid and invalid forms covering every rule of
// the grammar, the canonical round trip (also as a randomized property),
// temporal resolution and wildcard matching.
#include "ucxl/address.h"

#include <gtest/gtest.h>

#include <random>

namespace bzzz::ucxl {
namespace {

struct Valid {
  const char* input;
  const char* canonical;  // nullptr: the input is canonical
};

TEST(UcxlAddress, ValidFormsParseAndFormatCanonically) {
  const Valid cases[] = {
      {"ucxl://agent1:developer@bzzz:task-42/*^/src/main.cc", nullptr},
      {"ucxl://a:r@p:t/*^", nullptr},
      {"ucxl://a:r@p:t/*^/", "ucxl://a:r@p:t/*^"},
      {"ucxl://a:r@p:t/*~", nullptr},
      {"ucxl://a:r@p:t/*~1/x", nullptr},
      {"ucxl://a:r@p:t/*~007/x", "ucxl://a:r@p:t/*~7/x"},
      {"ucxl://a:r@p:t/~~/x", "ucxl://a:r@p:t/~~1/x"},
      {"ucxl://a:r@p:t/~~0/x", nullptr},
      {"ucxl://a:r@p:t/~~12/x", nullptr},
      {"ucxl://a:r@p:t/^^/x", "ucxl://a:r@p:t/^^1/x"},
      {"ucxl://a:r@p:t/^^3/x", nullptr},
      {"ucxl://a:r@p:t/2026-11-23T10:00:00Z/x", nullptr},
      {"ucxl://a:r@p:t/2024-02-29T23:59:59.5Z/x", nullptr},
      {"ucxl://a:r@p:t/2024-02-29T23:59:59.500000000Z/x", "ucxl://a:r@p:t/2024-02-29T23:59:59.5Z/x"},
      {"ucxl://a:r@p:t/1970-01-01T00:00:00Z", nullptr},
      {"ucxl://any:any@any:any/*^", nullptr},
      {"ucxl://*:*@*:*/*^", "ucxl://any:any@any:any/*^"},
      {"ucxl://a:*@p:any/*^/docs", "ucxl://a:any@p:any/*^/docs"},
      {"ucxl://A_b-9:R@P_1:T-2/*^/a/b.c/./d_e-f", nullptr},
      {"ucxl://a:r@p:t/*^/x?role=dev&n=1", nullptr},
      {"ucxl://a:r@p:t/*^/x?q=a%20b#section-2", nullptr},
      {"ucxl://a:r@p:t/*^?only=query", nullptr},
      {"ucxl://a:r@p:t/*^#frag", nullptr},
      {"ucxl://a:r@p:t/*^/x?#", nullptr},
      {"ucxl://a:r@p:t/*^/a..b/...", nullptr},
      {"ucxl://a:r@p:t/*^/trailing/", nullptr},
  };
  for (const auto& c : cases) {
    AddressError error;
    auto a = Parse(c.input, &error);
    ASSERT_TRUE(a.ok()) << c.input << ": " << a.status().message();
    const std::string want = c.canonical ? c.canonical : c.input;
    EXPECT_EQ(Format(*a), want) << c.input;
    auto again = Parse(Format(*a));
    ASSERT_TRUE(again.ok()) << Format(*a);
    EXPECT_EQ(*again, *a) << c.input;
  }
}

TEST(UcxlAddress, InvalidFormsNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "scheme"},
      {"http://a:r@p:t/*^/x", "scheme"},
      {"UCXL://a:r@p:t/*^/x", "scheme"},
      {"ucxl:/a:r@p:t/*^/x", "scheme"},
      {"ucxl://a:r@p:t", "temporal"},
      {"ucxl://a:rp:t/*^/x", "address"},
      {"ucxl://ar@p:t/*^/x", "role"},
      {"ucxl://a:r@pt/*^/x", "task"},
      {"ucxl://:r@p:t/*^/x", "agent"},
      {"ucxl://a:@p:t/*^/x", "role"},
      {"ucxl://a:r@:t/*^/x", "project"},
      {"ucxl://a:r@p:/*^/x", "task"},
      {"ucxl://a b:r@p:t/*^/x", "agent"},
      {"ucxl://a:r.x@p:t/*^/x", "role"},
      {"ucxl://a:r@p:t:u/*^/x", "task"},
      {"ucxl://a:r@p@q:t/*^/x", "project"},
      {"ucxl://a:r@p:t//x", "temporal"},
      {"ucxl://a:r@p:t/latest/x", "temporal"},
      {"ucxl://a:r@p:t/*/x", "temporal"},
      {"ucxl://a:r@p:t/^*/x", "temporal"},
      {"ucxl://a:r@p:t/*~0/x", "temporal"},
      {"ucxl://a:r@p:t/*~x/x", "temporal"},
      {"ucxl://a:r@p:t/~~-1/x", "temporal"},
      {"ucxl://a:r@p:t/^^1.5/x", "temporal"},
      {"ucxl://a:r@p:t/*~1234567890123456789/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23T10:00:00/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23T10:00:00+01:00/x", "temporal"},
      {"ucxl://a:r@p:t/2026-13-01T00:00:00Z/x", "temporal"},
      {"ucxl://a:r@p:t/2025-02-29T00:00:00Z/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23T24:00:00Z/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23T10:60:00Z/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23T10:00:00.Z/x", "temporal"},
      {"ucxl://a:r@p:t/2026-11-23T10:00:00.1234567890Z/x", "temporal"},
      {"ucxl://a:r@p:t/0000-01-01T00:00:00Z/x", "temporal"},
      {"ucxl://a:r@p:t/*^/../etc/passwd", "path"},
      {"ucxl://a:r@p:t/*^/a/../b", "path"},
      {"ucxl://a:r@p:t/*^/a/..", "path"},
      {"ucxl://a:r@p:t/*^//abs", "path"},
      {"ucxl://a:r@p:t/*^/sp ace", "path"},
      {"ucxl://a:r@p:t/*^/a\\b", "path"},
      {"ucxl://a:r@p:t/*^/x?a b", "query"},
      {"ucxl://a:r@p:t/*^/x?%zz", "query"},
      {"ucxl://a:r@p:t/*^/x?%4", "query"},
      {"ucxl://a:r@p:t/*^/x#a#b", "fragment"},
      {"ucxl://a:r@p:t/*^/x#<script>", "fragment"},
  };
  for (const auto& [input, field] : cases) {
    AddressError error;
    auto a = Parse(input, &error);
    ASSERT_FALSE(a.ok()) << input << " parsed as " << Format(*a);
    EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(error.field, field) << input << ": " << error.ToString();
    EXPECT_NE(a.status().message().find(field), std::string::npos) << a.status().message();
  }
  EXPECT_FALSE(Parse("ucxl://" + std::string(kMaxNameBytes + 1, 'a') + ":r@p:t/*^").ok());
  EXPECT_FALSE(Parse("ucxl://a:r@p:t/*^/" + std::string(kMaxAddressBytes, 'x')).ok());
  EXPECT_FALSE(Parse(std::string("ucxl://a:r@p:t/*^/x\0y", 22)).ok());
}

// Property: any address built from the grammar's alphabet formats to a
// string that parses back to the same address, whose format is the same
// string.
TEST(UcxlAddress, RandomAddressesRoundTrip) {
  std::mt19937_64 rng(20261123);
  auto pick = [&](const std::string& alphabet, int min, int max) {
    const int n = std::uniform_int_distribution<int>(min, max)(rng);
    std::string s;
    for (int i = 0; i < n; ++i)
      s += alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
    return s;
  };
  const std::string name = "abcXYZ019_-";
  auto maybe_any = [&](std::string s) { return rng() % 5 == 0 ? std::string(kAny) : s; };
  for (int i = 0; i < 20000; ++i) {
    Address a;
    a.agent = maybe_any(pick(name, 1, 12));
    a.role = maybe_any(pick(name, 1, 12));
    a.project = maybe_any(pick(name, 1, 12));
    a.task = maybe_any(pick(name, 1, 12));
    switch (rng() % 6) {
      case 0:
        a.temporal = {TemporalKind::kLatest};
        break;
      case 1:
        a.temporal = {TemporalKind::kFirst};
        break;
      case 2:
        a.temporal = {TemporalKind::kVersion, 1 + rng() % 100000};
        break;
      case 3:
        a.temporal = {TemporalKind::kBack, rng() % 1000};
        break;
      case 4:
        a.temporal = {TemporalKind::kForward, rng() % 1000};
        break;
      default:
        a.temporal.kind = TemporalKind::kInstant;
        a.temporal.seconds = static_cast<std::int64_t>(rng() % 253402300799ull);  // up to 9999-12-31
        a.temporal.nanos = rng() % 2 ? 0 : static_cast<std::uint32_t>(rng() % 1000000000);
    }
    std::vector<std::string> segments;
    for (int s = static_cast<int>(rng() % 4); s > 0; --s) {
      std::string seg = pick(name + ".", 1, 8);
      if (seg == "..") seg = "x";
      segments.push_back(seg);
    }
    for (std::size_t s = 0; s < segments.size(); ++s) a.path += (s ? "/" : "") + segments[s];
    if (rng() % 3 == 0) a.query = pick(name + "=&%2F:@/?", 0, 10);
    if (rng() % 4 == 0) a.fragment = pick(name + ".~", 0, 6);
    if (a.query && a.query->find('%') != std::string::npos) a.query = "x=%41";  // only well-formed escapes
    const std::string text = Format(a);
    auto back = Parse(text);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status().message();
    ASSERT_EQ(*back, a) << text;
    ASSERT_EQ(Format(*back), text);
  }
}

TEST(UcxlAddress, InstantsAreUtcSeconds) {
  auto a = Parse("ucxl://a:r@p:t/2026-11-23T10:00:00.25Z");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->temporal.kind, TemporalKind::kInstant);
  EXPECT_EQ(a->temporal.seconds, 1795428000);
  EXPECT_EQ(a->temporal.nanos, 250000000u);
  EXPECT_EQ(Parse("ucxl://a:r@p:t/1970-01-01T00:00:00Z")->temporal.seconds, 0);
}

TEST(UcxlAddress, TemporalResolution) {
  const std::vector<VersionRef> h = {{1, 1000}, {2, 2000}, {3, 3000}, {4, 4000}};
  auto at = [&](const char* temporal) {
    auto a = Parse(std::string("ucxl://a:r@p:t/") + temporal + "/x");
    EXPECT_TRUE(a.ok()) << temporal;
    return Resolve(a->temporal, h);
  };
  EXPECT_EQ(*at("*^"), 3u);
  EXPECT_EQ(*at("*~"), 0u);
  EXPECT_EQ(*at("*~2"), 1u);
  EXPECT_EQ(*at("~~"), 2u);
  EXPECT_EQ(*at("~~0"), 3u);
  EXPECT_EQ(*at("~~3"), 0u);
  EXPECT_EQ(*at("^^"), 1u);
  EXPECT_EQ(*at("^^3"), 3u);
  EXPECT_EQ(*at("1970-01-01T00:00:02.5Z"), 1u);  // the version current then
  EXPECT_EQ(*at("1970-01-01T00:00:03Z"), 2u);
  EXPECT_EQ(*at("2100-01-01T00:00:00Z"), 3u);
  for (const char* out : {"*~5", "~~4", "^^4", "1970-01-01T00:00:00.5Z"}) {
    auto r = at(out);
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << out;
    EXPECT_NE(r.status().message().find("temporal out of range"), std::string::npos);
  }
  EXPECT_TRUE(Resolve(Temporal{}, {}).status().IsNotFound());
}

TEST(UcxlAddress, WildcardsMatch) {
  auto p = [](const char* s) { return *Parse(s); };
  const Address a = p("ucxl://agent1:dev@bzzz:t1/*^/src/main.cc");
  EXPECT_TRUE(Matches(p("ucxl://any:any@any:any/*^"), a));
  EXPECT_TRUE(Matches(p("ucxl://agent1:*@bzzz:*/*^/src"), a));
  EXPECT_TRUE(Matches(p("ucxl://agent1:dev@bzzz:t1/~~3/src/main.cc"), a));
  EXPECT_FALSE(Matches(p("ucxl://agent2:any@any:any/*^"), a));
  EXPECT_FALSE(Matches(p("ucxl://any:any@other:any/*^"), a));
  EXPECT_FALSE(Matches(p("ucxl://any:any@any:any/*^/sr"), a));  // segments, not string prefixes
  EXPECT_FALSE(Matches(p("ucxl://any:any@any:any/*^/src/main.cc/x"), a));
  EXPECT_TRUE(p("ucxl://a:any@p:t/*^").HasWildcard());
  EXPECT_FALSE(a.HasWildcard());
  EXPECT_EQ(ContentKey(p("ucxl://a:r@p:t/~~2/x/y?q#f")), "ucxl://a:r@p:t/x/y");
}

TEST(ContentKeyTest, AddressOfContentKeyIsItsInverse) {
  for (const char* text : {"ucxl://a:r@p:t/*^/x/y.md", "ucxl://a:r@p:t/*^", "ucxl://alice:dev@bzzz:t-1/*~3/a//b/"}) {
    auto a = Parse(text);
    ASSERT_TRUE(a.ok()) << text;
    auto back = AddressOfContentKey(ContentKey(*a));
    ASSERT_TRUE(back.ok()) << ContentKey(*a);
    EXPECT_EQ(ContentKey(*back), ContentKey(*a));
    EXPECT_EQ(back->temporal.kind, TemporalKind::kLatest);
  }
  EXPECT_FALSE(AddressOfContentKey("http://a:r@p:t/x").ok());
  EXPECT_FALSE(AddressOfContentKey("ucxl://a:r@p:t").ok());
  EXPECT_FALSE(AddressOfContentKey("ucxl://a:r@p:t/../x").ok());
}

}  // namespace
}  // namespace bzzz::ucxl
