// The pubsub mesh (p2p/mesh.h) between real P2P nodes on loopback: frames
// over member links, strangers refused at the handshake, back-pressure to
// the publisher and drops that add up.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "base/hex.h"
#include "cluster/membership.h"
#include "p2p/cluster.h"
#include "p2p/topics.h"
#include "p2p/wire.h"
#include "support/support.h"

namespace bzzz::p2p {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;

constexpr std::string_view kTopic = "bzzz/internal/mesh-test/v1";

std::vector<std::unique_ptr<P2pNode>> StartLinked(int n, config::P2pConfig cfg = testing::FastP2pConfig(),
                                                  std::vector<config::P2pConfig> per_node = {}) {
  std::vector<std::unique_ptr<P2pNode>> nodes;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> seeds;
    for (const auto& node : nodes) seeds.push_back("127.0.0.1:" + std::to_string(node->port()));
    auto node = testing::StartP2pNode("mesh" + std::to_string(i), seeds, "",
                                      i < static_cast<int>(per_node.size()) ? per_node[i] : cfg);
    if (!node) return {};
    nodes.push_back(std::move(node));
  }
  const bool linked = Eventually(
      [&] {
        for (const auto& node : nodes) {
          if (node->Links().size() != static_cast<std::size_t>(n - 1)) return false;
        }
        return true;
      },
      15s);
  if (!linked) return {};
  return nodes;
}

std::uint64_t Reason(const PubsubStats& s, const std::string& reason) {
  auto it = s.dropped_by_reason.find(reason);
  return it == s.dropped_by_reason.end() ? 0 : it->second;
}

TEST(MeshTest, MessagesTravelOverMemberLinksToEverySubscriber) {
  auto nodes = StartLinked(3);
  ASSERT_EQ(nodes.size(), 3u) << "the members did not link up";
  std::atomic<int> got1{0}, got2{0};
  ASSERT_TRUE(nodes[1]->Subscribe(kTopic, "t", [&](const Message& m) { got1 += m.envelope.from == nodes[0]->node_id(); }).ok());
  ASSERT_TRUE(nodes[2]->Subscribe(kTopic, "t", [&](const Message&) { ++got2; }).ok());
  // The subscriptions reach the publisher over the links.
  ASSERT_TRUE(Eventually(
      [&] {
        std::size_t subscribed = 0;
        for (const auto& l : nodes[0]->Links()) subscribed += l.topics >= 2 ? 1 : 0;  // presence + kTopic
        return subscribed == 2;
      },
      5s));
  constexpr int kMessages = 3000;
  for (int i = 0; i < kMessages; ++i) {
    while (nodes[0]->Publish(kTopic, "m", std::string(512, 'x')).code() == StatusCode::kResourceExhausted) {
      std::this_thread::sleep_for(1ms);
    }
  }
  EXPECT_TRUE(Eventually([&] { return got1.load() == kMessages && got2.load() == kMessages; }, 10s))
      << got1.load() << " and " << got2.load() << " of " << kMessages;
  std::uint64_t frames = 0;
  for (const auto& l : nodes[0]->Links()) frames += l.frames_sent;
  EXPECT_GT(frames, 0u);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(got2.load(), kMessages) << "a message was delivered twice";
  EXPECT_EQ(Reason(nodes[1]->Stats(), "queue_full"), 0u);
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Links that carry nothing cost nothing: no I/O thread spins (a dialed
// link once left a level-triggered EPOLLOUT on and took a core each).
TEST(MeshTest, IdleLinksDoNotSpin) {
  auto nodes = StartLinked(3);
  ASSERT_EQ(nodes.size(), 3u);
  std::this_thread::sleep_for(500ms);
  const double before = CpuSeconds();
  std::this_thread::sleep_for(2s);
  const double used = CpuSeconds() - before;
  EXPECT_LT(used, 0.5) << "three idle nodes used " << used << " CPU seconds in 2 s";
}

// A node that stops while its links are full sends what is queued without
// waiting for room (it used to wait up to a second per frame), and counts
// what it drops.
TEST(MeshTest, StoppingWithFullLinksDoesNotWaitPerFrame) {
  config::P2pConfig pub = testing::FastP2pConfig();
  pub.pubsub.queue_capacity = 256;
  pub.pubsub.link_buffer_bytes = 64 * 1024;
  config::P2pConfig sub = testing::FastP2pConfig();
  sub.pubsub.queue_capacity = 16;
  auto nodes = StartLinked(2, pub, {pub, sub});
  ASSERT_EQ(nodes.size(), 2u);
  std::atomic<bool> release{false};
  ASSERT_TRUE(nodes[1]->Subscribe(kTopic, "stuck", [&](const Message&) {
                          while (!release.load()) std::this_thread::sleep_for(5ms);
                        }).ok());
  ASSERT_TRUE(Eventually([&] { return !nodes[0]->Links().empty() && nodes[0]->Links()[0].topics >= 2; }, 5s));
  const std::string payload(16 * 1024, 'x');
  int accepted = 0;
  for (int i = 0; i < 2000 && accepted < 400; ++i) {
    if (nodes[0]->Publish(kTopic, "m", payload).ok()) ++accepted;
    std::this_thread::sleep_for(1ms);
  }
  // The publisher is now waiting on the full link with its queue full.
  const auto start = std::chrono::steady_clock::now();
  nodes[0]->Stop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 5s) << "stopping took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  EXPECT_GT(Reason(nodes[0]->Stats(), "link_full") + Reason(nodes[0]->Stats(), "link_closed"), 0u);
  release = true;
}

// p2p.pubsub.dht_copy: every frame also goes through the DHT (retention);
// the subscriber gets each message once and drops the second copy as a
// duplicate, whichever path brought the first.
TEST(MeshTest, WithTheDhtCopyEachMessageArrivesOnce) {
  config::P2pConfig cfg = testing::FastP2pConfig();
  cfg.pubsub.dht_copy = true;
  auto nodes = StartLinked(2, cfg);
  ASSERT_EQ(nodes.size(), 2u);
  std::atomic<int> got{0};
  ASSERT_TRUE(nodes[1]->Subscribe(kTopic, "t", [&](const Message& m) { got += m.envelope.type == "once"; }).ok());
  ASSERT_TRUE(Eventually([&] { return !nodes[0]->Links().empty() && nodes[0]->Links()[0].topics >= 2; }, 5s));
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(nodes[0]->Publish(kTopic, "once", std::to_string(i)).ok());
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(Eventually([&] { return got.load() == 20 && Reason(nodes[1]->Stats(), "duplicate") >= 20; }, 10s))
      << got.load() << " delivered, " << Reason(nodes[1]->Stats(), "duplicate") << " duplicates";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(got.load(), 20);
}

// A raw TCP client on a member's link port.
class RawLink {
 public:
  explicit RawLink(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
  }
  ~RawLink() { ::close(fd_); }
  bool connected() const { return connected_; }

  void Send(std::uint8_t type, const Bytes& body) {
    Bytes m;
    const std::uint32_t len = static_cast<std::uint32_t>(body.size() + 1);
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
    m.push_back(type);
    m.insert(m.end(), body.begin(), body.end());
    (void)!::send(fd_, m.data(), m.size(), MSG_NOSIGNAL);
  }
  // One link message (type, body); nullopt when the peer closed or 3 s passed.
  std::optional<std::pair<std::uint8_t, Bytes>> Receive() {
    std::uint8_t head[5];
    if (!ReadExactly(head, 5)) return std::nullopt;
    const std::uint32_t len = head[0] | (head[1] << 8) | (head[2] << 16) | (static_cast<std::uint32_t>(head[3]) << 24);
    Bytes body(len - 1);
    if (!ReadExactly(body.data(), body.size())) return std::nullopt;
    return std::make_pair(head[4], std::move(body));
  }
  // Whether the peer closed the connection (reading until EOF, 3 s at most).
  bool ClosedByPeer() {
    for (;;) {
      auto m = Receive();
      if (!m) return eof_;
    }
  }

 private:
  bool ReadExactly(std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 3000) <= 0) return false;
      const ssize_t r = ::recv(fd_, p, n, 0);
      if (r <= 0) {
        eof_ = true;
        return false;
      }
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
};

Bytes Hello(const NodeIdentity& id, const std::string& credential, const std::string& challenge) {
  Frame f;
  f.kind = FrameKind::kLink;
  f.credential = credential;
  f.seq = 1;
  f.sent_at_ns = 1;
  f.topic = "link";
  f.messages.push_back({"hello", 1, 0, challenge});
  return EncodeFrame(f, id).value();
}

TEST(MeshTest, AStrangerGetsNoLinkAndNoMessages) {
  auto nodes = StartLinked(2);
  ASSERT_EQ(nodes.size(), 2u);
  ASSERT_TRUE(nodes[0]->Subscribe(kTopic, "t", [](const Message&) {}).ok());
  const std::uint16_t port = nodes[0]->link_port();

  // 1. A node of another cluster: its hello verifies, its credential does not.
  const auto other = cluster::ClusterAuthority::Generate();
  const auto stranger = NodeIdentity::Generate();
  const std::string foreign_credential = testing::MemberOf(other, stranger)->credential();
  const auto rejected = nodes[0]->Stats().rejected;
  {
    RawLink raw(port);
    ASSERT_TRUE(raw.connected());
    auto challenge = raw.Receive();
    ASSERT_TRUE(challenge && challenge->first == 1 && challenge->second.size() == 32);
    raw.Send(1, Bytes(32, 7));  // our challenge: the node answers with its own signed hello
    auto hello = raw.Receive();
    ASSERT_TRUE(hello && hello->first == 2);
    EXPECT_TRUE(DecodeFrame(hello->second.data(), hello->second.size()).ok());
    raw.Send(2, Hello(stranger, foreign_credential, HexOf(challenge->second.data(), challenge->second.size())));
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  EXPECT_TRUE(Eventually([&] { return nodes[0]->Stats().rejected > rejected; }, 3s));

  // 2. A member's hello replayed on another connection: signed over another challenge.
  {
    RawLink raw(port);
    auto challenge = raw.Receive();
    ASSERT_TRUE(challenge);
    const auto member = NodeIdentity::Generate();
    raw.Send(2, Hello(member, testing::MemberOf(testing::TestClusterKey(), member)->credential(), HexOf(Bytes(32, 1).data(), 32)));
    EXPECT_TRUE(raw.ClosedByPeer());
  }

  // 3. Data or subscriptions before the handshake close the connection.
  {
    RawLink raw(port);
    ASSERT_TRUE(raw.Receive());
    raw.Send(3, Bytes(kTopic.begin(), kTopic.end()));
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  EXPECT_EQ(nodes[0]->Links().size(), 1u);  // only the member

  // 4. A member with a valid hello links up and is told the subscriptions.
  {
    const auto member = NodeIdentity::Generate();
    RawLink raw(port);
    auto challenge = raw.Receive();
    ASSERT_TRUE(challenge);
    raw.Send(2, Hello(member, testing::MemberOf(testing::TestClusterKey(), member)->credential(),
                      HexOf(challenge->second.data(), challenge->second.size())));
    bool told = false;
    for (int i = 0; i < 5 && !told; ++i) {
      auto m = raw.Receive();
      if (!m) break;
      told = m->first == 3 && std::string(m->second.begin(), m->second.end()).find(kTopic) != std::string::npos;
    }
    EXPECT_TRUE(told);
    EXPECT_TRUE(Eventually([&] { return nodes[0]->Links().size() == 2; }, 3s));
  }
}

// The lazy repair, driven by hand over a raw member link R to node A:
// A offers (ihave) a frame of B's that R is not known to hold and answers
// R's iwant with it; R offers one of its own that A asks for and delivers,
// counted as repaired.
TEST(MeshTest, GapsAreRepairedByIHaveAndIWant) {
  auto nodes = StartLinked(2);
  ASSERT_EQ(nodes.size(), 2u);
  std::atomic<int> got{0};
  ASSERT_TRUE(nodes[0]->Subscribe(kTopic, "t", [&](const Message& m) { got += m.envelope.type == "from-r"; }).ok());
  const auto member = NodeIdentity::Generate();
  const std::string credential = testing::MemberOf(testing::TestClusterKey(), member)->credential();
  RawLink raw(nodes[0]->link_port());
  auto challenge = raw.Receive();
  ASSERT_TRUE(challenge);
  raw.Send(2, Hello(member, credential, HexOf(challenge->second.data(), challenge->second.size())));
  raw.Send(3, Bytes(kTopic.begin(), kTopic.end()));
  ASSERT_TRUE(Eventually([&] { return nodes[0]->Links().size() == 2; }, 3s));

  // 1. B publishes; only A is linked to B, and A does not forward (B
  //    reached every subscriber it knows), so R gets it only by asking.
  ASSERT_TRUE(nodes[1]->Publish(kTopic, "from-b", "x").ok());
  Bytes want;
  for (int i = 0; i < 20 && want.empty(); ++i) {
    auto m = raw.Receive();
    ASSERT_TRUE(m) << "no ihave from A";
    if (m->first == 5) want = m->second;  // ihave: ids of frames A holds
  }
  ASSERT_EQ(want.size(), 40u);
  raw.Send(6, want);  // iwant
  std::optional<Frame> repaired;
  for (int i = 0; i < 20 && !repaired; ++i) {
    auto m = raw.Receive();
    ASSERT_TRUE(m) << "no answer to the iwant";
    if (m->first != 4) continue;
    EXPECT_EQ(m->second[0], 2) << "answers to an iwant are flagged as repairs";
    const Decoded d = DecodeFrame(m->second.data() + 1, m->second.size() - 1);
    ASSERT_TRUE(d.ok());
    repaired = d.frame;
  }
  ASSERT_TRUE(repaired);
  EXPECT_EQ(repaired->sender, nodes[1]->identity().public_key());
  EXPECT_EQ(repaired->messages.at(0).type, "from-b");

  // 2. R offers a frame of its own; A asks for it and delivers it.
  Frame f;
  f.kind = FrameKind::kPubsub;
  f.credential = credential;
  f.seq = 42;
  const std::int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  f.sent_at_ns = now_us * 1000;
  f.topic = std::string(kTopic);
  f.messages.push_back({"from-r", now_us, 0, "y"});
  const Bytes frame = EncodeFrame(f, member).value();
  Bytes id(member.public_key().begin(), member.public_key().end());
  for (int i = 0; i < 8; ++i) id.push_back(static_cast<std::uint8_t>(f.seq >> (8 * i)));
  raw.Send(5, id);  // ihave
  bool asked = false;
  for (int i = 0; i < 20 && !asked; ++i) {
    auto m = raw.Receive();
    ASSERT_TRUE(m) << "A did not ask for the frame";
    asked = m->first == 6 && m->second == id;
  }
  Bytes data{2};
  data.insert(data.end(), frame.begin(), frame.end());
  raw.Send(4, data);
  EXPECT_TRUE(Eventually([&] { return got.load() == 1; }, 3s));
  // Counted by the link's reader right after the frame reached the
  // subscriber queue (the handler may run first).
  EXPECT_TRUE(Eventually([&] { return nodes[0]->Stats().repaired == 1u; }, 3s));
  raw.Send(5, id);  // offered again: A has it, asks for nothing
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(got.load(), 1);
}

// A subscriber that is slow, then stuck for a while: the publisher is told
// (ResourceExhausted) and every message that does not arrive is counted
// where it was dropped, so published = delivered + drops - repaired (a
// frame dropped for a full link may still arrive by the lazy repair).
TEST(MeshTest, ASlowSubscriberPushesBackAndEveryDropIsCounted) {
  config::P2pConfig pub = testing::FastP2pConfig();
  pub.pubsub.queue_capacity = 64;
  pub.pubsub.link_buffer_bytes = 64 * 1024;
  config::P2pConfig sub = testing::FastP2pConfig();
  sub.pubsub.queue_capacity = 16;
  auto nodes = StartLinked(2, pub, {pub, sub});
  ASSERT_EQ(nodes.size(), 2u);
  std::atomic<std::uint64_t> delivered{0};
  ASSERT_TRUE(nodes[1]->Subscribe(kTopic, "slow", [&](const Message& m) {
                          if (m.envelope.type == "stall") {
                            std::this_thread::sleep_for(3s);  // stuck: queues fill, then drop
                          } else {
                            std::this_thread::sleep_for(100us);
                          }
                          ++delivered;
                        }).ok());
  ASSERT_TRUE(Eventually([&] { return !nodes[0]->Links().empty() && nodes[0]->Links()[0].topics >= 2; }, 5s));
  std::uint64_t accepted = 0, refused = 0;
  const std::string payload(4096, 'x');
  const auto until = std::chrono::steady_clock::now() + 6s;
  bool stall_sent = false;
  while (std::chrono::steady_clock::now() < until) {
    const bool stall_now = !stall_sent && accepted >= 1000;
    const Status s = nodes[0]->Publish(kTopic, stall_now ? "stall" : "m", payload);
    if (s.ok()) {
      ++accepted;
      stall_sent |= stall_now;
    } else {
      ASSERT_EQ(s.code(), StatusCode::kResourceExhausted);
      ++refused;
      std::this_thread::sleep_for(200us);
    }
  }
  EXPECT_GT(refused, 0u) << "the publisher was never told to slow down";
  auto drops_at_publisher = [&] {
    std::uint64_t n = 0;
    for (const auto& l : nodes[0]->Links()) n += l.messages_dropped;
    return n;
  };
  auto total = [&] {
    const auto s = nodes[1]->Stats();
    return delivered.load() + drops_at_publisher() + Reason(s, "queue_full") - s.repaired;
  };
  EXPECT_TRUE(Eventually([&] { return total() == accepted; }, 20s))
      << "published " << accepted << ", delivered " << delivered.load() << ", dropped at the publisher "
      << drops_at_publisher() << ", dropped at the subscriber " << Reason(nodes[1]->Stats(), "queue_full")
      << ", repaired " << nodes[1]->Stats().repaired;
  EXPECT_GT(drops_at_publisher() + Reason(nodes[1]->Stats(), "queue_full"), 0u) << "the stall dropped nothing";
  EXPECT_EQ(Reason(nodes[0]->Stats(), "link_full"), drops_at_publisher());
}

}  // namespace
}  // namespace bzzz::p2p
