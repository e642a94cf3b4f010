// Token buckets per key and class (security/rate_limit.h) on a test clock,
// and the client address behind trusted proxies.
#include "security/rate_limit.h"

#include <gtest/gtest.h>

namespace bzzz::security {
namespace {

TEST(RateLimiterTest, BurstThenRateAndEachKeyAndClassApart) {
  double now = 1000;
  RateLimitOptions o;
  o.read_rate = 10;
  o.read_burst = 5;
  o.write_rate = 1;
  o.write_burst = 2;
  o.now = [&] { return now; };
  RateLimiter limiter(o);
  for (int i = 0; i < 5; ++i) {
    const auto d = limiter.Take("alice", RouteClass::kRead);
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.limit, 5);
    EXPECT_EQ(d.remaining, 4 - i);
  }
  auto refused = limiter.Take("alice", RouteClass::kRead);
  EXPECT_FALSE(refused.allowed);
  EXPECT_NEAR(refused.retry_after, 0.1, 1e-9);  // one token at 10/s
  EXPECT_NEAR(refused.reset_seconds, 0.5, 1e-9);
  // Others, and alice's writes, are not affected.
  EXPECT_TRUE(limiter.Take("bob", RouteClass::kRead).allowed);
  EXPECT_TRUE(limiter.Take("alice", RouteClass::kWrite).allowed);
  EXPECT_TRUE(limiter.Take("alice", RouteClass::kWrite).allowed);
  auto write = limiter.Take("alice", RouteClass::kWrite);
  EXPECT_FALSE(write.allowed);
  EXPECT_NEAR(write.retry_after, 1.0, 1e-9);
  // The rate refills: 0.25 s gives 2.5 tokens, so two reads pass and the third not.
  now += 0.25;
  EXPECT_TRUE(limiter.Take("alice", RouteClass::kRead).allowed);
  EXPECT_TRUE(limiter.Take("alice", RouteClass::kRead).allowed);
  EXPECT_FALSE(limiter.Take("alice", RouteClass::kRead).allowed);
  // Never more than the burst, however long the wait.
  now += 3600;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Take("alice", RouteClass::kRead).allowed);
  EXPECT_FALSE(limiter.Take("alice", RouteClass::kRead).allowed);
}

TEST(RateLimiterTest, MemoryIsBoundedAndRefilledBucketsAreForgotten) {
  double now = 0;
  RateLimitOptions o;
  o.read_rate = 1;
  o.read_burst = 2;
  o.max_buckets = 1600;  // 100 per shard
  o.now = [&] { return now; };
  RateLimiter limiter(o);
  for (int i = 0; i < 20000; ++i) (void)limiter.Take("client-" + std::to_string(i), RouteClass::kRead);
  EXPECT_LE(limiter.buckets(), 1600u + 16u);
  now += 10;  // everything refilled: the next sweep of each shard forgets it
  for (int i = 0; i < 64 * 1024; ++i) (void)limiter.Take("busy-" + std::to_string(i % 64), RouteClass::kRead);
  EXPECT_LE(limiter.buckets(), 64u);
}

TEST(ClientBehindProxiesTest, ForwardedHeadersOnlyFromTrustedProxies) {
  const std::vector<std::string> proxies = {"10.0.0.1", "10.0.0.2"};
  const std::string xff = "203.0.113.7, 10.0.0.2";
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", &xff, proxies), "203.0.113.7");
  EXPECT_EQ(ClientBehindProxies("198.51.100.9", &xff, proxies), "198.51.100.9") << "not a trusted peer";
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", nullptr, proxies), "10.0.0.1");
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", &xff, {}), "10.0.0.1");
  // A client cannot hide behind a made-up left part: the right-most untrusted entry counts.
  const std::string spoofed = "1.2.3.4, 203.0.113.7, 10.0.0.2";
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", &spoofed, proxies), "203.0.113.7");
  const std::string garbage = "not-an-ip, 10.0.0.2";
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", &garbage, proxies), "10.0.0.1");
  const std::string v6 = " 2001:db8::1 ";
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", &v6, proxies), "2001:db8::1");
  const std::string only_proxies = "10.0.0.2, 10.0.0.1";
  EXPECT_EQ(ClientBehindProxies("10.0.0.1", &only_proxies, proxies), "10.0.0.1");
}

}  // namespace
}  // namespace bzzz::security
