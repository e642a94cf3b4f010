// A real Prometheus scrapes a real node on loopback and sees its metrics.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "cli/client.h"
#include "support/support.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string FindPrometheus() {
  for (const char* p : {"/usr/bin/prometheus", "/usr/local/bin/prometheus"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

TEST(PrometheusE2E, ScrapesNodeMetrics) {
  const std::string prometheus = FindPrometheus();
  if (prometheus.empty()) {
    if (std::getenv("CI")) FAIL() << "prometheus is not installed (scripts/setup.sh installs it)";
    GTEST_SKIP() << "prometheus not installed";
  }
  testing::TempDir dir;
  const auto node_port = testing::FreePort();
  testing::Process node(BZZZ_BINARY,
                        {"serve", "--data-dir", dir.File("data"), "--p2p-listen", "127.0.0.1:0", "--http-listen",
                         "127.0.0.1:" + std::to_string(node_port)},
                        {}, dir.File("node.log"));
  const auto prom_port = testing::FreePort();
  const std::string config = dir.Write("prometheus.yml",
                                       "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                       "scrape_configs:\n  - job_name: bzzz\n    static_configs:\n"
                                       "      - targets: ['127.0.0.1:" +
                                           std::to_string(node_port) + "']\n");
  testing::Process prom(prometheus,
                        {"--config.file=" + config, "--storage.tsdb.path=" + dir.File("tsdb"),
                         "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                        {}, dir.File("prometheus.log"));
  cli::ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(prom_port);
  o.timeout = 2s;
  auto query = [&](const std::string& q) -> json {
    auto r = cli::Call(o, "GET", "/api/v1/query?query=" + q);
    if (!r.ok() || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  };
  const bool up = testing::Eventually(
      [&] {
        const json j = query("up%7Bjob%3D%22bzzz%22%7D");
        return !j.is_discarded() && j.contains("data") && !j["data"]["result"].empty() &&
               j["data"]["result"][0]["value"][1] == "1";
      },
      30s);
  EXPECT_TRUE(up) << "prometheus never saw the target up";
  for (const char* metric : {"bzzz_system_health_score", "no_http_requests_total", "no_memory_usage_ratio",
                             "process_resident_memory_bytes", "bzzz_health_checks_passed_total"}) {
    const bool seen = testing::Eventually(
        [&] {
          const json j = query(metric);
          return !j.is_discarded() && j.contains("data") && !j["data"]["result"].empty();
        },
        10s);
    EXPECT_TRUE(seen) << metric;
  }
  prom.Signal(SIGTERM);
  prom.Wait(10s);
  node.Signal(SIGTERM);
  EXPECT_EQ(node.Wait(15s), 0);
}

}  // namespace
}  // namespace bzzz
