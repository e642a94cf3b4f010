#include "p2p/p2p.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <opendht/dhtrunner.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "base/threads.h"
#include "cluster/membership.h"
#include "p2p/delivery.h"
#include "p2p/mesh.h"
#include "p2p/peer_store.h"
#include "p2p/probe.h"
#include "p2p/topics.h"
#include "p2p/value_types.h"

namespace bzzz::p2p {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr SubsystemLog kLog{"p2p"};

std::int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::uint64_t ValueIdOf(const PublicKey& key, std::string_view salt) {
  std::string material(key.begin(), key.end());
  material.append(salt);
  const auto h = dht::InfoHash::get(material);
  std::uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | h[i];
  return id == 0 ? 1 : id;
}

namespace {

std::uint64_t IdOfKey(const PublicKey& key) { return ValueIdOf(key, ""); }

// Splits "host:port" (host may be "[v6]").
bool SplitHostPort(const std::string& hostport, std::string* host, std::string* port) {
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = hostport.substr(0, colon);
  *port = hostport.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return !port->empty();
}

}  // namespace

std::string ChunkKey(const std::uint8_t* data, std::size_t size) {
  return "chunk:" + dht::InfoHash::get(data, size).toString();
}

// --- Delivery (delivery.h), value types (value_types.h) and the outgoing queue ---

using internal::DedupWindow;
using internal::Dispatcher;
using internal::Sink;
using internal::TypeOfClass;
using enum internal::TypeId;

namespace {

struct Outgoing {
  std::string topic;
  FrameMessage message;
};

}  // namespace

// --- The node -------------------------------------------------------------------

class P2pNode::Impl {
 public:
  Impl(Options o, NodeIdentity id, prometheus::Registry* metrics)
      : opts(std::move(o)),
        identity(std::move(id)),
        probe(metrics),
        dedup(opts.config.pubsub.dedup_window),
        dispatcher(2, opts.config.pubsub.queue_capacity),
        membership(opts.membership) {
    network_id = opts.config.network_id != 0 ? opts.config.network_id
                                             : cluster::NetworkIdOf(membership->cluster_key());
    char ns[32];
    std::snprintf(ns, sizeof ns, "bzzz:%08x:", network_id);
    key_prefix = ns;
    seq.store(static_cast<std::uint64_t>(NowUs()) * 1000);  // grows across restarts
    presence = opts.presence;
  }

  Options opts;
  NodeIdentity identity;
  P2pProbe probe;
  DedupWindow dedup;
  Dispatcher dispatcher;
  std::shared_ptr<cluster::Membership> membership;
  std::uint32_t network_id = 0;
  std::string key_prefix;
  dht::DhtRunner runner;
  std::atomic<std::uint64_t> seq{0};
  std::atomic<bool> stopped{false};
  std::atomic<bool> draining{false};  // stopping: the publisher sends what is queued without waiting
  std::atomic<unsigned> known_nodes{0};  // DHT routing table size, refreshed by the maintenance loop

  // What this node put through DhtPut, so that a node without any DHT peer
  // (the embedded single-node default) still reads its own records. Bounded.
  std::mutex own_mu;
  std::map<std::string, std::map<std::uint64_t, Bytes>> own_values;
  std::size_t own_bytes = 0;
  static constexpr std::size_t kOwnValuesLimit = 64u << 20;

  // Whether the routing table is empty. Reads the table: never call it from
  // an OpenDHT callback (they hold the runner's lock; use known_nodes there).
  bool Alone() {
    const unsigned n = runner.getNodesStats(AF_INET).getKnownNodes();
    known_nodes = n;
    return n == 0;
  }

  void RememberOwn(const std::string& key, std::uint64_t id, const Bytes& value) {
    std::lock_guard lock(own_mu);
    auto& slot = own_values[key][id];
    own_bytes = own_bytes - slot.size() + value.size();
    slot = value;
    while (own_bytes > kOwnValuesLimit && !own_values.empty()) {
      for (const auto& [i, v] : own_values.begin()->second) own_bytes -= v.size();
      own_values.erase(own_values.begin());
    }
  }
  std::vector<Bytes> OwnValues(const std::string& key) {
    std::lock_guard lock(own_mu);
    std::vector<Bytes> out;
    auto it = own_values.find(key);
    if (it != own_values.end()) {
      for (const auto& [i, v] : it->second) out.push_back(v);
    }
    return out;
  }

  // Outgoing pubsub queue.
  std::mutex out_mu;
  std::condition_variable out_cv;
  std::deque<Outgoing> out_queue;
  bool out_stopping = false;
  std::thread publisher;

  // Subscriptions.
  struct TopicState {
    std::shared_future<std::size_t> token;
    std::map<std::string, std::shared_ptr<Sink>, std::less<>> sinks;
  };
  mutable std::mutex sub_mu;
  std::map<std::string, TopicState, std::less<>> topics;

  // Direct messages.
  std::mutex direct_mu;
  std::map<std::string, MessageHandler, std::less<>> direct_handlers;
  std::shared_ptr<Sink> direct_sink = std::make_shared<Sink>();
  std::shared_future<std::size_t> inbox_token;

  // Presence and peers.
  mutable std::mutex peers_mu;
  std::map<std::string, PeerInfo, std::less<>> peers;
  std::map<std::string, std::uint64_t, std::less<>> peer_seq;  // newest presence frame per peer
  Presence presence;
  bool presence_dirty = true;
  std::shared_future<std::size_t> presence_token;

  // Member links: a UDP socket for frames sent straight to members, and
  // the endpoints members announced (kept 10 minutes after their last
  // presence, so that links outlive a partition of the DHT).
  int link_fd = -1;
  std::string link_endpoint;  // "" when the bind address cannot be announced
  std::uint16_t link_port = 0;
  std::thread link_reader;
  struct LinkAddress {
    sockaddr_in addr{};
    Clock::time_point seen;
    std::uint64_t seq = 0;  // of the frame it was learned from (presence or a link frame)
  };
  std::mutex book_mu;
  std::map<std::string, LinkAddress, std::less<>> link_book;
  // The pubsub mesh on the same port (TCP); null when links are not announced.
  std::unique_ptr<internal::Mesh> mesh;
  static constexpr auto kLinkMemory = std::chrono::minutes(10);

  // The UDP link and the mesh's TCP listener share one port number (a
  // few attempts find a port free for both).
  Status OpenLink(const dht::SockAddr& bind4) {
    Status last = Status::Ok();
    constexpr int kAttempts = 16;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      last = OpenLinkOnce(bind4);
      if (last.ok()) {
        link_reader = NamedThread("p2p-links", [this] { LinkLoop(); });
        return last;
      }
      if (link_fd >= 0) ::close(link_fd);
      link_fd = -1;
      mesh.reset();
    }
    return Unavailable(last.message() + " (" + std::to_string(kAttempts) + " ports tried)");
  }

  Status OpenLinkOnce(const dht::SockAddr& bind4) {
    sockaddr_in a{};
    std::memcpy(&a, bind4.get(), sizeof a);
    a.sin_port = 0;
    const bool announced = a.sin_addr.s_addr != htonl(INADDR_ANY);
    if (announced) {
      // TCP first: outgoing connections (this machine's, every process's)
      // take their ports from the same range, so the kernel picks a port
      // free for TCP and the UDP socket takes the same number. (The other
      // way round, a restarted test cluster once failed to start: every
      // UDP port it was given was held by some TCP connection.)
      mesh = std::make_unique<internal::Mesh>(identity.node_id(), MeshConfigOf(opts.config.pubsub), MeshHooksOf());
      if (Status s = mesh->Start(a); !s.ok()) return s;
      a.sin_port = htons(mesh->port());
    }
    link_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (link_fd < 0) return Unavailable(std::string("p2p: member link socket: ") + std::strerror(errno));
    if (::bind(link_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      return Unavailable(std::string("p2p: member link bind: ") + std::strerror(errno));
    }
    socklen_t len = sizeof a;
    ::getsockname(link_fd, reinterpret_cast<sockaddr*>(&a), &len);
    link_port = ntohs(a.sin_port);
    const int rcvbuf = 4 << 20;
    ::setsockopt(link_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (!announced) {
      kLog.warn("p2p: p2p.listen binds every address: member links are not announced (pubsub and "
                "time-critical traffic go through the DHT)");
      return Status::Ok();
    }
    char ip[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    link_endpoint = std::string(ip) + ":" + std::to_string(link_port);
    return Status::Ok();
  }

  static internal::MeshConfig MeshConfigOf(const config::PubsubConfig& ps) {
    internal::MeshConfig m;
    m.degree = ps.mesh_degree;
    m.link_buffer_bytes = ps.link_buffer_bytes;
    return m;
  }

  internal::MeshHooks MeshHooksOf() {
    internal::MeshHooks h;
    h.sign_hello = [this](const std::string& challenge) -> Result<Bytes> {
      const std::string credential = Credential();
      if (credential.empty()) return FailedPrecondition("not admitted");
      return OneMessageFrame(FrameKind::kLink, "link", "hello", challenge, credential);
    };
    h.check_hello = [this](const std::uint8_t* data, std::size_t size,
                           const std::string& challenge) -> std::optional<internal::LinkPeer> {
      const Decoded d = DecodeFrame(data, size);
      if (!d.ok() || d.frame.kind != FrameKind::kLink || d.frame.topic != "link" || d.frame.messages.size() != 1 ||
          d.frame.messages[0].type != "hello" || d.frame.messages[0].data != challenge) {
        Reject(TopicClass::kInternal, d.error == DecodeError::kBadSignature ? "bad_signature" : "malformed", "link");
        return std::nullopt;
      }
      if (!Admit(d.frame, TopicClass::kInternal, "link")) return std::nullopt;
      return internal::LinkPeer{NodeIdOf(d.frame.sender), d.frame.sender};
    };
    h.shared_secret = [this](const PublicKey& peer) { return identity.SharedSecret(peer); };
    h.on_frame = [this](const std::uint8_t* data, std::size_t size, Origin origin) {
      return OnFrame("", data, size, Clock::now() + std::chrono::milliseconds(500), origin);
    };
    h.seen = [this](const PublicKey& sender, std::uint64_t s) { return dedup.Seen(sender, s); };
    h.on_repaired = [this](std::string_view topic, std::uint64_t n) {
      probe.Repaired(ClassOf(topic), n);
      n_repaired += n;
    };
    h.on_drop = [this](std::string_view topic, std::string_view reason, std::uint64_t n) {
      if (n > 0) Drop(ClassOf(topic), reason, n);
    };
    return h;
  }

  // Whether every live member has a pubsub link (else frames also go
  // through the DHT, where the others listen).
  bool AllPeersLinked() {
    if (!mesh) return false;
    std::lock_guard lock(peers_mu);
    if (peers.empty()) return false;
    for (const auto& [id, p] : peers) {
      if (!mesh->Linked(id)) return false;
    }
    return true;
  }

  void LinkLoop() {
    std::vector<std::uint8_t> buf(65536);
    while (!stopped.load()) {
      pollfd p{link_fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      sockaddr_in src{};
      socklen_t src_len = sizeof src;
      const ssize_t n = ::recvfrom(link_fd, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&src),
                                   &src_len);
      if (n <= 0) continue;
      const Decoded d = DecodeFrame(buf.data(), static_cast<std::size_t>(n));
      if (!d.ok() || d.frame.kind != FrameKind::kPubsub || !ValidateTopic(d.frame.topic).empty()) {
        Reject(TopicClass::kDirect, d.ok() ? "wrong_topic" : d.error == DecodeError::kBadSignature ? "bad_signature"
                                                                                                 : "malformed",
               "link");
        continue;
      }
      // A member's frame says where its link is now: after a restart (a new
      // port) members reach each other again at the first frame, without
      // waiting for presence to travel through the DHT.
      if (d.frame.sender != identity.public_key() &&
          membership->Check(d.frame.credential, d.frame.sender, cluster::NowMs()).ok() &&
          src.sin_family == AF_INET) {
        LearnLink(NodeIdOf(d.frame.sender), src, d.frame.seq);
      }
      OnTopicValue(d.frame.topic, Bytes(buf.begin(), buf.begin() + n));
    }
  }

  // Only a newer frame of the sender moves its address (a replayed old
  // frame cannot redirect its traffic).
  void LearnLink(const std::string& node_id, const sockaddr_in& addr, std::uint64_t seq) {
    std::lock_guard lock(book_mu);
    auto& l = link_book[node_id];
    if (seq < l.seq) return;
    l.addr = addr;
    l.seq = seq;
    l.seen = Clock::now();
    if (mesh) mesh->Learn(node_id, addr);
  }

  void RememberLink(const std::string& node_id, const std::string& endpoint, std::uint64_t seq) {
    std::string host, port;
    if (endpoint.empty() || !SplitHostPort(endpoint, &host, &port)) return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    const long p = std::strtol(port.c_str(), nullptr, 10);
    if (p <= 0 || p > 65535 || inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return;
    a.sin_port = htons(static_cast<std::uint16_t>(p));
    LearnLink(node_id, a, seq);
  }

  Status PublishToMembers(std::string_view topic, std::string_view type, std::string data) {
    if (!membership->Admitted()) return FailedPrecondition("this node is not admitted to its cluster yet");
    const TopicClass c = ClassOf(topic);
    auto encoded = OneMessageFrame(FrameKind::kPubsub, std::string(topic), std::string(type), std::move(data),
                                   Credential());
    if (!encoded.ok()) return encoded.status();
    std::vector<sockaddr_in> targets;
    {
      std::lock_guard lock(book_mu);
      const auto cutoff = Clock::now() - kLinkMemory;
      for (const auto& [id, l] : link_book) {
        if (l.seen >= cutoff) targets.push_back(l.addr);
      }
    }
    for (const auto& a : targets) {
      (void)::sendto(link_fd, encoded->data(), encoded->size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&a),
                     sizeof a);
    }
    // The same frame through the DHT too: the fallback for members whose
    // link address this node does not know (or knows wrong, after a restart
    // it has not heard of). Receivers keep whichever copy comes first and
    // drop the other as a duplicate (same sender and seq).
    if (known_nodes.load() != 0) PutValue(TopicHash(topic), TypeOfClass(c), std::move(encoded).value(), 0, c);
    probe.Published(c, 1);
    probe.FrameSent(c);
    n_published++;
    n_frames++;
    return Status::Ok();
  }

  // Maintenance.
  std::mutex maint_mu;
  std::condition_variable maint_cv;
  bool maint_stopping = false;
  std::thread maintenance;

  // Counters for Stats().
  std::atomic<std::uint64_t> n_published{0}, n_frames{0}, n_received{0}, n_dropped{0}, n_rejected{0},
      n_failures{0}, n_repaired{0};

  dht::InfoHash Hash(std::string_view key) const { return dht::InfoHash::get(key_prefix + std::string(key)); }
  // Topics live under their own prefix, so no topic name can collide with
  // the presence, inbox, record, provider or chunk keys.
  dht::InfoHash TopicHash(std::string_view topic) const { return Hash("topic/" + std::string(topic)); }
  std::string PeersFile() const {
    return opts.data_dir.empty() ? "" : (fs::path(opts.data_dir) / "p2p" / "peers").string();
  }
  std::uint64_t NextSeq() { return seq.fetch_add(1) + 1; }

  // A frame of this node carrying one message, stamped now with the next
  // seq and `credential` ("" in a join request), encoded and signed.
  Result<Bytes> OneMessageFrame(FrameKind kind, std::string topic, std::string type, std::string data,
                                std::string credential) {
    Frame f;
    f.kind = kind;
    f.credential = std::move(credential);
    f.seq = NextSeq();
    f.sent_at_ns = NowUs() * 1000;
    f.topic = std::move(topic);
    f.messages.push_back({std::move(type), NowUs(), 0, std::move(data)});
    return EncodeFrame(f, identity);
  }

  void Drop(TopicClass c, std::string_view reason, std::uint64_t n = 1) {
    probe.Dropped(c, reason, n);
    n_dropped += n;
    std::lock_guard lock(drops_mu);
    auto it = drops.find(reason);
    if (it == drops.end()) it = drops.emplace(std::string(reason), 0).first;
    it->second += n;
  }
  std::mutex drops_mu;
  std::map<std::string, std::uint64_t, std::less<>> drops;
  void Reject(TopicClass c, std::string_view reason, std::string_view stage) {
    probe.Rejected(c, reason, stage);
    n_rejected++;
  }

  // Whether the frame's sender is a member in good standing; a refusal is
  // counted as a security violation and logged (at most every 10 s).
  bool Admit(const Frame& f, TopicClass c, std::string_view stage, cluster::NodeRole* role = nullptr) {
    const cluster::Verdict v = membership->Check(f.credential, f.sender, cluster::NowMs());
    if (v.ok()) {
      if (role) *role = v.role;
      return true;
    }
    Reject(c, v.refused, stage);
    probe.Violation("p2p_" + v.refused);
    LogRefusal(NodeIdOf(f.sender), v.refused, stage);
    n_refused_senders++;
    if (v.refused == "foreign_cluster") {
      n_foreign++;
      last_foreign_ms = cluster::NowMs();
      if (f.credential.size() > 36) {
        cluster::Key other;
        std::copy(f.credential.begin() + 4, f.credential.begin() + 36, other.begin());
        std::lock_guard lock(refusal_mu);
        last_foreign_cluster = cluster::ClusterIdOf(other);
      }
    }
    return false;
  }
  std::atomic<std::uint64_t> n_refused_senders{0}, n_foreign{0};
  std::atomic<std::int64_t> last_foreign_ms{0};
  std::string last_foreign_cluster;  // guarded by refusal_mu

  std::mutex refusal_mu;
  Clock::time_point refusal_logged{};
  std::uint64_t refusals_unlogged = 0;
  void LogRefusal(const std::string& sender, std::string_view why, std::string_view stage) {
    std::lock_guard lock(refusal_mu);
    const auto now = Clock::now();
    if (now - refusal_logged < std::chrono::seconds(10)) {
      ++refusals_unlogged;
      return;
    }
    kLog.warn("p2p: refused a frame of {} ({}, at {}); {} more refusal(s) since the last report", sender, why,
                 stage, refusals_unlogged);
    refusal_logged = now;
    refusals_unlogged = 0;
  }

  // This node's credential for the frames it sends ("" before admission).
  std::string Credential() const { return membership->credential(); }

  // ----- value types and their storage policies -----

  dht::StorePolicy FramePolicy(FrameKind kind, TopicClass c) {
    return [this, kind, c](dht::InfoHash, std::shared_ptr<dht::Value>& v, const dht::InfoHash&,
                           const dht::SockAddr&) {
      if (v->data.size() > dht::MAX_VALUE_SIZE) return false;
      const Decoded d = DecodeFrame(v->data.data(), v->data.size());
      if (!d.ok() || d.frame.kind != kind) {
        Reject(c, d.error == DecodeError::kBadSignature ? "bad_signature" : "malformed", "store");
        return false;
      }
      if (!Admit(d.frame, c, "store")) return false;
      if (kind == FrameKind::kRecord) {
        std::function<std::string(const Frame&)> check;
        {
          std::lock_guard lock(record_check_mu);
          check = record_check;
        }
        if (check) {
          if (const std::string why = check(d.frame); !why.empty()) {
            Reject(c, why, "store");
            return false;
          }
        }
      }
      return true;
    };
  }
  std::mutex record_check_mu;
  std::function<std::string(const Frame&)> record_check;

  // A node keeps one presence value (and one provider value per record) that
  // it edits in place: the replacement must verify, come from the same
  // sender and carry a higher sequence number. Editing instead of adding
  // keeps the stored set small, and values only expire when their node stops
  // refreshing them (frequent expiries make OpenDHT slow).
  dht::EditPolicy ReplacePolicy(FrameKind kind) {
    return [this, kind](dht::InfoHash, const std::shared_ptr<dht::Value>& old_value, std::shared_ptr<dht::Value>& new_value,
                  const dht::InfoHash&, const dht::SockAddr&) {
      FrameKind old_kind;
      PublicKey old_sender;
      std::uint64_t old_seq;
      if (new_value->data.size() > dht::MAX_VALUE_SIZE) return false;
      const Decoded d = DecodeFrame(new_value->data.data(), new_value->data.size());
      if (!d.ok() || d.frame.kind != kind) return false;
      if (!Admit(d.frame, kind == FrameKind::kPresence ? TopicClass::kPresence : TopicClass::kOther, "store")) {
        return false;
      }
      if (!PeekFrameHeader(old_value->data.data(), old_value->data.size(), &old_kind, &old_sender, &old_seq)) {
        return false;
      }
      return d.frame.sender == old_sender && d.frame.seq > old_seq;
    };
  }

  // OpenDHT mishandles values that expire within seconds (puts are never
  // acknowledged, expiries churn its searches), so no value type expires
  // sooner than kMinExpiration. Shorter logical lifetimes (peer expiry,
  // provider TTL) are enforced by the receivers from the signed timestamps.
  static constexpr std::chrono::seconds kMinExpiration{30};
  static dht::duration Expiration(config::Millis m) {
    return std::max<dht::duration>(std::chrono::duration_cast<dht::duration>(m), kMinExpiration);
  }

  void RegisterTypes() {
    const auto& r = opts.config.retention;
    auto ms = [](config::Millis m) { return Expiration(m); };
    struct PubsubType {
      dht::ValueType::Id id;
      const char* name;
      config::Millis retention;
      TopicClass cls;
    };
    for (const auto& t : {PubsubType{kTypeCoordination, "bzzz.coordination", r.coordination, TopicClass::kCoordination},
                          PubsubType{kTypeMetaDiscussion, "bzzz.meta-discussion", r.meta_discussion,
                                     TopicClass::kMetaDiscussion},
                          PubsubType{kTypeIssue, "bzzz.issue", r.issue, TopicClass::kIssue},
                          PubsubType{kTypeElection, "bzzz.election", r.election, TopicClass::kElection},
                          PubsubType{kTypeSlurp, "bzzz.slurp", r.slurp, TopicClass::kSlurp},
                          PubsubType{kTypeInternal, "bzzz.internal", r.internal, TopicClass::kInternal}}) {
      runner.registerType(dht::ValueType(t.id, t.name, ms(t.retention), FramePolicy(FrameKind::kPubsub, t.cls)));
    }
    runner.registerType(dht::ValueType(kTypePresence, "bzzz.presence", ms(opts.config.peer_expiry),
                                       FramePolicy(FrameKind::kPresence, TopicClass::kPresence),
                                       ReplacePolicy(FrameKind::kPresence)));
    // Join requests: only a valid, unexpired join token of this cluster is stored.
    runner.registerType(dht::ValueType(
        kTypeJoin, "bzzz.join", ms(config::Millis(30000)),
        [this](dht::InfoHash, std::shared_ptr<dht::Value>& v, const dht::InfoHash&, const dht::SockAddr&) {
          return v->data.size() <= dht::MAX_VALUE_SIZE && ParseJoin(v->data, "store").has_value();
        }));
    runner.registerType(dht::ValueType(
        kTypeDirect, "bzzz.inbox", ms(r.direct),
        [](dht::InfoHash, std::shared_ptr<dht::Value>& v, const dht::InfoHash&, const dht::SockAddr&) {
          return v->data.size() <= dht::MAX_VALUE_SIZE && IsSealed(v->data.data(), v->data.size());
        }));
  }

  void RegisterDhtTypes() {
    const config::Millis record_ttl = opts.dht.record_ttl, provider_ttl = opts.dht.provider_ttl;
    auto ms = [](config::Millis m) { return Expiration(m); };
    runner.registerType(dht::ValueType(kTypeRecord, "bzzz.record", ms(record_ttl),
                                       FramePolicy(FrameKind::kRecord, TopicClass::kOther)));
    runner.registerType(dht::ValueType(kTypeProvider, "bzzz.provider", ms(provider_ttl),
                                       FramePolicy(FrameKind::kProvider, TopicClass::kOther),
                                       ReplacePolicy(FrameKind::kProvider)));
    // Chunks are content-addressed: the key must be the hash of the bytes.
    runner.registerType(dht::ValueType(
        kTypeChunk, "bzzz.chunk", ms(record_ttl),
        [prefix = key_prefix](dht::InfoHash key, std::shared_ptr<dht::Value>& v, const dht::InfoHash&,
                              const dht::SockAddr&) {
          if (v->data.size() > dht::MAX_VALUE_SIZE) return false;
          return dht::InfoHash::get(prefix + ChunkKey(v->data.data(), v->data.size())) == key;
        },
        // Content-addressed: a stored chunk is never replaced by other bytes.
        [](dht::InfoHash, const std::shared_ptr<dht::Value>& old_value, std::shared_ptr<dht::Value>& new_value,
           const dht::InfoHash&, const dht::SockAddr&) { return old_value->data == new_value->data; }));
  }

  // ----- start / stop -----

  Status Run() {
    const auto& c = opts.config;
    std::string host, port;
    if (!SplitHostPort(c.listen, &host, &port)) return InvalidArgument("p2p.listen is not HOST:PORT: " + c.listen);
    dht::SockAddr bind4;
    for (auto& a : dht::SockAddr::resolve(host, port)) {
      if (a.getFamily() == AF_INET) {
        bind4 = a;
        break;
      }
    }
    if (!bind4) return InvalidArgument("p2p.listen: " + host + " has no IPv4 address");

    dht::DhtRunner::Config rc;
    rc.threaded = true;
    rc.peer_discovery = c.multicast_discovery;
    rc.peer_publish = c.multicast_discovery;
    rc.bind4 = bind4;
    auto& nc = rc.dht_config.node_config;
    nc.network = network_id;
    nc.node_id = dht::InfoHash::get(identity.public_key().data(), identity.public_key().size());
    nc.maintain_storage = false;
    if (c.max_peer_requests_per_sec != 0) nc.max_peer_req_per_sec = c.max_peer_requests_per_sec;
    if (c.max_requests_per_sec != 0) nc.max_req_per_sec = c.max_requests_per_sec;
    nc.max_store_size = static_cast<ssize_t>(c.max_store_bytes);
    try {
      runner.run(rc, dht::DhtRunner::Context{});
    } catch (const std::exception& e) {
      return Unavailable("p2p: cannot bind " + c.listen + ": " + e.what());
    }
    if (runner.getBound(AF_INET).getPort() == 0) return Unavailable("p2p: cannot bind " + c.listen);
    RegisterTypes();
    RegisterDhtTypes();
    if (auto s = OpenLink(bind4); !s.ok()) return s;

    direct_sink->name = "direct";
    direct_sink->topic_class = TopicClass::kDirect;
    direct_sink->handler = [this](const Message& m) { DispatchDirect(m); };

    publisher = NamedThread("p2p-publish", [this] { PublishLoop(); });
    ListenPresence();
    ListenInbox();
    Bootstrap();
    maintenance = NamedThread("p2p-maintain", [this] { MaintenanceLoop(); });
    return Status::Ok();
  }

  void Stop() {
    if (stopped.exchange(true)) return;
    {
      std::lock_guard lock(maint_mu);
      maint_stopping = true;
    }
    maint_cv.notify_all();
    if (maintenance.joinable()) maintenance.join();
    {
      std::lock_guard lock(out_mu);
      out_stopping = true;
    }
    // What is still queued goes out without waiting for room anywhere
    // (full links, the DHT window): a stop must not take a second per frame.
    draining = true;
    out_cv.notify_all();
    if (publisher.joinable()) publisher.join();
    SavePeerStore();
    if (runner.isRunning()) {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      runner.shutdown([&] {
        std::lock_guard lock(m);
        done = true;
        cv.notify_all();
      });
      std::unique_lock lock(m);
      cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return done; });
    }
    runner.join();
    if (mesh) mesh->Stop();
    if (link_reader.joinable()) link_reader.join();
    if (link_fd >= 0) ::close(link_fd);
    link_fd = -1;
    dispatcher.Stop();
  }

  void Bootstrap() {
    std::vector<dht::NodeExport> saved = internal::LoadPeerStore(PeersFile());
    if (!saved.empty()) runner.bootstrap(saved);
    for (const auto& peer : opts.config.bootstrap) {
      std::string host, port;
      if (!SplitHostPort(peer, &host, &port)) continue;
      try {
        runner.bootstrap(host, port);
      } catch (const std::exception& e) {
        kLog.warn("p2p: bootstrap {}: {}", peer, e.what());
      }
    }
  }

  // ----- peer store (peer_store.h) -----

  void SavePeerStore() {
    const std::string path = PeersFile();
    if (path.empty() || !runner.isRunning()) return;
    if (Status s = internal::SavePeerStore(path, runner.exportNodes()); !s.ok()) {
      kLog.warn("p2p: peer store not saved: {}", s.message());
    }
  }

  // ----- publishing -----

  Status Enqueue(std::string topic, FrameMessage message) {
    const TopicClass c = ClassOf(topic);
    if (!membership->Admitted()) return FailedPrecondition("this node is not admitted to its cluster yet");
    {
      std::lock_guard lock(out_mu);
      if (out_stopping) return Unavailable("p2p node is stopping");
      if (out_queue.size() >= opts.config.pubsub.queue_capacity) {
        Drop(c, "publish_queue_full");
        return ResourceExhausted("the outgoing pubsub queue is full (" +
                                 std::to_string(opts.config.pubsub.queue_capacity) + " messages)");
      }
      out_queue.push_back({std::move(topic), std::move(message)});
      // The publisher waits for the first message, or (lingering) for a
      // full frame's worth: wake it only then, not once per message.
      if (out_queue.size() != 1 && out_queue.size() != opts.config.pubsub.batch_max_messages) return Status::Ok();
    }
    out_cv.notify_one();
    return Status::Ok();
  }

  // Drains the queue; consecutive messages of a topic share a frame, so a
  // burst costs one signature and one DHT put per batch.
  //
  // Batch linger: when the previous frame went out less than
  // p2p.pubsub.batch_linger_us ago, the loop waits until that much time has
  // passed (or a full frame's worth is queued) before it packs the next
  // frame. At low rates every message goes at once; at high rates frames
  // go at most every linger, carrying what queued meanwhile, so the cost
  // per frame (a signature, a verification at every receiver) is spread
  // over many messages instead of overloading the cores at 1 message per
  // frame.
  void PublishLoop() {
    std::deque<Outgoing> batch;
    const auto linger = std::chrono::microseconds(opts.config.pubsub.batch_linger_us);
    Clock::time_point last_frame{};
    for (;;) {
      {
        std::unique_lock lock(out_mu);
        out_cv.wait(lock, [this] { return out_stopping || !out_queue.empty(); });
        if (out_queue.empty() && out_stopping) return;
        if (linger.count() > 0 && Clock::now() < last_frame + linger) {
          out_cv.wait_until(lock, last_frame + linger, [this] {
            return out_stopping || out_queue.size() >= opts.config.pubsub.batch_max_messages;
          });
        }
        // Take a bounded slice, so the queue frees up as frames go out and
        // p2p.pubsub.queue_capacity bounds everything waiting, not half of it.
        const std::size_t take = std::min<std::size_t>(out_queue.size(), 1024);
        batch.assign(std::make_move_iterator(out_queue.begin()),
                     std::make_move_iterator(out_queue.begin() + static_cast<std::ptrdiff_t>(take)));
        out_queue.erase(out_queue.begin(), out_queue.begin() + static_cast<std::ptrdiff_t>(take));
      }
      std::map<std::string, std::vector<FrameMessage>> by_topic;
      for (auto& o : batch) by_topic[o.topic].push_back(std::move(o.message));
      batch.clear();
      for (auto& [topic, messages] : by_topic) SendFrames(topic, messages);
      last_frame = Clock::now();
    }
  }

  void SendFrames(const std::string& topic, std::vector<FrameMessage>& messages) {
    const auto& ps = opts.config.pubsub;
    const std::size_t overhead = FrameOverhead(topic);
    std::size_t i = 0;
    while (i < messages.size()) {
      Frame f;
      f.kind = FrameKind::kPubsub;
      f.topic = topic;
      std::size_t bytes = overhead;
      while (i < messages.size() && f.messages.size() < ps.batch_max_messages) {
        const std::size_t add = EncodedMessageSize(messages[i]);
        if (!f.messages.empty() && (bytes + add > ps.batch_max_bytes + overhead || bytes + add > kMaxFrameBytes)) break;
        bytes += add;
        f.messages.push_back(std::move(messages[i++]));
      }
      PutFrame(topic, std::move(f));
    }
  }

  // Flow control: at most p2p.pubsub.max_inflight_frames pubsub frames wait
  // for their storage acknowledgements. Beyond that the publisher waits, the bounded
  // queue fills and Publish answers ResourceExhausted, instead of UDP
  // buffers overflowing and frames vanishing silently.
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  std::map<std::uint64_t, Clock::time_point> inflight;  // frame seq -> when put
  static constexpr auto kAckGiveUp = std::chrono::seconds(1);
  static constexpr auto kLinkWait = std::chrono::milliseconds(1000), kNoWait = std::chrono::milliseconds(0);

  // Waits for a slot in the window. A frame whose acknowledgement has not
  // come back within kAckGiveUp is presumed lost and frees its slot, so lost
  // acknowledgements never shrink the window for good.
  void WaitForWindow(std::uint64_t seq) {
    const std::size_t window = opts.config.pubsub.max_inflight_frames;
    std::unique_lock lock(inflight_mu);
    for (;;) {
      const auto give_up = Clock::now() - kAckGiveUp;
      for (auto it = inflight.begin(); it != inflight.end();) {
        it = it->second < give_up ? inflight.erase(it) : std::next(it);
      }
      if (inflight.size() < window || draining.load()) break;
      inflight_cv.wait_for(lock, std::chrono::milliseconds(10));
    }
    inflight.emplace(seq, Clock::now());
  }
  void FrameAcknowledged(std::uint64_t seq) {
    {
      std::lock_guard lock(inflight_mu);
      inflight.erase(seq);
    }
    inflight_cv.notify_one();
  }

  // Tells the links what this node subscribes to. Holds sub_mu.
  void TopicsChanged() {
    if (!mesh) return;
    std::vector<std::string> names;
    for (const auto& [t, state] : topics) names.push_back(t);
    mesh->SetTopics(std::move(names));
  }

  bool WantsOwn(const std::string& topic) {
    std::lock_guard lock(sub_mu);
    auto it = topics.find(topic);
    if (it == topics.end()) return false;
    for (const auto& [name, sink] : it->second.sinks) {
      if (sink->options.receive_own) return true;
    }
    return false;
  }

  void PutFrame(const std::string& topic, Frame f) {
    const TopicClass c = ClassOf(topic);
    f.credential = Credential();
    f.seq = NextSeq();
    f.sent_at_ns = NowUs() * 1000;
    const std::size_t count = f.messages.size();
    auto encoded = EncodeFrame(f, identity);
    if (!encoded.ok()) {
      kLog.warn("p2p: dropping {} message(s) for {}: {}", count, topic, encoded.status().message());
      probe.Error();
      Drop(c, "encode_failed", count);
      return;
    }
    f.sender = identity.public_key();
    // Members with a link get it over the mesh; the DHT carries it too
    // while some live member has no link (or when configured to). Alone:
    // the cached count first (reading the table takes OpenDHT's lock, which
    // its thread holds for long stretches under load).
    auto frame = std::make_shared<const Bytes>(std::move(encoded).value());
    if (mesh) mesh->Publish(topic, frame, count, draining.load() ? kNoWait : kLinkWait);
    const bool alone = known_nodes.load() == 0 && Alone();
    const bool via_dht = alone || opts.config.pubsub.dht_copy || !AllPeersLinked();
    // The node's own subscribers: a lone node has no storage node to echo
    // the frame, and frames that skip the DHT are not echoed at all.
    if (alone || (!via_dht && WantsOwn(topic))) (void)Deliver(f, c, Clock::time_point{});
    if (alone) {
      PutValue(TopicHash(topic), TypeOfClass(c), Bytes(*frame), 0, c);
    } else if (via_dht) {
      WaitForWindow(f.seq);
      PutValue(TopicHash(topic), TypeOfClass(c), Bytes(*frame), 0, c,
               [this, seq = f.seq](bool) { FrameAcknowledged(seq); });
    }
    probe.Published(c, count);
    probe.FrameSent(c);
    n_published += count;
    n_frames++;
  }

  void PutValue(const dht::InfoHash& key, dht::ValueType::Id type, Bytes blob, std::uint64_t value_id, TopicClass c,
                std::function<void(bool)> done = {}) {
    auto value = std::make_shared<dht::Value>(type, std::move(blob), value_id ? value_id : dht::Value::INVALID_ID);
    runner.put(key, value, [this, c, done = std::move(done)](bool ok) {
      // A lone node has nobody to store at: that is not a failure of the put.
      // (Runner callbacks hold OpenDHT's lock: read the cached count, never the table.)
      const bool alone = known_nodes.load() == 0;
      if (!ok && !alone) {
        probe.PublishFailed(c);
        n_failures++;
      }
      if (done) done(ok || alone);
    });
  }

  // ----- receiving -----

  std::shared_future<std::size_t> ListenOn(const dht::InfoHash& key, dht::ValueType::Id type,
                                           std::function<void(const dht::Value&, bool expired)> fn) {
    return runner
        .listen(
            key,
            [fn = std::move(fn)](const std::vector<std::shared_ptr<dht::Value>>& values, bool expired) {
              for (const auto& v : values) fn(*v, expired);
              return true;
            },
            dht::Value::TypeFilter(type))
        .share();
  }

  void OnTopicValue(const std::string& topic, const Bytes& data) {
    (void)OnFrame(topic, data.data(), data.size(), Clock::time_point{});
  }

  // A pubsub frame from the DHT (`expected_topic`: the key it was read
  // under) or a link (""; `origin` says whether the link vouches for its
  // signer). True when it was valid and new. Delivery waits for room in
  // full subscriber queues until `deadline`.
  bool OnFrame(std::string_view expected_topic, const std::uint8_t* data, std::size_t size,
               Clock::time_point deadline, Origin origin = Origin::kSignature) {
    const TopicClass c = ClassOf(expected_topic);
    Decoded d = DecodeFrame(data, size, origin);
    if (!d.ok()) {
      Reject(c, d.error == DecodeError::kBadSignature ? "bad_signature" : "malformed", "receive");
      return false;
    }
    const Frame& f = d.frame;
    if (f.kind != FrameKind::kPubsub || (expected_topic.empty() ? !ValidateTopic(f.topic).empty()
                                                                 : f.topic != expected_topic)) {
      Reject(c, "wrong_topic", "receive");
      return false;
    }
    const std::string& topic = f.topic;
    return Deliver(d.frame, ClassOf(topic), deadline);
  }

  // Consumes the frame's messages.
  bool Deliver(Frame& f, TopicClass c, Clock::time_point deadline) {
    const std::string& topic = f.topic;
    const bool own = f.sender == identity.public_key();
    cluster::NodeRole role = cluster::NodeRole::kWorker;
    if (!own && !Admit(f, c, "receive", &role)) return false;
    if (own) {
      if (auto mine = membership->own()) role = mine->role;
    }
    if (!dedup.FirstTime(f.sender, f.seq)) {
      Drop(c, "duplicate", f.messages.size());
      return false;
    }
    std::vector<std::shared_ptr<Sink>> sinks;
    {
      std::lock_guard lock(sub_mu);
      auto it = topics.find(topic);
      if (it == topics.end()) return true;
      for (auto& [name, sink] : it->second.sinks) sinks.push_back(sink);
    }
    const std::int64_t now = NowUs();
    const std::string from = own ? identity.node_id() : NodeIdOf(f.sender);
    std::vector<std::vector<Message>> per_sink(sinks.size());
    std::vector<std::size_t> targets;
    for (auto& fm : f.messages) {
      Message m;
      m.topic = topic;
      m.envelope = {std::move(fm.type), from, fm.published_us / 1000, std::move(fm.data), fm.hop_count};
      m.sender_key = f.sender;
      m.sender_role = role;
      m.published_us = fm.published_us;
      m.received_us = now;
      if (own) {
        bool wanted = false;
        for (const auto& s : sinks) wanted |= s->options.receive_own;
        if (!wanted) {
          Drop(c, "self");
          continue;
        }
      } else {
        probe.Received(c, static_cast<double>(now - fm.published_us) / 1e6);
        n_received++;
      }
      targets.clear();
      for (std::size_t i = 0; i < sinks.size(); ++i) {
        const auto& s = sinks[i];
        if (own && !s->options.receive_own) continue;
        if (!s->options.replay_retained && fm.published_us + 1'000'000 < s->since_us) {
          Drop(c, "retained");
          continue;
        }
        targets.push_back(i);
      }
      for (std::size_t k = 0; k < targets.size(); ++k) {
        if (k + 1 == targets.size()) {
          per_sink[targets[k]].push_back(std::move(m));
        } else {
          per_sink[targets[k]].push_back(m);
        }
      }
    }
    for (std::size_t i = 0; i < sinks.size(); ++i) {
      if (per_sink[i].empty()) continue;
      if (const std::size_t dropped = dispatcher.PushBatch(sinks[i], std::move(per_sink[i]), deadline)) {
        Drop(c, "queue_full", dropped);
      }
    }
    return true;
  }

  void ListenInbox() {
    inbox_token = ListenOn(Hash("inbox:" + identity.node_id()), kTypeDirect,
                           [this](const dht::Value& v, bool expired) {
                             if (!expired) OnInboxValue(v);
                           });
  }

  void OnInboxValue(const dht::Value& v) {
    const TopicClass c = TopicClass::kDirect;
    auto opened = UnsealFrame(v.data.data(), v.data.size(), identity);
    if (!opened.ok()) {
      Reject(c, "undecryptable", "receive");
      return;
    }
    const Decoded d = DecodeFrame(opened->data(), opened->size());
    if (!d.ok()) {
      Reject(c, d.error == DecodeError::kBadSignature ? "bad_signature" : "malformed", "receive");
      return;
    }
    if (d.frame.kind != FrameKind::kDirect || d.frame.topic != "inbox/" + identity.node_id()) {
      Reject(c, "wrong_topic", "receive");  // sealed to us but addressed elsewhere: a replay
      return;
    }
    cluster::NodeRole role = cluster::NodeRole::kWorker;
    if (!Admit(d.frame, c, "receive", &role)) return;
    if (!dedup.FirstTime(d.frame.sender, d.frame.seq)) {
      Drop(c, "duplicate", d.frame.messages.size());
      return;
    }
    const std::int64_t now = NowUs();
    const std::string from = NodeIdOf(d.frame.sender);
    for (const auto& fm : d.frame.messages) {
      Message m;
      m.topic = d.frame.topic;
      m.envelope = {fm.type, from, fm.published_us / 1000, fm.data, fm.hop_count};
      m.sender_key = d.frame.sender;
      m.sender_role = role;
      m.published_us = fm.published_us;
      m.received_us = now;
      probe.Received(c, static_cast<double>(now - fm.published_us) / 1e6);
      n_received++;
      if (!dispatcher.Push(direct_sink, std::move(m))) Drop(c, "queue_full");
    }
  }

  void DispatchDirect(const Message& m) {
    MessageHandler handler;
    {
      std::lock_guard lock(direct_mu);
      auto it = direct_handlers.find(m.envelope.type);
      if (it != direct_handlers.end()) handler = it->second;
    }
    if (!handler) {
      Drop(TopicClass::kDirect, "no_handler");
      return;
    }
    handler(m);
  }

  Status SendDirect(std::string_view node_id, std::string_view type, std::string data) {
    PublicKey recipient;
    {
      std::lock_guard lock(peers_mu);
      auto it = peers.find(node_id);
      if (it == peers.end()) return NotFound("peer " + std::string(node_id) + " is not known (no presence seen)");
      recipient = it->second.public_key;
    }
    return SendDirectToKey(recipient, type, std::move(data));
  }

  Status SendDirectToKey(const PublicKey& recipient, std::string_view type, std::string data) {
    if (type.empty() || type.size() > kMaxTypeBytes) return InvalidArgument("message type must be 1..64 bytes");
    if (!membership->Admitted()) return FailedPrecondition("this node is not admitted to its cluster yet");
    const std::string node_id = NodeIdOf(recipient);
    auto encoded = OneMessageFrame(FrameKind::kDirect, "inbox/" + node_id, std::string(type), std::move(data),
                                   Credential());
    if (!encoded.ok()) return encoded.status();
    auto sealed = SealFrame(*encoded, recipient);
    if (!sealed.ok()) return sealed.status();
    if (sealed->size() > dht::MAX_VALUE_SIZE) return InvalidArgument("direct message too large for one DHT value");
    PutValue(Hash("inbox:" + std::string(node_id)), kTypeDirect, std::move(sealed).value(), 0, TopicClass::kDirect);
    probe.Published(TopicClass::kDirect, 1);
    n_published++;
    return Status::Ok();
  }

  // ----- admission -----

  // A join request that may be stored and handed on: a kJoin frame signed by
  // the joiner, carrying a valid, unexpired join token of this cluster.
  std::optional<JoinRequest> ParseJoin(const Bytes& data, std::string_view stage) {
    const Decoded d = DecodeFrame(data.data(), data.size());
    if (!d.ok() || d.frame.kind != FrameKind::kJoin || d.frame.topic != "join" || d.frame.messages.size() != 1 ||
        d.frame.messages[0].type != "join") {
      Reject(TopicClass::kInternal, d.ok() ? "wrong_topic" : "malformed", stage);
      return std::nullopt;
    }
    const json j = ParseJson(d.frame.messages[0].data);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_string() ||
        (j.contains("name") && !j["name"].is_string())) {
      Reject(TopicClass::kInternal, "malformed", stage);
      return std::nullopt;
    }
    JoinRequest r;
    r.token = j["token"].get<std::string>();
    r.name = j.value("name", "");
    auto token = cluster::DecodeJoinToken(r.token);
    if (!token.ok() || token->cluster_key != membership->cluster_key() || token->expires_at_ms <= cluster::NowMs()) {
      Reject(TopicClass::kInternal, "join_invalid", stage);
      probe.Violation("p2p_join_invalid");
      LogRefusal(NodeIdOf(d.frame.sender), token.ok() ? "expired or foreign join token" : token.status().message(),
                 stage);
      return std::nullopt;
    }
    r.node_key = d.frame.sender;
    r.node_id = NodeIdOf(d.frame.sender);
    return r;
  }

  Status RequestAdmission(std::string_view token, std::string_view name) {
    auto encoded = OneMessageFrame(FrameKind::kJoin, "join", "join", json{{"token", token}, {"name", name}}.dump(), "");
    if (!encoded.ok()) return encoded.status();
    PutValue(Hash("join"), kTypeJoin, std::move(encoded).value(), 0, TopicClass::kInternal);
    return Status::Ok();
  }

  std::shared_ptr<Sink> join_sink = std::make_shared<Sink>();
  std::shared_future<std::size_t> join_listen;

  void ListenJoin(std::function<void(const JoinRequest&)> handler) {
    {
      std::lock_guard lock(join_sink->mu);
      join_sink->name = "join";
      join_sink->topic_class = TopicClass::kInternal;
      join_sink->handler = [handler = std::move(handler)](const Message& m) {
        JoinRequest r;
        r.node_key = m.sender_key;
        r.node_id = m.envelope.from;
        r.name = m.envelope.type;
        r.token = m.envelope.data;
        handler(r);
      };
    }
    if (join_listen.valid()) return;
    join_listen = ListenOn(Hash("join"), kTypeJoin, [this](const dht::Value& v, bool expired) {
      if (expired) return;
      auto r = ParseJoin(v.data, "receive");
      if (!r) return;
      Message m;
      m.topic = "join";
      m.envelope.from = r->node_id;
      m.envelope.type = r->name;
      m.envelope.data = r->token;
      m.sender_key = r->node_key;
      if (!dispatcher.Push(join_sink, std::move(m))) Drop(TopicClass::kInternal, "queue_full");
    });
  }

  // ----- presence -----

  void ListenPresence() {
    presence_token = ListenOn(Hash("presence"), kTypePresence,
                              [this](const dht::Value& v, bool expired) { OnPresenceValue(v, expired); });
  }

  void OnPresenceValue(const dht::Value& v, bool expired) {
    const Decoded d = DecodeFrame(v.data.data(), v.data.size());
    if (!d.ok() || d.frame.kind != FrameKind::kPresence || d.frame.messages.size() != 1) {
      if (!expired) {
        Reject(TopicClass::kPresence,
               d.ok() ? "wrong_topic" : d.error == DecodeError::kBadSignature ? "bad_signature" : "malformed", "receive");
      }
      return;
    }
    if (d.frame.sender == identity.public_key()) return;
    if (!expired && !Admit(d.frame, TopicClass::kPresence, "receive")) return;
    const std::string id = NodeIdOf(d.frame.sender);
    std::lock_guard lock(peers_mu);
    auto& newest = peer_seq[id];
    if (expired) {
      if (d.frame.seq >= newest) {
        if (auto gone = peers.find(id); gone != peers.end()) {
          kLog.info("p2p: peer {} ({}) expired (its presence left the DHT)", id, gone->second.name);
        }
        peers.erase(id);
        peer_seq.erase(id);
      }
      return;
    }
    if (d.frame.seq < newest) return;  // an older announcement arriving late
    const auto sent_at = std::chrono::system_clock::time_point(std::chrono::nanoseconds(d.frame.sent_at_ns));
    if (sent_at + opts.config.peer_expiry < std::chrono::system_clock::now()) return;  // stored, but its node is silent
    std::string name;
    auto p = PresenceFromJson(d.frame.messages[0].data, &name);
    if (!p.ok()) {
      Reject(TopicClass::kPresence, "malformed", "receive");
      return;
    }
    newest = d.frame.seq;
    const auto sent = std::chrono::system_clock::time_point(std::chrono::nanoseconds(d.frame.sent_at_ns));
    const auto now = std::chrono::system_clock::now();
    auto [it, inserted] = peers.try_emplace(id);
    PeerInfo& peer = it->second;
    if (inserted) {
      peer.first_seen = now;
      kLog.info("p2p: peer {} ({}) joined", id, name);
    }
    peer.node_id = id;
    peer.name = name;
    peer.public_key = d.frame.sender;
    peer.presence = std::move(p).value();
    peer.last_seen = std::min(now, sent);
    peer.announced_at_ms = d.frame.sent_at_ns / 1'000'000;
    RememberLink(id, peer.presence.direct_endpoint, d.frame.seq);
  }

  void Announce() {
    const std::string credential = Credential();
    if (credential.empty()) return;  // not admitted yet: nothing to announce
    Presence p;
    bool changed;
    {
      std::lock_guard lock(peers_mu);
      p = presence;
      changed = presence_dirty;
      presence_dirty = false;
    }
    p.direct_endpoint = link_endpoint;
    auto encoded = OneMessageFrame(FrameKind::kPresence, "presence", "availability",
                                   PresenceToJson(p, identity.node_id(), opts.node_name), credential);
    if (!encoded.ok()) return;
    // One value per node, edited each interval (see ReplacePolicy). Listens
    // report new nodes at once; PollPresence reads the edits.
    PutValue(Hash("presence"), kTypePresence, std::move(encoded).value(), IdOfKey(identity.public_key()),
             TopicClass::kPresence);
    // Listens do not pass edits on, so a change also goes out as a pubsub
    // message that every node hears within milliseconds.
    if (changed) {
      (void)Enqueue(std::string(kPresenceTopic),
                    {"availability", NowUs(), 0, PresenceToJson(p, identity.node_id(), opts.node_name)});
    }
  }

  // A presence change heard on kPresenceTopic; the sender's key is already
  // known from its presence record (unknown senders wait for that record).
  void OnPresenceChange(const Message& m) {
    std::string name;
    auto p = PresenceFromJson(m.envelope.data, &name);
    if (!p.ok()) return;
    std::lock_guard lock(peers_mu);
    auto it = peers.find(m.envelope.from);
    if (it == peers.end()) return;
    it->second.presence = std::move(p).value();
    it->second.last_seen = std::chrono::system_clock::now();
    RememberLink(it->first, it->second.presence.direct_endpoint, 0);
  }

  // The listen gives updates within milliseconds, but a listen registered at
  // a storage node that restarted is only renewed by OpenDHT after ~30 s; a
  // get each interval bounds how long such a peer stays unseen.
  void PollPresence() {
    runner.get(
        Hash("presence"),
        [this](const std::vector<std::shared_ptr<dht::Value>>& values) {
          for (const auto& v : values) OnPresenceValue(*v, false);
          return true;
        },
        [](bool) {}, dht::Value::TypeFilter(kTypePresence));
  }

  void ExpirePeers() {
    {
      std::lock_guard book_lock(book_mu);
      const auto forget = Clock::now() - kLinkMemory;
      for (auto it = link_book.begin(); it != link_book.end();) {
        if (it->second.seen < forget || membership->IsRevoked(it->first)) {
          if (mesh) mesh->Forget(it->first);
          it = link_book.erase(it);
        } else {
          ++it;
        }
      }
    }
    const auto cutoff = std::chrono::system_clock::now() - opts.config.peer_expiry;
    std::lock_guard lock(peers_mu);
    for (auto it = peers.begin(); it != peers.end();) {
      if (membership->IsRevoked(it->first)) {
        kLog.warn("p2p: peer {} ({}) was revoked", it->first, it->second.name);
        {
          std::lock_guard book_lock(book_mu);
          link_book.erase(it->first);
        }
        if (mesh) mesh->Forget(it->first);
        peer_seq.erase(it->first);
        it = peers.erase(it);
      } else if (it->second.last_seen < cutoff) {
        kLog.info("p2p: peer {} ({}) expired", it->first, it->second.name);
        peer_seq.erase(it->first);
        it = peers.erase(it);
      } else {
        ++it;
      }
    }
  }

  void MaintenanceLoop() {
    auto next_announce = Clock::now();
    auto next_save = Clock::now() + std::chrono::seconds(10);
    auto next_bootstrap = Clock::now() + std::chrono::seconds(2);
    for (;;) {
      {
        std::unique_lock lock(maint_mu);
        maint_cv.wait_until(lock, std::min(next_announce, Clock::now() + std::chrono::milliseconds(250)),
                            [this] { return maint_stopping; });
        if (maint_stopping) return;
      }
      const auto now = Clock::now();
      bool dirty;
      {
        std::lock_guard lock(peers_mu);
        dirty = presence_dirty;
      }
      if (dirty || now >= next_announce) {
        Announce();
        PollPresence();
        next_announce = now + opts.config.presence_interval;
      }
      ExpirePeers();
      const auto stats = runner.getNodesStats(AF_INET);
      known_nodes = stats.getKnownNodes();
      probe.Peers(ConnectedPeers(), stats.good_nodes, stats.dubious_nodes);
      if (mesh) probe.Links(mesh->Links().size());
      if (stats.getKnownNodes() == 0 && now >= next_bootstrap && !opts.config.bootstrap.empty()) {
        Bootstrap();  // the seeds may have come up after us
        next_bootstrap = now + std::chrono::seconds(5);
      }
      if (now >= next_save) {
        SavePeerStore();
        next_save = now + std::chrono::seconds(60);
      }
    }
  }

  void WakeMaintenance() { maint_cv.notify_all(); }

  std::size_t ConnectedPeers() const {
    std::lock_guard lock(peers_mu);
    return peers.size();
  }
};

// --- P2pNode ---------------------------------------------------------------

P2pNode::P2pNode() = default;
P2pNode::~P2pNode() { Stop(); }

Result<std::unique_ptr<P2pNode>> P2pNode::Start(Options options, NodeIdentity identity,
                                                prometheus::Registry* metrics) {
  if (!options.membership || !options.membership->HasCluster()) {
    return FailedPrecondition("p2p: the node belongs to no cluster (found one or join with a token first)");
  }
  std::unique_ptr<P2pNode> node(new P2pNode());
  node->impl_ = std::make_unique<Impl>(std::move(options), std::move(identity), metrics);
  if (auto s = node->impl_->Run(); !s.ok()) {
    node->impl_->Stop();
    return s;
  }
  Impl* impl = node->impl_.get();
  if (auto s = node->Subscribe(kPresenceTopic, "presence", [impl](const Message& m) { impl->OnPresenceChange(m); });
      !s.ok()) {
    return s;
  }
  return node;
}

void P2pNode::Stop() {
  if (impl_) impl_->Stop();
}

const std::string& P2pNode::node_id() const { return impl_->identity.node_id(); }
const NodeIdentity& P2pNode::identity() const { return impl_->identity; }
std::uint16_t P2pNode::port() const { return impl_->runner.getBound(AF_INET).getPort(); }
std::uint32_t P2pNode::network_id() const { return impl_->network_id; }
std::uint16_t P2pNode::link_port() const { return impl_->link_port; }

Status P2pNode::PublishToMembers(std::string_view topic, std::string_view type, std::string data) {
  if (auto why = ValidateTopic(topic); !why.empty()) return InvalidArgument(why);
  if (type.empty() || type.size() > kMaxTypeBytes) return InvalidArgument("message type must be 1..64 bytes");
  if (FrameOverhead(topic) + type.size() + data.size() + 32 > kMaxFrameBytes) {
    return InvalidArgument("message does not fit one frame");
  }
  return impl_->PublishToMembers(topic, type, std::move(data));
}

Status P2pNode::Publish(std::string_view topic, std::string_view type, std::string data) {
  if (auto why = ValidateTopic(topic); !why.empty()) return InvalidArgument(why);
  if (type.empty() || type.size() > kMaxTypeBytes) return InvalidArgument("message type must be 1..64 bytes");
  FrameMessage m{std::string(type), NowUs(), 0, std::move(data)};
  if (FrameOverhead(topic) + EncodedMessageSize(m) > kMaxFrameBytes) {
    return InvalidArgument("message of " + std::to_string(m.data.size()) +
                           " bytes does not fit one frame; store large content in the DHT and publish its address");
  }
  return impl_->Enqueue(std::string(topic), std::move(m));
}

Status P2pNode::PublishRawFrame(std::string_view topic, Bytes frame) {
  if (auto why = ValidateTopic(topic); !why.empty()) return InvalidArgument(why);
  if (frame.size() > dht::MAX_VALUE_SIZE) return InvalidArgument("frame larger than a DHT value");
  const TopicClass c = ClassOf(topic);
  impl_->PutValue(impl_->TopicHash(topic), TypeOfClass(c), std::move(frame), 0, c);
  return Status::Ok();
}

Status P2pNode::Subscribe(std::string_view topic, std::string_view subscriber, MessageHandler handler,
                          SubscribeOptions options) {
  if (auto why = ValidateTopic(topic); !why.empty()) return InvalidArgument(why);
  if (subscriber.empty()) return InvalidArgument("subscriber name must not be empty");
  if (!handler) return InvalidArgument("handler must not be empty");
  Impl& n = *impl_;
  std::lock_guard lock(n.sub_mu);
  auto [it, new_topic] = n.topics.try_emplace(std::string(topic));
  auto& state = it->second;
  auto found = state.sinks.find(subscriber);
  if (found != state.sinks.end()) {
    std::lock_guard sink_lock(found->second->mu);
    found->second->handler = std::move(handler);
    found->second->options = options;
    return Status::Ok();
  }
  auto sink = std::make_shared<Sink>();
  sink->name = std::string(topic) + "#" + std::string(subscriber);
  sink->topic_class = ClassOf(topic);
  sink->options = options;
  sink->since_us = NowUs();
  sink->handler = std::move(handler);
  state.sinks.emplace(std::string(subscriber), std::move(sink));
  if (new_topic) {
    const std::string t(topic);
    state.token = n.ListenOn(n.TopicHash(t), TypeOfClass(ClassOf(t)), [&n, t](const dht::Value& v, bool expired) {
      if (!expired) n.OnTopicValue(t, v.data);
    });
    n.TopicsChanged();
  }
  return Status::Ok();
}

void P2pNode::Unsubscribe(std::string_view topic, std::string_view subscriber) {
  Impl& n = *impl_;
  std::lock_guard lock(n.sub_mu);
  auto it = n.topics.find(topic);
  if (it == n.topics.end()) return;
  auto found = it->second.sinks.find(subscriber);
  if (found == it->second.sinks.end()) return;
  {
    std::lock_guard sink_lock(found->second->mu);
    found->second->closed = true;
    found->second->queue.clear();
  }
  it->second.sinks.erase(found);
  if (it->second.sinks.empty()) {
    n.runner.cancelListen(n.TopicHash(it->first), it->second.token);
    n.topics.erase(it);
    n.TopicsChanged();
  }
}

std::vector<std::string> P2pNode::Topics() const {
  std::lock_guard lock(impl_->sub_mu);
  std::vector<std::string> out;
  for (const auto& [t, s] : impl_->topics) out.push_back(t);
  return out;
}

Status P2pNode::SendDirect(std::string_view node_id, std::string_view type, std::string data) {
  return impl_->SendDirect(node_id, type, std::move(data));
}

void P2pNode::OnDirect(std::string_view type, MessageHandler handler) {
  std::lock_guard lock(impl_->direct_mu);
  impl_->direct_handlers[std::string(type)] = std::move(handler);
}

void P2pNode::UpdatePresence(Presence presence) {
  {
    std::lock_guard lock(impl_->peers_mu);
    if (presence == impl_->presence) return;
    impl_->presence = std::move(presence);
    impl_->presence_dirty = true;
  }
  impl_->WakeMaintenance();
}

Presence P2pNode::CurrentPresence() const {
  std::lock_guard lock(impl_->peers_mu);
  return impl_->presence;
}

std::vector<PeerInfo> P2pNode::Peers() const {
  std::lock_guard lock(impl_->peers_mu);
  std::vector<PeerInfo> out;
  for (const auto& [id, p] : impl_->peers) out.push_back(p);
  return out;
}

std::size_t P2pNode::ConnectedPeers() const { return impl_->ConnectedPeers(); }

Status P2pNode::SendDirectToKey(const PublicKey& recipient, std::string_view type, std::string data) {
  return impl_->SendDirectToKey(recipient, type, std::move(data));
}

Status P2pNode::RequestAdmission(std::string_view token, std::string_view name) {
  return impl_->RequestAdmission(token, name);
}

void P2pNode::OnJoinRequest(std::function<void(const JoinRequest&)> handler) {
  impl_->ListenJoin(std::move(handler));
}

void P2pNode::MembershipChanged() {
  {
    std::lock_guard lock(impl_->peers_mu);
    impl_->presence_dirty = true;
  }
  impl_->WakeMaintenance();
}

bool P2pNode::Authorize(const Frame& frame, std::string* refused) {
  if (frame.sender == impl_->identity.public_key()) return true;
  const cluster::Verdict v = impl_->membership->Check(frame.credential, frame.sender, cluster::NowMs());
  if (v.ok()) return true;
  impl_->Reject(TopicClass::kOther, v.refused, "read");
  impl_->probe.Violation("p2p_" + v.refused);
  impl_->n_refused_senders++;
  if (refused) *refused = v.refused;
  return false;
}

std::string P2pNode::credential() const { return impl_->Credential(); }

void P2pNode::SetRecordCheck(std::function<std::string(const Frame& frame)> check) {
  std::lock_guard lock(impl_->record_check_mu);
  impl_->record_check = std::move(check);
}

std::optional<PeerInfo> P2pNode::FindPeer(std::string_view node_id) const {
  std::lock_guard lock(impl_->peers_mu);
  auto it = impl_->peers.find(node_id);
  if (it == impl_->peers.end()) return std::nullopt;
  return it->second;
}

std::size_t P2pNode::ClearPeerStore() {
  Impl& n = *impl_;
  std::size_t forgotten = 0;
  if (const std::string path = n.PeersFile(); !path.empty()) {
    forgotten += internal::LoadPeerStore(path).size();
    std::error_code ec;
    fs::remove(path, ec);
  }
  std::lock_guard lock(n.peers_mu);
  forgotten += n.peers.size();
  n.peers.clear();
  n.peer_seq.clear();
  return forgotten;
}

DhtTableStats P2pNode::TableStats() const {
  const auto s = impl_->runner.getNodesStats(AF_INET);
  DhtTableStats out;
  out.good_nodes = s.good_nodes;
  out.dubious_nodes = s.dubious_nodes;
  out.searches = s.searches;
  return out;
}

PubsubStats P2pNode::Stats() const {
  Impl& n = *impl_;
  PubsubStats s;
  s.published = n.n_published.load();
  s.frames_sent = n.n_frames.load();
  s.received = n.n_received.load();
  s.dropped = n.n_dropped.load();
  s.repaired = n.n_repaired.load();
  s.rejected = n.n_rejected.load();
  s.publish_failures = n.n_failures.load();
  s.refused_senders = n.n_refused_senders.load();
  s.foreign_cluster = n.n_foreign.load();
  s.last_foreign_ms = n.last_foreign_ms.load();
  {
    std::lock_guard lock(n.drops_mu);
    for (const auto& [reason, count] : n.drops) s.dropped_by_reason[reason] = count;
  }
  std::lock_guard lock(n.refusal_mu);
  s.last_foreign_cluster = n.last_foreign_cluster;
  return s;
}

std::vector<LinkStats> P2pNode::Links() const {
  return impl_->mesh ? impl_->mesh->Links() : std::vector<LinkStats>{};
}

void P2pNode::DhtPut(std::string_view key, Bytes value, ValueClass cls, std::uint64_t value_id,
                     std::function<void(bool)> done) {
  const dht::ValueType::Id type = cls == ValueClass::kRecord ? kTypeRecord
                                  : cls == ValueClass::kProvider ? kTypeProvider
                                                                 : kTypeChunk;
  if (value_id == 0) value_id = RandomNonZeroU64();
  impl_->RememberOwn(std::string(key), value_id, value);
  impl_->PutValue(impl_->Hash(key), type, std::move(value), value_id, TopicClass::kOther, std::move(done));
}

void P2pNode::DhtGet(std::string_view key, std::function<void(std::vector<Bytes>, bool)> done) {
  if (impl_->Alone()) {  // what this node stored is all there is
    done(impl_->OwnValues(std::string(key)), true);
    return;
  }
  auto values = std::make_shared<std::vector<Bytes>>();
  const dht::ValueType::Id type = key.starts_with("rec:")    ? kTypeRecord
                                  : key.starts_with("prov:") ? kTypeProvider
                                                             : kTypeChunk;
  impl_->runner.get(
      impl_->Hash(key),
      [values](const std::vector<std::shared_ptr<dht::Value>>& vs) {
        for (const auto& v : vs) values->push_back(v->data);
        return true;
      },
      [values, done = std::move(done)](bool ok) { done(std::move(*values), ok); }, dht::Value::TypeFilter(type));
}

}  // namespace bzzz::p2p
