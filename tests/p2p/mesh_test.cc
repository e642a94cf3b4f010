// The pubsub mesh (p2p/mesh.h) between real P2P nodes on loopback: frames
// over member links, strangers refused at the handshake, link messages
// tagged (a changed or replayed one closes the link), back-pressure to the
// publisher and drops that add up.
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
#include "p2p/mesh.h"
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

// A raw TCP client on a member's link port. Once keyed (Key, after its
// hello), it tags what it sends and checks the tags of what it receives,
// as a member's link does.
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

  // The link keys, as the dialing end: this end's identity and challenge,
  // the node's key and challenge.
  void Key(const NodeIdentity& me, const PublicKey& node, const Bytes& my_challenge, const Bytes& node_challenge) {
    const auto keys = internal::LinkKeysOf(me.SharedSecret(node).value(), my_challenge.data(), node_challenge.data());
    send_key_ = keys.dialer_to_acceptor;
    recv_key_ = keys.acceptor_to_dialer;
    keyed_ = true;
  }
  // A link message's bytes (tagged when keyed: the next number is used up).
  Bytes Message(std::uint8_t type, const Bytes& body) {
    Bytes m;
    const std::uint32_t len = static_cast<std::uint32_t>(body.size() + 1 + (keyed_ ? internal::kLinkTagBytes : 0));
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
    m.push_back(type);
    m.insert(m.end(), body.begin(), body.end());
    if (keyed_) {
      const auto tag = internal::LinkTagOf(send_key_, sent_++, m.data() + 4, m.size() - 4);
      m.insert(m.end(), tag.begin(), tag.end());
    }
    return m;
  }
  void SendBytes(const Bytes& m) { (void)!::send(fd_, m.data(), m.size(), MSG_NOSIGNAL); }
  void Send(std::uint8_t type, const Bytes& body) { SendBytes(Message(type, body)); }
  // One link message (type, body); nullopt when the peer closed, 3 s
  // passed or (keyed) its tag does not verify.
  std::optional<std::pair<std::uint8_t, Bytes>> Receive() {
    std::uint8_t head[5];
    if (!ReadExactly(head, 5)) return std::nullopt;
    const std::uint32_t len = head[0] | (head[1] << 8) | (head[2] << 16) | (static_cast<std::uint32_t>(head[3]) << 24);
    Bytes body(len - 1);
    if (!ReadExactly(body.data(), body.size())) return std::nullopt;
    if (keyed_ && head[4] != 1 && head[4] != 2) {
      if (body.size() < internal::kLinkTagBytes) return std::nullopt;
      Bytes signed_part{head[4]};
      signed_part.insert(signed_part.end(), body.begin(), body.end() - internal::kLinkTagBytes);
      const auto want = internal::LinkTagOf(recv_key_, received_++, signed_part.data(), signed_part.size());
      if (!std::equal(want.begin(), want.end(), body.end() - internal::kLinkTagBytes)) {
        ADD_FAILURE() << "a link message from the node whose tag does not verify";
        return std::nullopt;
      }
      body.resize(body.size() - internal::kLinkTagBytes);
    }
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
  bool keyed_ = false;
  internal::LinkKey send_key_{}, recv_key_{};
  std::uint64_t sent_ = 0, received_ = 0;
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

// A signed pubsub frame of `sender` on the test topic, one message, now.
Bytes PubsubFrame(const NodeIdentity& sender, const std::string& credential, std::uint64_t seq,
                  const std::string& type, const std::string& data) {
  Frame f;
  f.kind = FrameKind::kPubsub;
  f.credential = credential;
  f.seq = seq;
  const std::int64_t now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  f.sent_at_ns = now_us * 1000;
  f.topic = std::string(kTopic);
  f.messages.push_back({type, now_us, 0, data});
  return EncodeFrame(f, sender).value();
}

// Dials node `port` as `member` (its credential), through the handshake,
// keyed. False when the node did not answer as a member's link would.
bool LinkAs(RawLink& raw, const NodeIdentity& member, const std::string& credential, const PublicKey& node) {
  auto challenge = raw.Receive();
  if (!challenge || challenge->first != 1 || challenge->second.size() != 32) return false;
  const Bytes mine(32, 9);
  raw.Send(1, mine);
  auto hello = raw.Receive();
  if (!hello || hello->first != 2) return false;
  raw.Send(2, Hello(member, credential, HexOf(challenge->second.data(), challenge->second.size())));
  raw.Key(member, node, mine, challenge->second);
  return true;
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
    raw.Send(1, Bytes(32, 7));
    ASSERT_TRUE(raw.Receive());  // the node's hello
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

  // 3b. A member's valid hello before its own challenge: no link keys can
  //     be agreed on, so no link.
  {
    const auto member = NodeIdentity::Generate();
    RawLink raw(port);
    auto challenge = raw.Receive();
    ASSERT_TRUE(challenge);
    raw.Send(2, Hello(member, testing::MemberOf(testing::TestClusterKey(), member)->credential(),
                      HexOf(challenge->second.data(), challenge->second.size())));
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  EXPECT_EQ(nodes[0]->Links().size(), 1u);

  // 4. A member with a valid hello links up and is told the subscriptions
  //    (tagged: Receive checks).
  {
    const auto member = NodeIdentity::Generate();
    RawLink raw(port);
    ASSERT_TRUE(LinkAs(raw, member, testing::MemberOf(testing::TestClusterKey(), member)->credential(),
                       nodes[0]->identity().public_key()));
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
  ASSERT_TRUE(LinkAs(raw, member, credential, nodes[0]->identity().public_key()));
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
  const std::uint64_t seq = 42;
  const Bytes frame = PubsubFrame(member, credential, seq, "from-r", "y");
  Bytes id(member.public_key().begin(), member.public_key().end());
  for (int i = 0; i < 8; ++i) id.push_back(static_cast<std::uint8_t>(seq >> (8 * i)));
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
// Link authentication, over a raw member link R to node A: every message
// after the handshake carries its tag; one changed or replayed closes the
// link. A frame from R itself, not to be forwarded, is vouched for by the
// link (its signature is not checked again); a frame R forwards, or one of
// another sender, must verify.
TEST(MeshTest, EveryLinkMessageIsTaggedAndAChangedOrReplayedOneClosesTheLink) {
  auto nodes = StartLinked(2);
  ASSERT_EQ(nodes.size(), 2u);
  std::atomic<int> got{0};
  ASSERT_TRUE(nodes[0]->Subscribe(kTopic, "t", [&](const Message&) { ++got; }).ok());
  const PublicKey node_key = nodes[0]->identity().public_key();
  const auto member = NodeIdentity::Generate();
  const std::string credential = testing::MemberOf(testing::TestClusterKey(), member)->credential();
  const Bytes topic(kTopic.begin(), kTopic.end());

  // 1. A byte of a tagged message changed on the way.
  {
    RawLink raw(nodes[0]->link_port());
    ASSERT_TRUE(LinkAs(raw, member, credential, node_key));
    ASSERT_TRUE(Eventually([&] { return nodes[0]->Links().size() == 2; }, 3s));
    Bytes m = raw.Message(3, topic);
    m[m.size() - internal::kLinkTagBytes - 1] ^= 1;
    raw.SendBytes(m);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  ASSERT_TRUE(Eventually([&] { return nodes[0]->Links().size() == 1; }, 3s));
  // 2. A tagged message sent twice: the second carries the first's number.
  {
    RawLink raw(nodes[0]->link_port());
    ASSERT_TRUE(LinkAs(raw, member, credential, node_key));
    const Bytes m = raw.Message(3, topic);
    raw.SendBytes(m);
    raw.SendBytes(m);
    EXPECT_TRUE(raw.ClosedByPeer());
  }
  ASSERT_TRUE(Eventually([&] { return nodes[0]->Links().size() == 1; }, 3s));

  // 3. Frames with a broken signature over a good link.
  RawLink raw(nodes[0]->link_port());
  ASSERT_TRUE(LinkAs(raw, member, credential, node_key));
  raw.Send(3, topic);
  ASSERT_TRUE(Eventually([&] { return nodes[0]->Links().size() == 2; }, 3s));
  auto frame_of = [&](const NodeIdentity& sender, std::uint64_t seq) {
    Bytes bytes =
        PubsubFrame(sender, testing::MemberOf(testing::TestClusterKey(), sender)->credential(), seq, "m", "z");
    bytes.back() ^= 1;  // the signature's last byte
    return bytes;
  };
  auto data = [](std::uint8_t flags, const Bytes& frame) {
    Bytes d{flags};
    d.insert(d.end(), frame.begin(), frame.end());
    return d;
  };
  const auto rejected = nodes[0]->Stats().rejected;
  raw.Send(4, data(0, frame_of(member, 1)));  // R's own: the link vouches for it
  EXPECT_TRUE(Eventually([&] { return got.load() == 1; }, 3s));
  raw.Send(4, data(1, frame_of(member, 2)));  // R's own, to be forwarded: verified, refused
  const auto other = NodeIdentity::Generate();
  raw.Send(4, data(0, frame_of(other, 3)));  // another sender's: verified, refused
  EXPECT_TRUE(Eventually([&] { return nodes[0]->Stats().rejected == rejected + 2; }, 3s))
      << nodes[0]->Stats().rejected - rejected;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(got.load(), 1);
  EXPECT_EQ(nodes[0]->Links().size(), 2u);  // a bad frame is refused, the link stays
}

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
