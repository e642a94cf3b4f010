#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "p2p/identity.h"
#include "p2p/p2p.h"
#include "p2p/topics.h"
#include "p2p/wire.h"
#include "support/support.h"

namespace bzzz::p2p {
namespace {

Frame SampleFrame() {
  Frame f;
  f.kind = FrameKind::kPubsub;
  f.seq = 42;
  f.sent_at_ns = 1'700'000'000'000'000'000;
  f.topic = "bzzz/coordination/v1";
  f.messages.push_back({"task_announce", 1'700'000'000'000'000, 0, R"({"task":1})"});
  f.messages.push_back({"status", 1'700'000'000'000'001, 2, std::string(1000, 'x')});
  return f;
}

TEST(WireTest, RoundTripVerifies) {
  const auto id = NodeIdentity::Generate();
  auto bytes = EncodeFrame(SampleFrame(), id);
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  const Decoded d = DecodeFrame(bytes->data(), bytes->size());
  ASSERT_TRUE(d.ok()) << d.reason;
  EXPECT_EQ(d.frame.sender, id.public_key());
  EXPECT_EQ(d.frame.seq, 42u);
  EXPECT_EQ(d.frame.topic, "bzzz/coordination/v1");
  ASSERT_EQ(d.frame.messages.size(), 2u);
  EXPECT_EQ(d.frame.messages[0].type, "task_announce");
  EXPECT_EQ(d.frame.messages[1].hop_count, 2);
  EXPECT_EQ(d.frame.messages[1].data, std::string(1000, 'x'));
  EXPECT_EQ(NodeIdOf(d.frame.sender), id.node_id());
}

TEST(WireTest, EveryTamperedByteIsRejected) {
  const auto id = NodeIdentity::Generate();
  auto bytes = EncodeFrame(SampleFrame(), id);
  ASSERT_TRUE(bytes.ok());
  for (std::size_t i = 0; i < bytes->size(); i += 7) {
    Bytes t = *bytes;
    t[i] ^= 0x01;
    EXPECT_FALSE(DecodeFrame(t.data(), t.size()).ok()) << "flipped byte " << i;
  }
}

TEST(WireTest, ForgedSenderIsRejected) {
  const auto real = NodeIdentity::Generate();
  const auto forger = NodeIdentity::Generate();
  auto bytes = EncodeFrame(SampleFrame(), forger);
  ASSERT_TRUE(bytes.ok());
  // Claim to be `real`: swap the key, keep the forger's signature.
  std::copy(real.public_key().begin(), real.public_key().end(), bytes->begin() + 4);
  const Decoded d = DecodeFrame(bytes->data(), bytes->size());
  EXPECT_EQ(d.error, DecodeError::kBadSignature);
}

// Over an authenticated link from the sender (mesh.h), the signature is
// not checked again; everything else still is.
TEST(WireTest, AnAuthenticatedLinkStandsForTheSignatureButNotForTheLayout) {
  const auto id = NodeIdentity::Generate();
  auto bytes = EncodeFrame(SampleFrame(), id);
  ASSERT_TRUE(bytes.ok());
  bytes->back() ^= 1;
  EXPECT_EQ(DecodeFrame(bytes->data(), bytes->size()).error, DecodeError::kBadSignature);
  const Decoded d = DecodeFrame(bytes->data(), bytes->size(), Origin::kAuthenticatedLink);
  ASSERT_TRUE(d.ok()) << d.reason;
  EXPECT_EQ(d.frame.sender, id.public_key());
  EXPECT_EQ(d.frame.topic, SampleFrame().topic);
  for (std::size_t n : {std::size_t{0}, std::size_t{50}, bytes->size() / 2}) {
    EXPECT_EQ(DecodeFrame(bytes->data(), n, Origin::kAuthenticatedLink).error, DecodeError::kMalformed) << n;
  }
}

TEST(WireTest, TruncatedAndGarbageAreMalformed) {
  const auto id = NodeIdentity::Generate();
  auto bytes = EncodeFrame(SampleFrame(), id);
  ASSERT_TRUE(bytes.ok());
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{50}, bytes->size() - 1}) {
    EXPECT_FALSE(DecodeFrame(bytes->data(), n).ok()) << n;
  }
  const Bytes garbage(500, 0xab);
  EXPECT_EQ(DecodeFrame(garbage.data(), garbage.size()).error, DecodeError::kMalformed);
}

TEST(WireTest, LimitsAreEnforcedOnEncode) {
  const auto id = NodeIdentity::Generate();
  Frame f = SampleFrame();
  f.messages.clear();
  EXPECT_FALSE(EncodeFrame(f, id).ok());  // no message
  f = SampleFrame();
  f.messages[0].type = std::string(65, 't');
  EXPECT_FALSE(EncodeFrame(f, id).ok());
  f = SampleFrame();
  f.messages[0].data = std::string(70 * 1024, 'd');
  EXPECT_FALSE(EncodeFrame(f, id).ok());
}

TEST(WireTest, SealedFramesOpenOnlyForTheRecipient) {
  const auto sender = NodeIdentity::Generate();
  const auto recipient = NodeIdentity::Generate();
  const auto other = NodeIdentity::Generate();
  auto frame = EncodeFrame(SampleFrame(), sender);
  ASSERT_TRUE(frame.ok());
  auto sealed = SealFrame(*frame, recipient.public_key());
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE(IsSealed(sealed->data(), sealed->size()));
  auto opened = UnsealFrame(sealed->data(), sealed->size(), recipient);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, *frame);
  EXPECT_FALSE(UnsealFrame(sealed->data(), sealed->size(), other).ok());
  Bytes damaged = *sealed;
  damaged[20] ^= 1;
  EXPECT_FALSE(UnsealFrame(damaged.data(), damaged.size(), recipient).ok());
}

// The presence's JSON: what one build writes, another reads; the fields a
// node of an older build leaves out read as unknown.
TEST(PresenceTest, RoundTripAndFieldsAnOlderBuildLeavesOut) {
  Presence p;
  p.agent_id = "n1";
  p.role = "agent";
  p.capabilities = {"gpu"};
  p.http_endpoint = "http://127.0.0.1:8080";
  p.max_tasks = 4;
  p.version = "0.1.0";
  p.health = "degraded";
  p.peers = 3;
  std::string name;
  auto back = PresenceFromJson(PresenceToJson(p, "aa", "node-one"), &name);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
  EXPECT_EQ(name, "node-one");

  auto old = PresenceFromJson(R"({"node_id":"aa","name":"n","role":"agent","status":"ready"})", nullptr);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->version, "");
  EXPECT_EQ(old->health, "");
  EXPECT_EQ(old->peers, -1);
  EXPECT_EQ(PresenceToJson(*old, "aa", "n").find("peers"), std::string::npos) << "unknown stays absent";
  EXPECT_FALSE(PresenceFromJson(R"({"peers":"three"})", nullptr).ok()) << "a field of the wrong type";
}

TEST(IdentityTest, PersistsAcrossLoads) {
  testing::TempDir dir;
  auto first = NodeIdentity::LoadOrCreate(dir.path() + "/p2p");
  ASSERT_TRUE(first.ok()) << first.status().message();
  auto second = NodeIdentity::LoadOrCreate(dir.path() + "/p2p");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->node_id(), second->node_id());
  EXPECT_EQ(first->node_id().size(), 40u);
  EXPECT_EQ(std::filesystem::status(dir.path() + "/p2p/identity.key").permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
}

TEST(IdentityTest, CorruptKeyFileIsAnErrorNotANewIdentity) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/p2p");
  dir.Write("p2p/identity.key", "short");
  auto id = NodeIdentity::LoadOrCreate(dir.path() + "/p2p");
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("identity.key"), std::string::npos);
}

TEST(TopicsTest, ClassesAndValidation) {
  EXPECT_EQ(ClassOf("bzzz/coordination/v1"), TopicClass::kCoordination);
  EXPECT_EQ(ClassOf("hmmm/meta-discussion/v1"), TopicClass::kMetaDiscussion);
  EXPECT_EQ(ClassOf(IssueTopic("42")), TopicClass::kIssue);
  EXPECT_EQ(ClassOf("bzzz/internal/probe/v1"), TopicClass::kInternal);
  EXPECT_EQ(ClassOf("something/else"), TopicClass::kOther);
  EXPECT_EQ(ValidateTopic("bzzz/meta/issue/42"), "");
  EXPECT_NE(ValidateTopic(""), "");
  EXPECT_NE(ValidateTopic("bzzz/meta/issue/"), "");
  EXPECT_NE(ValidateTopic("a//b"), "");
  EXPECT_NE(ValidateTopic("with space"), "");
  EXPECT_NE(ValidateTopic(std::string(300, 'a')), "");
}

}  // namespace
}  // namespace bzzz::p2p
