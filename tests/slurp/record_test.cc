// SLURP's pure parts: what an API event may say (bad bodies are refused
// naming the field), the record address and the record's JSON.
#include "slurp/record.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace bzzz::slurp {
namespace {

using nlohmann::json;

TEST(SlurpRecordTest, ApiEventsAreCheckedFieldByField) {
  auto ok = ParseApiEvent(R"({"project":"bzzz","task_id":"t-1","summary":"use sqlite","decision":"sqlite for tests",
      "rationale":"fast","authors":["ana"],"citations":[{"kind":"task","id":"t-1"},{"kind":"message","id":"r/m1"}]})");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->citations.size(), 2u);
  auto again = ApiEventFromJson(ApiEventJson(*ok));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->summary, "use sqlite");
  EXPECT_EQ(again->citations[1].id, "r/m1");
  // Who posted it is the node's to say, never the body's.
  EXPECT_EQ(ParseApiEvent(R"({"project":"p","summary":"s","decision":"d","submitted_by":"root"})").status().code(),
            StatusCode::kInvalidArgument);
  ApiEvent posted = *ok;
  posted.submitted_by = "ana-token";
  auto stored = ApiEventFromJson(ApiEventJson(posted));
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(stored->submitted_by, "ana-token");
  const std::string big(20000, 'x');
  for (const std::string& bad :
       {std::string("[]"), std::string("not json"), std::string(R"({"summary":"s","decision":"d"})"),
        std::string(R"({"project":"a b","summary":"s","decision":"d"})"),
        std::string(R"({"project":"p","summary":"","decision":"d"})"),
        std::string(R"({"project":"p","summary":"s","decision":"d","extra":1})"),
        std::string(R"({"project":"p","summary":"s","decision":"d","citations":[{"kind":"url","id":"x"}]})"),
        std::string(R"({"project":"p","summary":"s","decision":"d","citations":[{"kind":"task"}]})"),
        std::string(R"({"project":"p","summary":"s","decision":"d","citations":[{"kind":"task","id":"t","x":1}]})"),
        std::string(R"({"project":"p","summary":"s","decision":"d","authors":[1]})"),
        std::string(R"({"project":"p","summary":"s","decision":"d","role":"a/b"})"),
        std::string(R"({"project":"p","summary":"s","decision":")") + big + "\"}"}) {
    auto r = ParseApiEvent(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad.substr(0, 120);
    EXPECT_NE(r.status().message().find("body"), std::string::npos) << r.status().message();
  }
}

TEST(SlurpRecordTest, TheAddressAndTheRecord) {
  EXPECT_EQ(RecordAddress("decision", "bzzz", "t-1", 7), "ucxl://slurp:decision@bzzz:t-1/*^/decisions/7");
  EXPECT_EQ(RecordAddress("decision", "bzzz", "", 7), "ucxl://slurp:decision@bzzz:general/*^/decisions/7");
  Record r;
  r.summary = "s";
  r.decision = "d";
  r.citations = {{"task", "t-1", "ana", std::nullopt}, {"record", "3", "slurp", 2}};
  r.term = 4;
  r.event_seq = 7;
  const json j = json::parse(RecordJson(r));
  EXPECT_EQ(j["term"], 4);
  EXPECT_EQ(j["event"]["seq"], 7);
  EXPECT_TRUE(j["citations"][0]["term"].is_null());
  EXPECT_EQ(j["citations"][1]["term"], 2);
  EXPECT_TRUE(j["task_id"].is_null());
}

}  // namespace
}  // namespace bzzz::slurp
