// Five real P2P nodes on loopback, each with its own OpenDHT runner.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>
#include <map>
#include <mutex>
#include <set>

#include "cluster/membership.h"
#include "p2p/topics.h"
#include "p2p/wire.h"
#include "p2p/cluster.h"
#include "support/support.h"

namespace bzzz::p2p {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;

class P2pClusterTest : public ::testing::Test {
 protected:
  static constexpr int kNodes = 5;

  void SetUp() override {
    for (int i = 0; i < kNodes; ++i) {
      std::vector<std::string> seeds;
      for (const auto& n : nodes_) seeds.push_back("127.0.0.1:" + std::to_string(n->port()));
      auto node = testing::StartP2pNode("node" + std::to_string(i), seeds);
      ASSERT_NE(node, nullptr);
      nodes_.push_back(std::move(node));
    }
    ASSERT_TRUE(Eventually(
        [&] {
          for (const auto& n : nodes_) {
            if (n->ConnectedPeers() != kNodes - 1) return false;
          }
          return true;
        },
        10s))
        << "presence did not converge";
  }

  std::uint64_t Rejected() const {
    std::uint64_t n = 0;
    for (const auto& node : nodes_) n += node->Stats().rejected;
    return n;
  }

  // After refused frames: every node counted them, a member's message still
  // reaches every subscriber, and nothing else was delivered.
  void ExpectRefusedThenMembersOnly(std::uint64_t rejected_before, std::size_t refused,
                                    const std::atomic<int>& delivered, const std::string& what) {
    EXPECT_TRUE(Eventually([&] { return Rejected() >= rejected_before + refused; }, 5s));
    ASSERT_TRUE(nodes_[0]->Publish(kCoordinationTopic, "task_announce", "{}").ok());
    EXPECT_TRUE(Eventually([&] { return delivered.load() == kNodes - 1; }, 5s));
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(delivered.load(), kNodes - 1) << what << " was delivered";
  }

  std::vector<std::unique_ptr<P2pNode>> nodes_;
};

// A one-message pubsub frame stamped now (not yet signed).
Frame PubsubFrame(std::string_view topic, std::string type, std::string data, std::uint64_t seq) {
  Frame f;
  f.kind = FrameKind::kPubsub;
  f.seq = seq;
  f.sent_at_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  f.topic = std::string(topic);
  f.messages.push_back({std::move(type), f.sent_at_ns / 1000, 0, std::move(data)});
  return f;
}

TEST_F(P2pClusterTest, EveryNodeDiscoversEveryOtherWithPresence) {
  for (const auto& n : nodes_) {
    std::set<std::string> ids;
    for (const auto& p : n->Peers()) {
      ids.insert(p.node_id);
      EXPECT_EQ(p.presence.role, "developer");
      EXPECT_EQ(p.presence.capabilities, std::vector<std::string>{"code"});
      EXPECT_EQ(p.name.rfind("node", 0), 0u);
    }
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kNodes - 1));
    EXPECT_FALSE(ids.count(n->node_id())) << "a node lists itself";
  }
}

TEST_F(P2pClusterTest, CapabilityChangeIsAnnouncedAtOnce) {
  Presence p = nodes_[2]->CurrentPresence();
  p.capabilities = {"code", "review"};
  p.current_tasks = 3;
  nodes_[2]->UpdatePresence(p);
  const std::string id = nodes_[2]->node_id();
  EXPECT_TRUE(Eventually(
      [&] {
        auto peer = nodes_[0]->FindPeer(id);
        return peer && peer->presence.capabilities.size() == 2 && peer->presence.current_tasks == 3;
      },
      3s));
}

TEST_F(P2pClusterTest, TopicMessageFansOutToEverySubscriberButNotTheSender) {
  std::mutex mu;
  std::map<int, std::vector<Message>> got;
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(nodes_[i]->Subscribe(kCoordinationTopic, "test", [&, i](const Message& m) {
      std::lock_guard lock(mu);
      got[i].push_back(m);
    }).ok());
  }
  std::this_thread::sleep_for(300ms);  // listens reach the storage nodes
  constexpr int kMessages = 50;
  for (int k = 0; k < kMessages; ++k) {
    ASSERT_TRUE(nodes_[0]->Publish(kCoordinationTopic, "task_announce", "{\"n\":" + std::to_string(k) + "}").ok());
  }
  EXPECT_TRUE(Eventually(
      [&] {
        std::lock_guard lock(mu);
        for (int i = 1; i < kNodes; ++i) {
          if (got[i].size() < kMessages) return false;
        }
        return true;
      },
      10s));
  std::this_thread::sleep_for(200ms);
  std::lock_guard lock(mu);
  EXPECT_TRUE(got[0].empty()) << "the sender received its own message";
  for (int i = 1; i < kNodes; ++i) {
    ASSERT_EQ(got[i].size(), static_cast<std::size_t>(kMessages)) << "node " << i << " (duplicates or losses)";
    std::set<std::string> payloads;
    for (const auto& m : got[i]) {
      EXPECT_EQ(m.envelope.from, nodes_[0]->node_id());
      EXPECT_EQ(m.envelope.type, "task_announce");
      EXPECT_EQ(m.topic, kCoordinationTopic);
      EXPECT_GT(m.envelope.timestamp_ms, 0);
      payloads.insert(m.envelope.data);
    }
    EXPECT_EQ(payloads.size(), static_cast<std::size_t>(kMessages));
  }
}

TEST_F(P2pClusterTest, ForgedAndTamperedFramesAreDroppedAndCounted) {
  std::atomic<int> delivered{0};
  for (int i = 1; i < kNodes; ++i) {
    ASSERT_TRUE(nodes_[i]->Subscribe(kCoordinationTopic, "test", [&](const Message&) { ++delivered; }).ok());
  }
  std::this_thread::sleep_for(300ms);
  const std::uint64_t rejected_before = Rejected();

  // A frame signed by node 0 whose payload was changed afterwards.
  Frame f = PubsubFrame(kCoordinationTopic, "task_announce", "{\"amount\":1}", 1);
  auto good = EncodeFrame(f, nodes_[0]->identity());
  ASSERT_TRUE(good.ok());
  Bytes tampered = *good;
  tampered[tampered.size() - 70] ^= 0x01;  // inside the payload
  ASSERT_TRUE(nodes_[0]->PublishRawFrame(kCoordinationTopic, tampered).ok());

  // A frame claiming node 1's key, signed by a stranger.
  const auto stranger = NodeIdentity::Generate();
  auto forged = EncodeFrame(f, stranger);
  ASSERT_TRUE(forged.ok());
  std::copy(nodes_[1]->identity().public_key().begin(), nodes_[1]->identity().public_key().end(), forged->begin() + 4);
  ASSERT_TRUE(nodes_[0]->PublishRawFrame(kCoordinationTopic, *forged).ok());

  // Garbage.
  ASSERT_TRUE(nodes_[0]->PublishRawFrame(kCoordinationTopic, Bytes(300, 0x5a)).ok());

  // A valid message afterwards still goes through: the bad ones were dropped, not queued.
  ExpectRefusedThenMembersOnly(rejected_before, 3, delivered, "a forged or tampered frame");
}

// A rogue peer: it reaches the nodes and signs its frames, but holds no
// valid credential of this cluster. Whatever it sends is refused where it
// is stored and where it is received, and counted.
TEST_F(P2pClusterTest, FramesOfNonMembersAreRefusedAndCounted) {
  std::atomic<int> delivered{0};
  for (int i = 1; i < kNodes; ++i) {
    ASSERT_TRUE(nodes_[i]->Subscribe(kCoordinationTopic, "rogue-test", [&](const Message&) { ++delivered; }).ok());
  }
  std::this_thread::sleep_for(300ms);
  const std::uint64_t rejected_before = Rejected();

  const auto rogue = NodeIdentity::Generate();
  Frame f = PubsubFrame(kCoordinationTopic, "tasks.load", "{}", 7);
  std::vector<Bytes> frames;
  // 1. No credential at all.
  frames.push_back(EncodeFrame(f, rogue).value());
  // 2. A credential of the rogue's own cluster.
  const auto rogue_ca = cluster::ClusterAuthority::Generate();
  cluster::Credential c;
  c.node_key = rogue.public_key();
  c.role = cluster::NodeRole::kAdminCapable;
  c.issued_at_ms = cluster::NowMs();
  c.expires_at_ms = c.issued_at_ms + 3600000;
  f.credential = cluster::EncodeCredential(c, rogue_ca);
  f.seq++;
  frames.push_back(EncodeFrame(f, rogue).value());
  // 3. A member's real credential, replayed under the rogue's key.
  f.credential = testing::MemberOf(testing::TestClusterKey(), nodes_[1]->identity())->credential();
  f.seq++;
  frames.push_back(EncodeFrame(f, rogue).value());
  // 4. A credential of this cluster that has expired.
  f.credential =
      testing::MemberOf(testing::TestClusterKey(), rogue, cluster::NodeRole::kAdminCapable, -1000ms)->credential();
  f.seq++;
  frames.push_back(EncodeFrame(f, rogue).value());
  for (auto& frame : frames) ASSERT_TRUE(nodes_[0]->PublishRawFrame(kCoordinationTopic, frame).ok());

  // Members still talk; nothing of the rogue was delivered.
  ExpectRefusedThenMembersOnly(rejected_before, frames.size(), delivered, "a non-member's frame");
}

// A node whose credential is of another cluster is not a peer: its presence
// is refused even though it shares the network id and the bootstrap node.
TEST_F(P2pClusterTest, NodeOfAnotherClusterIsNotAPeer) {
  config::P2pConfig cfg = testing::FastP2pConfig();
  cfg.network_id = cluster::NetworkIdOf(testing::TestClusterKey().public_key());
  const auto other_ca = cluster::ClusterAuthority::Generate();
  testing::TempDir dir;
  auto id = NodeIdentity::LoadOrCreate(dir.File("o") + "/p2p").value();
  auto stranger = testing::StartP2pNode("stranger", {"127.0.0.1:" + std::to_string(nodes_[0]->port())}, dir.File("o"), cfg, testing::MemberOf(other_ca, id));
  ASSERT_NE(stranger, nullptr);
  std::this_thread::sleep_for(1500ms);
  for (const auto& n : nodes_) EXPECT_FALSE(n->FindPeer(stranger->node_id()).has_value());
  EXPECT_TRUE(stranger->Peers().empty());
}

// Member links: a frame sent straight to every member arrives without any
// DHT put; a datagram of a non-member sent to a link is refused like any frame.
TEST_F(P2pClusterTest, MemberLinksDeliverAndRefuseNonMembers) {
  std::atomic<int> delivered{0};
  for (int i = 1; i < kNodes; ++i) {
    ASSERT_TRUE(nodes_[i]->Subscribe(kElectionTopic, "link-test", [&](const Message& m) {
                            if (m.envelope.type == "hello") ++delivered;
                          }).ok());
  }
  const auto frames_before = nodes_[0]->Stats().frames_sent;
  ASSERT_TRUE(nodes_[0]->PublishToMembers(kElectionTopic, "hello", "{}").ok());
  EXPECT_TRUE(Eventually([&] { return delivered.load() == kNodes - 1; }, 3s));
  EXPECT_EQ(nodes_[0]->Stats().frames_sent, frames_before + 1);
  EXPECT_EQ(nodes_[0]->PublishToMembers("bad topic", "hello", "{}").code(), StatusCode::kInvalidArgument);

  // A rogue that learned node 1's link port: signed, but no credential.
  const auto rogue = NodeIdentity::Generate();
  const Bytes frame = EncodeFrame(PubsubFrame(kElectionTopic, "hello", "{}", 1), rogue).value();
  const auto rejected_before = nodes_[1]->Stats().rejected;
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(nodes_[1]->link_port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(frame.size()));
  const Bytes garbage(100, 0x42);
  (void)::sendto(fd, garbage.data(), garbage.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  ::close(fd);
  EXPECT_TRUE(Eventually([&] { return nodes_[1]->Stats().rejected >= rejected_before + 2; }, 3s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(delivered.load(), kNodes - 1);
}

TEST_F(P2pClusterTest, JoinIsIdempotentAndLeaveStopsDelivery) {
  std::atomic<int> first{0}, second{0};
  ASSERT_TRUE(nodes_[3]->Subscribe(IssueTopic("7"), "room", [&](const Message&) { ++first; }).ok());
  ASSERT_TRUE(nodes_[3]->Subscribe(IssueTopic("7"), "room", [&](const Message&) { ++second; }).ok());
  auto topics = nodes_[3]->Topics();
  EXPECT_EQ(std::count(topics.begin(), topics.end(), "bzzz/meta/issue/7"), 1);
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(nodes_[1]->Publish(IssueTopic("7"), "hmmm", "one").ok());
  EXPECT_TRUE(Eventually([&] { return second.load() == 1; }, 5s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(first.load(), 0) << "the replaced handler still runs";
  EXPECT_EQ(second.load(), 1) << "joining twice delivers twice";

  nodes_[3]->Unsubscribe(IssueTopic("7"), "room");
  nodes_[3]->Unsubscribe(IssueTopic("7"), "room");  // idempotent
  topics = nodes_[3]->Topics();
  EXPECT_EQ(std::count(topics.begin(), topics.end(), "bzzz/meta/issue/7"), 0);
  ASSERT_TRUE(nodes_[1]->Publish(IssueTopic("7"), "hmmm", "two").ok());
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(second.load(), 1);
}

TEST_F(P2pClusterTest, DirectMessagesReachOnlyTheRecipient) {
  std::mutex mu;
  std::vector<Message> got;
  std::atomic<int> others{0};
  for (int i = 0; i < kNodes; ++i) {
    nodes_[i]->OnDirect("ping", [&, i](const Message& m) {
      if (i == 3) {
        std::lock_guard lock(mu);
        got.push_back(m);
      } else {
        ++others;
      }
    });
  }
  ASSERT_TRUE(nodes_[1]->SendDirect(nodes_[3]->node_id(), "ping", "secret payload").ok());
  EXPECT_TRUE(Eventually(
      [&] {
        std::lock_guard lock(mu);
        return got.size() == 1;
      },
      5s));
  std::lock_guard lock(mu);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope.from, nodes_[1]->node_id());
  EXPECT_EQ(got[0].envelope.data, "secret payload");
  EXPECT_EQ(others.load(), 0);
  EXPECT_EQ(nodes_[1]->SendDirect("0000000000000000000000000000000000000000", "ping", "x").code(),
            StatusCode::kNotFound);
}

TEST_F(P2pClusterTest, SilentPeerExpires) {
  const std::string gone = nodes_[4]->node_id();
  nodes_[4]->Stop();
  EXPECT_TRUE(Eventually([&] { return !nodes_[0]->FindPeer(gone).has_value(); }, 5s));
  EXPECT_EQ(nodes_[0]->ConnectedPeers(), static_cast<std::size_t>(kNodes - 2));
}

TEST(P2pNodeTest, RestartKeepsIdentityAndRejoins) {
  testing::TempDir dir;
  auto seed = testing::StartP2pNode("seed", {});
  ASSERT_NE(seed, nullptr);
  const std::string seed_addr = "127.0.0.1:" + std::to_string(seed->port());
  auto node = testing::StartP2pNode("restarting", {seed_addr}, dir.path());
  ASSERT_NE(node, nullptr);
  const std::string id = node->node_id();
  const std::uint16_t port = node->port();
  ASSERT_TRUE(Eventually([&] { return seed->FindPeer(id).has_value(); }, 5s));
  node->Stop();
  node.reset();
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/p2p/peers"));
  ASSERT_TRUE(Eventually([&] { return !seed->FindPeer(id).has_value(); }, 5s));

  // Restarted on its port without bootstrap peers: the saved peer store is enough.
  config::P2pConfig cfg = testing::FastP2pConfig();
  cfg.listen = "127.0.0.1:" + std::to_string(port);
  node = testing::StartP2pNode("restarting", {}, dir.path(), cfg);
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->node_id(), id);
  EXPECT_TRUE(Eventually([&] { return seed->FindPeer(id).has_value() && node->FindPeer(seed->node_id()); }, 5s));
}

TEST(P2pNodeTest, PresenceChangeArrivesAtOnceNotAtTheNextPoll) {
  config::P2pConfig slow = testing::FastP2pConfig();
  slow.presence_interval = std::chrono::seconds(20);  // far beyond the waits below
  slow.peer_expiry = std::chrono::seconds(60);
  auto a = testing::StartP2pNode("a", {}, "", slow);
  ASSERT_NE(a, nullptr);
  auto b = testing::StartP2pNode("b", {"127.0.0.1:" + std::to_string(a->port())}, "", slow);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(Eventually([&] { return a->FindPeer(b->node_id()) && b->FindPeer(a->node_id()); }, 5s));
  Presence p = b->CurrentPresence();
  p.status = "busy";
  p.current_tasks = 5;
  b->UpdatePresence(p);
  EXPECT_TRUE(Eventually(
      [&] {
        auto peer = a->FindPeer(b->node_id());
        return peer && peer->presence.status == "busy" && peer->presence.current_tasks == 5;
      },
      3s));
}

TEST(P2pNodeTest, RefusesToRunWithoutAClusterAndBadInput) {
  EXPECT_EQ(testing::StartP2pNode("nobody", {}, "", testing::FastP2pConfig(), nullptr, /*no_membership=*/true),
            nullptr);
  EXPECT_EQ(testing::StartP2pNode("fresh", {}, "", testing::FastP2pConfig(), cluster::Membership::Open("").value()),
            nullptr);

  auto node = testing::StartP2pNode("alone", {});
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->Publish("bad topic", "t", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(node->Publish(kCoordinationTopic, "", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(node->Publish(kCoordinationTopic, "t", std::string(70 * 1024, 'x')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(node->Subscribe("", "s", [](const Message&) {}).code(), StatusCode::kInvalidArgument);
}

TEST(P2pNodeTest, LoneNodeReceivesItsOwnProbe) {
  auto node = testing::StartP2pNode("alone", {});
  ASSERT_NE(node, nullptr);
  std::atomic<int> got{0};
  SubscribeOptions own;
  own.receive_own = true;
  ASSERT_TRUE(node->Subscribe("bzzz/internal/health/x", "probe", [&](const Message&) { ++got; }, own).ok());
  ASSERT_TRUE(node->Publish("bzzz/internal/health/x", "probe", "n").ok());
  EXPECT_TRUE(Eventually([&] { return got.load() == 1; }, 3s));
}

TEST(P2pNodeTest, FullOutgoingQueueRefusesAndCounts) {
  config::P2pConfig cfg = testing::FastP2pConfig();
  cfg.pubsub.queue_capacity = 16;
  auto node = testing::StartP2pNode("small", {}, "", cfg);
  ASSERT_NE(node, nullptr);
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    Status s = node->Publish(kCoordinationTopic, "t", std::string(2000, 'x'));
    if (s.code() == StatusCode::kResourceExhausted) ++refused;
  }
  EXPECT_GT(refused, 0);
  EXPECT_GE(node->Stats().dropped, static_cast<std::uint64_t>(refused));
}

}  // namespace
}  // namespace bzzz::p2p
