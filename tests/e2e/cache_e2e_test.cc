// Two nodes on one PostgreSQL and one Redis (docs/operations.md "Redis
// cache"): reads of finished tasks go through the shared cache; Redis is
// stopped under a load of submissions and reads (cache-health degrades,
// readiness stays, no request fails) and started again (the nodes
// reconnect by themselves and fill it again).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "e2e/cluster.h"
#include "support/services.h"

namespace bzzz::e2e {
namespace {

using testing::Eventually;
using testing::PostgresServer;
using testing::ReadFile;
using testing::RedisServer;

constexpr const char* kDatabase = "bzzz_cache";

struct Reply {
  int status = 0;
  json body;
};

Reply Call(const Cluster& c, int node, const char* method, const std::string& path, const std::string& body = "") {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = kAdminToken;
  o.timeout = 10s;
  auto r = cli::Call(o, method, path, body);
  if (!r.ok()) return {};
  return {r->status, json::parse(r->body, nullptr, false)};
}

const std::string kTask = json{{"executor", "builtin"}, {"input", {{"op", "echo"}, {"value", "cached"}}}}.dump();

std::string CacheHealth(const Cluster& c, int node) {
  const Reply r = Call(c, node, "GET", "/health/detailed");
  if (!r.body.is_object() || !r.body.contains("checks") || !r.body["checks"].contains("cache-health")) return "";
  return r.body["checks"]["cache-health"].value("status", "");
}

TEST(CacheEndToEnd, NodesShareFinishedTasksThroughRedisAndLosingRedisFailsNoRequest) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_EQ(pg.CreateDatabase(kDatabase), kDatabase);
  RedisServer redis;
  ASSERT_TRUE(redis.ok()) << redis.error();
  Cluster c;
  c.node_args = {"--set", "security.rate_limit.enabled=false",
                 "--set", "operations.health_check_interval=300ms",
                 "--set", "cache.layers=memory,redis",
                 "--set", "cache.redis.host=127.0.0.1",
                 "--set", "cache.redis.port=" + std::to_string(redis.port()),
                 "--set", "cache.redis.reconnect_interval=300ms"};
  for (const auto& a : pg.NodeArgs(kDatabase)) c.node_args.push_back(a);
  c.StartBootstrap();
  for (int i = 0; i < 2; ++i) c.StartNode(i);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(Eventually([&] { return Call(c, i, "GET", "/health/ready").status == 200; }, 40s))
        << ReadFile(c.logs[i]);
    ASSERT_TRUE(Eventually([&] { return CacheHealth(c, i) == "healthy"; }, 10s)) << CacheHealth(c, i);
  }
  const Reply detailed = Call(c, 0, "GET", "/health/detailed");
  const json details = detailed.body["checks"]["cache-health"]["details"];
  EXPECT_EQ(details["redis"]["up"], true) << detailed.body.dump();
  EXPECT_EQ(details["layers"], json::array({"memory", "redis"})) << details.dump();

  // Finished tasks of node 0, read on node 1: the first read fills Redis,
  // the next comes from node 1's memory.
  std::vector<std::string> done;
  for (int i = 0; i < 10; ++i) {
    const Reply r = Call(c, 0, "POST", "/api/v1/tasks", kTask);
    ASSERT_EQ(r.status, 201) << r.body.dump();
    done.push_back(r.body["id"]);
  }
  for (const auto& id : done) {
    ASSERT_TRUE(Eventually([&] { return Call(c, 1, "GET", "/api/v1/tasks/" + id).body.value("state", "") == "succeeded"; }, 20s));
  }
  for (const auto& id : done) {
    EXPECT_EQ(redis.Cli("EXISTS bzzz:task:" + id), "1") << id;
    const Reply again = Call(c, 1, "GET", "/api/v1/tasks/" + id);
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(again.body.value("state", ""), "succeeded");
    EXPECT_EQ(again.body.value("owner_node", ""), Call(c, 0, "GET", "/api/v1/tasks/" + id).body.value("owner_node", ""));
  }
  EXPECT_GE(c.Metric(1, "bzzz_cache_lookups_total{domain=\"task\",result=\"memory\"}"), 10);
  EXPECT_GT(c.Metric(1, "no_cache_hit_ratio"), 0);

  // Load: submissions to node 0, reads of finished tasks on both nodes.
  std::atomic<bool> stop{false};
  std::atomic<int> submitted{0}, reads{0}, failures{0};
  std::mutex mu;
  std::vector<std::string> accepted;
  std::vector<std::thread> load;
  load.emplace_back([&] {
    while (!stop) {
      const Reply r = Call(c, 0, "POST", "/api/v1/tasks", kTask);
      if (r.status != 201) {
        failures++;
        std::fprintf(stderr, "submit: HTTP %d %s\n", r.status, r.body.dump().c_str());
        continue;
      }
      submitted++;
      std::lock_guard lock(mu);
      accepted.push_back(r.body["id"]);
    }
  });
  for (int node : {0, 1}) {
    load.emplace_back([&, node] {
      std::mt19937 rng(node);
      while (!stop) {
        const std::string id = done[rng() % done.size()];
        const Reply r = Call(c, node, "GET", "/api/v1/tasks/" + id);
        if (r.status != 200 || r.body.value("state", "") != "succeeded") {
          failures++;
          std::fprintf(stderr, "read on node %d: HTTP %d %s\n", node, r.status, r.body.dump().c_str());
          continue;
        }
        reads++;
      }
    });
  }
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(redis.Stop());
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(Eventually([&] { return CacheHealth(c, i) == "degraded"; }, 10s)) << i << ": " << CacheHealth(c, i);
    EXPECT_EQ(Call(c, i, "GET", "/health/ready").status, 200) << "losing the cache never makes a node unready";
  }
  EXPECT_EQ(c.Metric(0, "bzzz_cache_redis_up"), 0);
  const int reads_down = reads.load();
  std::this_thread::sleep_for(1500ms);
  EXPECT_GT(reads.load(), reads_down) << "reads go on without Redis";
  ASSERT_TRUE(redis.Start());
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(Eventually([&] { return CacheHealth(c, i) == "healthy"; }, 10s)) << i << ": " << CacheHealth(c, i);
  }
  EXPECT_EQ(c.Metric(0, "bzzz_cache_redis_up"), 1);
  EXPECT_GE(c.Metric(0, "bzzz_cache_redis_reconnects_total"), 1);
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : load) t.join();
  std::fprintf(stderr, "under the Redis outage: %d tasks submitted, %d reads, %d failures\n", submitted.load(),
               reads.load(), failures.load());
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(submitted.load(), 0);

  // Every task accepted meanwhile succeeds; read on node 1 it is cached in
  // the restarted (empty) Redis again.
  for (const auto& id : accepted) {
    ASSERT_TRUE(Eventually([&] { return Call(c, 1, "GET", "/api/v1/tasks/" + id).body.value("state", "") == "succeeded"; }, 30s)) << id;
  }
  EXPECT_TRUE(Eventually([&] { return redis.Cli("EXISTS bzzz:task:" + accepted.back()) == "1"; }, 5s));
}

}  // namespace
}  // namespace bzzz::e2e
