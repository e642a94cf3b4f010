// Rogue peers against real nodes (docs/security.md, threat model). Two
// nodes form a cluster; then, from this test process:
//   - a stranger: a P2P node of a cluster of its own, on the same network id
//     and bootstrap peer, that learned every address it could (the nodes'
//     keys, their link ports). It announces presence, sends a task grant and
//     an offer with a huge term straight to a node, and a heartbeat with a
//     huge term naming itself the only member of the electorate (through the
//     DHT and straight to a member link);
//   - an admitted worker (a real credential of this cluster, role worker):
//     it tries the admin's messages (a heartbeat of a huge term, an offer, a
//     grant nobody assigned).
// Nothing changes: same admin and term, no borrowed task, the stranger is
// not a peer; every refusal is counted where it happens.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "cluster/membership.h"
#include "e2e/cluster.h"
#include "election/wire.h"
#include "p2p/p2p.h"
#include "p2p/topics.h"
#include "support/support.h"

namespace bzzz {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Eventually;
using testing::ReadFile;
using e2e::Cluster;

double Metric(const Cluster& c, int i, const std::string& series) {
  cli::ClientOptions o;
  o.url = c.Url(i);
  o.token = e2e::kAdminToken;
  auto r = cli::Call(o, "GET", "/metrics");
  if (!r.ok()) return -1;
  const auto at = r->body.find(series + " ");
  return at == std::string::npos ? 0 : std::stod(r->body.substr(at + series.size() + 1));
}

std::unique_ptr<p2p::P2pNode> StartRogue(const std::string& name, std::uint32_t network_id, const std::string& seed,
                                         std::shared_ptr<cluster::Membership> membership, p2p::NodeIdentity id) {
  p2p::Options o;
  o.config.listen = "127.0.0.1:0";
  o.config.bootstrap = {seed};
  o.config.network_id = network_id;
  o.config.presence_interval = 300ms;
  o.config.peer_expiry = 3s;
  o.config.max_peer_requests_per_sec = -1;
  o.node_name = name;
  o.presence.agent_id = name;
  o.membership = std::move(membership);
  auto node = p2p::P2pNode::Start(std::move(o), std::move(id), nullptr);
  return node.ok() ? std::move(node).value() : nullptr;
}

void SendDatagram(std::uint16_t port, const p2p::Bytes& frame) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  ::close(fd);
}

p2p::Bytes Heartbeat(const p2p::NodeIdentity& signer, const std::string& credential, const std::string& cluster_id,
                     std::uint64_t term) {
  election::Message m;
  m.type = election::MessageType::kHeartbeat;
  m.from = signer.node_id();
  m.cluster = cluster_id;
  m.term = term;
  m.config = election::ConfigId{term, 99};
  m.members = {signer.node_id()};
  p2p::Frame f;
  f.kind = p2p::FrameKind::kPubsub;
  f.credential = credential;
  f.seq = static_cast<std::uint64_t>(cluster::NowMs()) * 1000;
  f.sent_at_ns = cluster::NowMs() * 1'000'000;
  f.topic = std::string(p2p::kElectionTopic);
  f.messages.push_back({std::string(election::kMessageType), cluster::NowMs() * 1000, 0, election::EncodeMessage(m)});
  return p2p::EncodeFrame(f, signer).value();
}

std::string Grant(const std::string& worker) {
  return json{{"jobs",
               {{{"task_id", "rogue-task"},
                 {"attempt", 1},
                 {"agent_id", "remote:" + worker},
                 {"executor", "command"},
                 {"input", R"({"argv":["/bin/sh","-c","echo pwned"]})"},
                 {"timeout_ms", 5000}}}}}
      .dump();
}

TEST(RogueEndToEnd, StrangersAndWorkersCannotActAsTheAdmin) {
  Cluster c;
  const std::string seed = "127.0.0.1:" + std::to_string(c.bootstrap_port);
  const std::vector<std::string> fast = {"--set", "election.autopilot.stabilization_time=1s"};
  std::vector<std::string> first = {"--set", "p2p.listen=" + seed};
  first.insert(first.end(), fast.begin(), fast.end());
  c.StartNode(0, false, first);
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health").is_object(); }, 15s)) << ReadFile(c.logs[0]);
  auto t = c.Cli({"cluster", "token", "create", "--url", c.Url(0), "--role", "admin-capable"});
  const std::string token = Cluster::TokenIn(t.second);
  ASSERT_FALSE(token.empty()) << t.second;
  std::vector<std::string> second = {"--bootstrap", seed, "--join", token};
  second.insert(second.end(), fast.begin(), fast.end());
  c.StartNode(1, false, second);
  ASSERT_TRUE(Eventually(
      [&] {
        const json s = c.Get(1, "/api/election/status");
        return s.is_object() && s["member"] == true && s["admin_id"].is_string();
      },
      30s))
      << ReadFile(c.logs[1]);
  const json before = c.Get(0, "/api/election/status");
  ASSERT_EQ(before["state"], "admin");
  const std::uint64_t term = before["term"];
  const json status0 = c.Get(0, "/admin/status");
  const std::uint32_t network_id = status0["p2p"]["network_id"];
  const std::uint16_t link0 = status0["p2p"]["link_port"];
  const std::uint16_t link1 = c.Get(1, "/admin/status")["p2p"]["link_port"];
  // What an attacker on the host can learn: the keys (here straight from the
  // data directories) and every port.
  const auto key0 = p2p::NodeIdentity::LoadOrCreate(c.dir.File("n0") + "/p2p").value().public_key();

  // --- a stranger: a cluster of its own on the same network ---
  {
    auto id = p2p::NodeIdentity::Generate();
    auto own = cluster::Membership::Open("").value();
    ASSERT_TRUE(own->Found(id.public_key(), cluster::NodeRole::kAdminCapable, "stranger", 1h).ok());
    const std::string credential = own->credential();
    auto stranger = StartRogue("stranger", network_id, seed, own, id);
    ASSERT_NE(stranger, nullptr);
    const double refused_before = Metric(c, 0, "no_security_violations_total{kind=\"p2p_foreign_cluster\"}");
    for (int i = 0; i < 5; ++i) {
      const auto hb = Heartbeat(id, credential, before["cluster"], term + 1'000'000);
      ASSERT_TRUE(stranger->PublishRawFrame(p2p::kElectionTopic, hb).ok());
      SendDatagram(link0, hb);
      SendDatagram(link1, hb);
      ASSERT_TRUE(stranger->SendDirectToKey(key0, "tasks.grant", Grant(before["node_id"])).ok());
      ASSERT_TRUE(stranger
                      ->SendDirectToKey(key0, "tasks.offer",
                                        json{{"term", term + 1'000'000},
                                             {"worker", stranger->node_id()},
                                             {"count", 100},
                                             {"executors", {"builtin", "command"}}}
                                            .dump())
                      .ok());
      std::this_thread::sleep_for(300ms);
    }
    EXPECT_TRUE(Eventually(
        [&] { return Metric(c, 0, "no_security_violations_total{kind=\"p2p_foreign_cluster\"}") > refused_before; },
        10s));
    for (int i : {0, 1}) {
      const json peers = c.Get(i, "/api/v1/peers");
      for (const auto& p : peers["peers"]) EXPECT_NE(p["node_id"], stranger->node_id()) << "node " << i;
    }
    stranger->Stop();
  }

  // --- an admitted worker trying the admin's messages ---
  {
    std::ifstream in(c.dir.File("n0") + "/cluster/cluster.key", std::ios::binary);
    std::stringstream secret;
    secret << in.rdbuf();
    auto ca = cluster::ClusterAuthority::FromSecret(secret.str());
    ASSERT_TRUE(ca.ok());
    auto id = p2p::NodeIdentity::Generate();
    cluster::Credential cred;
    cred.node_key = id.public_key();
    cred.role = cluster::NodeRole::kWorker;
    cred.serial = 7;
    cred.issued_at_ms = cluster::NowMs();
    cred.expires_at_ms = cred.issued_at_ms + 3600 * 1000;
    cred.name = "worker";
    const std::string credential = cluster::EncodeCredential(cred, *ca);
    auto membership = cluster::Membership::Open("").value();
    ASSERT_TRUE(membership->Adopt(ca->public_key()).ok());
    ASSERT_TRUE(membership->Admit(credential, "", id.public_key()).ok());
    const auto key1 = p2p::NodeIdentity::LoadOrCreate(c.dir.File("n1") + "/p2p").value().public_key();
    auto worker = StartRogue("worker", 0, seed, membership, std::move(id));
    ASSERT_NE(worker, nullptr);
    // An admitted worker is a peer.
    ASSERT_TRUE(Eventually([&] { return c.Peers(0) == 2; }, 10s));
    const double unauthorized_before = Metric(c, 0, "no_security_violations_total{kind=\"election_unauthorized\"}");
    election::Message m;
    m.type = election::MessageType::kHeartbeat;
    m.from = worker->node_id();
    m.cluster = before["cluster"];
    m.term = term + 1'000'000;
    m.config = election::ConfigId{term + 1'000'000, 99};
    m.members = {worker->node_id()};
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(worker->PublishToMembers(p2p::kElectionTopic, election::kMessageType, election::EncodeMessage(m)).ok());
      ASSERT_TRUE(worker
                      ->SendDirectToKey(key0, "tasks.offer",
                                        json{{"term", term + 1'000'000},
                                             {"worker", worker->node_id()},
                                             {"count", 100},
                                             {"executors", {"builtin", "command"}}}
                                            .dump())
                      .ok());
      ASSERT_TRUE(worker->SendDirectToKey(key1, "tasks.grant", Grant(c.Get(1, "/health")["node_id"])).ok());
      std::this_thread::sleep_for(300ms);
    }
    EXPECT_TRUE(Eventually(
        [&] {
          return Metric(c, 0, "no_security_violations_total{kind=\"election_unauthorized\"}") > unauthorized_before;
        },
        10s));
    EXPECT_TRUE(Eventually(
        [&] {
          const json t0 = c.Get(0, "/admin/status")["tasks"]["cluster"];
          const json t1 = c.Get(1, "/admin/status")["tasks"]["cluster"];
          return t0["offers_unauthorized"].get<int>() >= 1 && t1["grants_refused"].get<int>() >= 1;
        },
        10s))
        << c.Get(0, "/admin/status")["tasks"].dump() << "\n" << c.Get(1, "/admin/status")["tasks"].dump();
    worker->Stop();
  }

  // Nothing changed: the same admin in the same term, nothing borrowed, nothing lent.
  for (int i : {0, 1}) {
    const json s = c.Get(i, "/api/election/status");
    EXPECT_EQ(s["term"], term) << "node " << i;
    EXPECT_EQ(s["admin_id"], before["node_id"]) << "node " << i;
    const json tc = c.Get(i, "/admin/status")["tasks"]["cluster"];
    EXPECT_EQ(tc["borrowed"], 0) << "node " << i;
    EXPECT_EQ(tc["lent"], 0) << "node " << i;
  }
  for (int i : {0, 1}) c.nodes[i]->Signal(SIGTERM);
  for (int i : {0, 1}) EXPECT_EQ(c.nodes[i]->Wait(15s), 0);
}

}  // namespace
}  // namespace bzzz
