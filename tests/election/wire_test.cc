// The election's wire format, durable state file, admin-only service
// lifecycle and term fence.
#include "election/wire.h"

#include <gtest/gtest.h>

#include <fstream>

#include "election/admin_services.h"
#include "election/state.h"
#include "support/support.h"

namespace bzzz::election {
namespace {

TEST(ElectionWire, EveryMessageTypeRoundTrips) {
  for (int t = 0; t <= static_cast<int>(MessageType::kTransferRequest); ++t) {
    Message m;
    m.type = static_cast<MessageType>(t);
    m.to = "b";
    m.cluster = "0123456789abcdef";
    m.term = 42;
    m.config = ConfigId{41, 7};
    m.members = {"a", "b", "c"};
    m.seq = 9;
    m.granted = true;
    m.transfer = t % 2 == 0;
    m.admin_capable = true;
    m.score = 0.25;
    m.admin = "a";
    auto back = DecodeMessage(EncodeMessage(m));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, m) << EncodeMessage(m);
  }
}

TEST(ElectionWire, MalformedMessagesAreRefusedNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "JSON object"},
      {"[1,2]", "JSON object"},
      {R"({"type":"coup","term":1,"config":[0,1]})", "type"},
      {R"({"term":1,"config":[0,1]})", "type"},
      {R"({"type":"vote","term":-1,"config":[0,1]})", "term"},
      {R"({"type":"vote","term":"1","config":[0,1]})", "term"},
      {R"({"type":"vote","term":18446744073709551615,"config":[0,1]})", "term"},
      {R"({"type":"vote","term":1})", "config"},
      {R"({"type":"vote","term":1,"config":[1]})", "config"},
      {R"({"type":"heartbeat","term":1,"config":[0,1],"members":["b","a"]})", "members"},
      {R"({"type":"heartbeat","term":1,"config":[0,1],"members":["a","a"]})", "members"},
      {R"({"type":"heartbeat","term":1,"config":[0,1],"members":[1]})", "members"},
      {R"({"type":"hello","term":1,"config":[0,1],"score":2})", "score"},
      {R"({"type":"vote_reply","term":1,"config":[0,1],"granted":"yes"})", "granted"},
      {R"({"type":"vote","term":1,"config":[0,1],"to":7})", "to"},
  };
  for (const auto& [input, field] : cases) {
    auto m = DecodeMessage(input);
    ASSERT_FALSE(m.ok()) << input;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find(field), std::string::npos) << input << " -> " << m.status().message();
  }
}

TEST(ElectionState, SavedAtomicallyLoadedBackAndDamageIsAnError) {
  testing::TempDir dir;
  const std::string path = dir.File("election/state.json");
  EXPECT_TRUE(FileStateStore::Load(path).status().IsNotFound());
  HardState s;
  s.cluster = "c0ffee";
  s.term = 12;
  s.voted_for = "b";
  s.electorate = Electorate{ConfigId{12, 3}, {"a", "b", "c"}};
  FileStateStore store(path);
  ASSERT_TRUE(store.Save(s).ok());
  auto back = FileStateStore::Load(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
  s.term = 13;
  ASSERT_TRUE(store.Save(s).ok());
  EXPECT_EQ(FileStateStore::Load(path)->term, 13u);

  std::ofstream(path) << R"({"version":1,"cluster":"x","term":"many"})";
  auto damaged = FileStateStore::Load(path);
  EXPECT_EQ(damaged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(damaged.status().message().find(path), std::string::npos);
  std::ofstream(path)
      << "{\"version\": 1, \"cluster\": \"x\", \"term\": 1, \"voted_for\": \"\", \"electorate\": "
         "{\"config\": [0, 1], \"members\": [\"b\", \"a\"]}}";
  EXPECT_FALSE(FileStateStore::Load(path).ok());
}

TEST(AdminServices, StartWithTheTermStopBeforeANewerTermNeverTwice) {
  AdminServices services;
  std::vector<std::string> log;
  services.Register({"master-loop",
                     [&](std::uint64_t t) {
                       log.push_back("start loop " + std::to_string(t));
                       return Status::Ok();
                     },
                     [&](std::uint64_t t) { log.push_back("stop loop " + std::to_string(t)); }});
  services.Register({"slurp",
                     [&](std::uint64_t t) {
                       log.push_back("start slurp " + std::to_string(t));
                       return Unavailable("no store");
                     },
                     [&](std::uint64_t t) { log.push_back("stop slurp " + std::to_string(t)); }});
  services.BecameAdmin(3);
  services.BecameAdmin(3);  // again: nothing
  EXPECT_EQ(services.RunningTerm(), 3u);
  services.BecameAdmin(5);  // a newer term without a stop in between: stop first
  services.StoppedBeingAdmin();
  services.StoppedBeingAdmin();
  services.BecameAdmin(4);  // older than one already started: refused
  EXPECT_FALSE(services.RunningTerm());
  const std::vector<std::string> want = {"start loop 3", "start slurp 3", "stop loop 3",
                                         "start loop 5", "start slurp 5", "stop loop 5"};
  EXPECT_EQ(log, want);  // slurp failed to start, so it is never stopped
  EXPECT_NE(services.States()[1].last_error.find("no store"), std::string::npos);
}

TEST(TermFence, RefusesWritesOfOlderTerms) {
  TermFence fence;
  EXPECT_TRUE(fence.Admit(3).ok());
  EXPECT_TRUE(fence.Admit(3).ok());
  EXPECT_TRUE(fence.Admit(7).ok());
  const Status stale = fence.Admit(6);
  EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.message().find("term 7"), std::string::npos);
  EXPECT_EQ(fence.Newest(), 7u);
}

}  // namespace
}  // namespace bzzz::election
