// DhtProbe: series with a known label set exist at zero from start; a get
// that finds nothing is a result, not a failure; the replication factor
// is absent until measured.
#include "dht/probe.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace bzzz::dht {
namespace {

std::string Scrape(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

TEST(DhtProbeTest, SeriesExistAtZeroAndNotFoundIsNoFailure) {
  prometheus::Registry registry;
  DhtProbe probe(&registry);
  std::string text = Scrape(registry);
  EXPECT_NE(text.find("bzzz_dht_get_operations_total{result=\"not_found\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("bzzz_dht_put_operations_total{result=\"failure\"} 0"), std::string::npos);
  EXPECT_NE(text.find("bzzz_dht_operation_failures_total{operation=\"discover\",reason=\"rejected\"} 0"),
            std::string::npos);
  EXPECT_EQ(text.find("\nbzzz_dht_replication_factor "), std::string::npos) << "absent until measured";

  probe.Done(Operation::kGet, 0.001, "not_found");
  probe.Replication(std::nullopt, 3, 3);
  text = Scrape(registry);
  EXPECT_NE(text.find("bzzz_dht_get_operations_total{result=\"not_found\"} 1"), std::string::npos) << text;
  EXPECT_EQ(text.find("reason=\"not_found\""), std::string::npos) << "not counted as a failure";
  EXPECT_EQ(text.find("\nbzzz_dht_replication_factor "), std::string::npos);
  EXPECT_NE(text.find("bzzz_dht_records_held 3"), std::string::npos);

  probe.Done(Operation::kGet, 0.001, "timeout");
  probe.Replication(2.5, 3, 3);
  text = Scrape(registry);
  EXPECT_NE(text.find("bzzz_dht_operation_failures_total{operation=\"get\",reason=\"timeout\"} 1"), std::string::npos);
  EXPECT_NE(text.find("\nbzzz_dht_replication_factor 2.5"), std::string::npos) << text;
}

}  // namespace
}  // namespace bzzz::dht
