#include "p2p/mesh.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <sodium.h>
#include <spdlog/spdlog.h>

#include "base/hex.h"
#include "base/log.h"
#include "base/random.h"
#include "base/threads.h"
#include "p2p/topics.h"
#include "p2p/wire.h"

namespace bzzz::p2p::internal {

namespace {

constexpr SubsystemLog kLog{"p2p"};
using Clock = std::chrono::steady_clock;

// Link message types (the byte after the 4-byte length).
enum : std::uint8_t { kChallenge = 1, kHello = 2, kSubs = 3, kData = 4, kIHave = 5, kIWant = 6 };
constexpr std::uint8_t kForwardFlag = 1;
constexpr std::uint8_t kRepairFlag = 2;  // an answer to an iwant
constexpr std::size_t kNonceBytes = 32;
constexpr std::size_t kIdBytes = 32 + 8;  // sender key, seq
constexpr std::size_t kIdsPerMessage = 1600;
constexpr std::size_t kMaxLinkMessage = kMaxFrameBytes + 64;  // type, flags, a frame
constexpr std::size_t kMaxSubscriptions = 4096;
constexpr std::size_t kMaxPendingHandshakes = 64;
constexpr auto kHandshakeTimeout = std::chrono::seconds(5);
constexpr std::uint64_t kListenTag = ~0ull, kWakeTag = ~0ull - 1;

using FrameId = std::array<std::uint8_t, kIdBytes>;
struct FrameIdHash {
  std::size_t operator()(const FrameId& id) const {
    std::uint64_t a, b;
    std::memcpy(&a, id.data(), 8);
    std::memcpy(&b, id.data() + 32, 8);
    return static_cast<std::size_t>(a ^ (b * 0x9E3779B97F4A7C15ull));
  }
};

FrameId IdOf(const PublicKey& sender, std::uint64_t seq) {
  FrameId id;
  std::memcpy(id.data(), sender.data(), 32);
  for (int i = 0; i < 8; ++i) id[32 + i] = static_cast<std::uint8_t>(seq >> (8 * i));
  return id;
}

void SplitId(const std::uint8_t* p, PublicKey* sender, std::uint64_t* seq) {
  std::memcpy(sender->data(), p, 32);
  std::uint64_t s = 0;
  for (int i = 0; i < 8; ++i) s |= static_cast<std::uint64_t>(p[32 + i]) << (8 * i);
  *seq = s;
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A frame this node sent or received, kept to answer IWANT and to tell
// peers (IHAVE) what they may have missed.
struct Entry {
  FrameId id;
  std::string topic;
  std::shared_ptr<const Bytes> frame;
  std::uint64_t messages = 0;
  Clock::time_point at;
  std::vector<std::uint32_t> have;  // links known to hold it (serials)
  bool Has(std::uint32_t serial) const { return std::find(have.begin(), have.end(), serial) != have.end(); }
};

struct Out {
  std::array<std::uint8_t, 6> head{};
  std::uint8_t head_len = 0;
  std::shared_ptr<const Bytes> body;
  LinkTag tag{};
  std::uint8_t tag_len = 0;      // 0 for the handshake's two messages
  std::shared_ptr<Entry> entry;  // DATA but repairs: what was lost if the link closes first
  std::size_t off = 0;           // bytes of head + body + tag already written
  std::size_t body_size() const { return body ? body->size() : 0; }
  std::size_t size() const { return head_len + body_size() + tag_len; }
};

struct Conn {
  int fd = -1;
  std::uint32_t serial = 0;
  bool outbound = false;
  std::string expect;  // dialing: the node id that must answer
  std::array<std::uint8_t, kNonceBytes> nonce{};
  Clock::time_point opened;

  // I/O thread only.
  bool connecting = false;
  bool hello_sent = false;  // also: peer_nonce holds the peer's challenge
  std::array<std::uint8_t, kNonceBytes> peer_nonce{};
  PublicKey peer_key{};
  LinkKey recv_key{};
  std::uint64_t received = 0;  // authenticated messages received
  std::vector<std::uint8_t> in;
  std::size_t in_begin = 0, in_end = 0;
  Clock::time_point last_rx;

  // Guarded by Mesh::Impl::mu_.
  bool authed = false;
  std::string peer;
  std::unordered_set<std::string> subs;
  std::int64_t connected_ms = 0;

  // Guarded by out_mu.
  std::mutex out_mu;
  LinkKey send_key{};
  bool keyed = false;      // send_key is set: the handshake is over on this side
  std::uint64_t sent = 0;  // authenticated messages sent
  std::condition_variable room_cv;
  std::deque<Out> out;
  std::size_t out_bytes = 0;
  bool closed = false;
  bool want_out = false;
  int waiters = 0;  // publishers waiting for room

  std::atomic<std::uint64_t> frames_sent{0}, frames_received{0}, dropped{0};
};

}  // namespace

LinkKeys LinkKeysOf(const LinkKey& shared, const std::uint8_t* dialer_challenge,
                    const std::uint8_t* acceptor_challenge) {
  LinkKeys k;
  auto derive = [&](std::string_view label, LinkKey& out) {
    crypto_generichash_state s;
    crypto_generichash_init(&s, shared.data(), shared.size(), out.size());
    crypto_generichash_update(&s, reinterpret_cast<const std::uint8_t*>(label.data()), label.size());
    crypto_generichash_update(&s, dialer_challenge, kNonceBytes);
    crypto_generichash_update(&s, acceptor_challenge, kNonceBytes);
    crypto_generichash_final(&s, out.data(), out.size());
  };
  derive("bzzz link v1 dialer->acceptor", k.dialer_to_acceptor);
  derive("bzzz link v1 acceptor->dialer", k.acceptor_to_dialer);
  return k;
}

LinkTag LinkTagOf(const LinkKey& key, std::uint64_t number, const std::uint8_t* a, std::size_t a_size,
                  const std::uint8_t* b, std::size_t b_size) {
  // A one-time Poly1305 key per message: the first 32 bytes of ChaCha20
  // under the direction's key, with the message's number as the nonce.
  std::array<std::uint8_t, crypto_stream_chacha20_ietf_NONCEBYTES> nonce{};
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(number >> (8 * i));
  std::array<std::uint8_t, crypto_onetimeauth_poly1305_KEYBYTES> one_time{};
  crypto_stream_chacha20_ietf(one_time.data(), one_time.size(), nonce.data(), key.data());
  crypto_onetimeauth_poly1305_state s;
  crypto_onetimeauth_poly1305_init(&s, one_time.data());
  crypto_onetimeauth_poly1305_update(&s, a, a_size);
  if (b_size > 0) crypto_onetimeauth_poly1305_update(&s, b, b_size);
  LinkTag tag{};
  crypto_onetimeauth_poly1305_final(&s, tag.data());
  sodium_memzero(one_time.data(), one_time.size());
  return tag;
}

class Mesh::Impl {
 public:
  Impl(std::string own_id, MeshConfig config, MeshHooks hooks)
      : own_(std::move(own_id)), cfg_(config), hooks_(std::move(hooks)) {}

  ~Impl() { Stop(); }

  Status Start(const sockaddr_in& bind) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return Unavailable(std::string("p2p: link listener: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&bind), sizeof bind) != 0 ||
        ::listen(listen_fd_, 128) != 0) {
      return Unavailable(std::string("p2p: link listener on the member-link port: ") + std::strerror(errno));
    }
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep_ < 0 || wake_fd_ < 0) return Unavailable(std::string("p2p: epoll: ") + std::strerror(errno));
    Watch(listen_fd_, EPOLLIN, kListenTag, EPOLL_CTL_ADD);
    Watch(wake_fd_, EPOLLIN, kWakeTag, EPOLL_CTL_ADD);
    io_ = NamedThread("p2p-mesh", [this] { Loop(); });
    return Status::Ok();
  }

  std::uint16_t port() const {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
    return ntohs(a.sin_port);
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    Wake();
    if (io_.joinable()) io_.join();
    std::vector<std::shared_ptr<Conn>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& [s, c] : conns_) all.push_back(c);
      conns_.clear();
      by_peer_.clear();
    }
    for (auto& c : all) CloseFd(*c);
    for (int* fd : {&listen_fd_, &ep_, &wake_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }

  void Learn(const std::string& node_id, const sockaddr_in& addr) {
    if (node_id == own_) return;
    {
      std::lock_guard lock(mu_);
      auto& a = addrs_[node_id];
      const bool moved = a.addr.sin_port != addr.sin_port || a.addr.sin_addr.s_addr != addr.sin_addr.s_addr;
      if (!moved && a.learned != Clock::time_point{}) return;
      a.addr = addr;
      if (a.learned == Clock::time_point{}) a.learned = Clock::now();
      a.next_dial = Clock::time_point{};
      if (moved) a.backoff = std::chrono::milliseconds(100);
    }
    Wake();
  }

  void Forget(const std::string& node_id) {
    {
      std::lock_guard lock(mu_);
      addrs_.erase(node_id);
      forgotten_.push_back(node_id);
    }
    Wake();
  }

  void SetTopics(std::vector<std::string> topics) {
    std::string body;
    for (const auto& t : topics) {
      if (!body.empty()) body.push_back('\n');
      body += t;
    }
    auto bytes = std::make_shared<const Bytes>(body.begin(), body.end());
    std::vector<std::shared_ptr<Conn>> links;
    {
      std::lock_guard lock(mu_);
      topics_ = bytes;
      for (auto& [id, c] : by_peer_) links.push_back(c);
    }
    for (auto& c : links) Send(*c, kSubs, 0, false, bytes, nullptr, nullptr);
  }

  std::vector<std::string> Publish(const std::string& topic, std::shared_ptr<const Bytes> frame,
                                   std::uint64_t messages, std::chrono::milliseconds wait) {
    FrameRoute route;
    if (!PeekFrameRoute(frame->data(), frame->size(), &route)) return {};
    auto entry = std::make_shared<Entry>();
    entry->id = IdOf(route.sender, route.seq);
    entry->topic = topic;
    entry->frame = frame;
    entry->messages = messages;
    entry->at = Clock::now();
    bool forward = false;
    auto targets = MeshOf(topic, 0, "", *entry, &forward);
    for (const auto& c : targets) entry->have.push_back(c->serial);
    Remember(entry);
    std::vector<std::string> reached;
    const auto deadline = Clock::now() + wait;
    for (const auto& c : targets) {
      if (SendData(*c, entry, forward ? kForwardFlag : 0, &deadline)) {
        std::lock_guard lock(mu_);
        reached.push_back(c->peer);
      }
    }
    return reached;
  }

  bool Linked(std::string_view node_id) const {
    std::lock_guard lock(mu_);
    return by_peer_.find(node_id) != by_peer_.end();
  }

  std::vector<LinkInfo> Links() const {
    std::vector<LinkInfo> out;
    std::lock_guard lock(mu_);
    for (const auto& [id, c] : by_peer_) {
      LinkInfo l;
      l.node_id = id;
      l.outbound = c->outbound;
      l.topics = c->subs.size();
      l.frames_sent = c->frames_sent.load();
      l.frames_received = c->frames_received.load();
      l.messages_dropped = c->dropped.load();
      l.connected_ms = c->connected_ms;
      {
        std::lock_guard out_lock(c->out_mu);
        l.queued_bytes = c->out_bytes;
      }
      out.push_back(std::move(l));
    }
    return out;
  }

 private:
  struct Address {
    sockaddr_in addr{};
    Clock::time_point learned{};
    Clock::time_point next_dial{};
    std::chrono::milliseconds backoff{100};
  };

  const std::string own_;
  const MeshConfig cfg_;
  const MeshHooks hooks_;
  int listen_fd_ = -1, ep_ = -1, wake_fd_ = -1;
  std::thread io_;
  std::atomic<bool> stopping_{false};
  std::uint32_t next_serial_ = 0;  // I/O thread

  mutable std::mutex mu_;
  std::unordered_map<std::uint32_t, std::shared_ptr<Conn>> conns_;  // every open connection
  std::map<std::string, std::shared_ptr<Conn>, std::less<>> by_peer_;  // authenticated links
  std::map<std::string, Address, std::less<>> addrs_;
  std::vector<std::string> forgotten_;
  std::shared_ptr<const Bytes> topics_ = std::make_shared<const Bytes>();

  std::mutex cache_mu_;
  std::unordered_map<FrameId, std::shared_ptr<Entry>, FrameIdHash> cache_;
  std::deque<std::shared_ptr<Entry>> cache_order_;
  std::size_t cache_bytes_ = 0;

  void Wake() {
    const std::uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
  }

  void Watch(int fd, std::uint32_t events, std::uint64_t tag, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    ::epoll_ctl(ep_, op, fd, &ev);
  }

  // ----- the message cache -----

  void Remember(const std::shared_ptr<Entry>& e) {
    std::lock_guard lock(cache_mu_);
    if (!cache_.emplace(e->id, e).second) return;
    cache_order_.push_back(e);
    cache_bytes_ += e->frame->size();
    const auto too_old = Clock::now() - 5 * cfg_.heartbeat;
    while (!cache_order_.empty() && (cache_bytes_ > cfg_.cache_bytes || cache_order_.front()->at < too_old)) {
      cache_bytes_ -= cache_order_.front()->frame->size();
      cache_.erase(cache_order_.front()->id);
      cache_order_.pop_front();
    }
  }

  std::shared_ptr<Entry> Cached(const FrameId& id) {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(id);
    return it == cache_.end() ? nullptr : it->second;
  }

  // ----- routing -----

  // The links a frame on `topic` goes to: subscribed linked peers, except
  // `from` (the link it came over), the original sender and the links known
  // to hold it; all of them up to `degree`, else a stable choice of
  // `degree` flagged forward.
  std::vector<std::shared_ptr<Conn>> MeshOf(const std::string& topic, std::uint32_t from, const std::string& sender,
                                            const Entry& entry, bool* forward) {
    std::vector<std::pair<std::size_t, std::shared_ptr<Conn>>> candidates;
    std::size_t subscribed = 0;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, c] : by_peer_) {
        if (!c->subs.contains(topic)) continue;
        ++subscribed;
        if (c->serial == from || id == sender) continue;
        candidates.emplace_back(std::hash<std::string>{}(own_ + "|" + id + "|" + topic), c);
      }
    }
    {
      std::lock_guard lock(cache_mu_);
      std::erase_if(candidates, [&](const auto& p) { return entry.Has(p.second->serial); });
    }
    *forward = subscribed > cfg_.degree;
    if (candidates.size() > cfg_.degree) {
      std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      candidates.resize(cfg_.degree);
    }
    std::vector<std::shared_ptr<Conn>> out;
    for (auto& [rank, c] : candidates) out.push_back(std::move(c));
    return out;
  }

  // A repair (an answer to an iwant) that cannot go is not a new loss: the
  // first drop was counted where it happened, and the frame stays offered.
  bool SendData(Conn& c, const std::shared_ptr<Entry>& e, std::uint8_t flags, const Clock::time_point* deadline) {
    const bool repair = (flags & kRepairFlag) != 0;
    if (Send(c, kData, flags, true, e->frame, repair ? nullptr : e, deadline)) {
      c.frames_sent++;
      return true;
    }
    if (!repair) {
      c.dropped += e->messages;
      if (hooks_.on_drop) hooks_.on_drop(e->topic, "link_full", e->messages);
    }
    {
      // Not held there after all: the next ihave offers it (lazy repair).
      std::lock_guard lock(cache_mu_);
      std::erase(e->have, c.serial);
    }
    return false;
  }

  void Forward(const std::shared_ptr<Entry>& e, std::uint32_t from, const std::string& sender) {
    bool forward = false;
    auto targets = MeshOf(e->topic, from, sender, *e, &forward);
    if (targets.empty()) return;
    {
      std::lock_guard lock(cache_mu_);
      for (const auto& c : targets) e->have.push_back(c->serial);
    }
    for (const auto& c : targets) SendData(*c, e, kForwardFlag, nullptr);
  }

  // ----- sending -----

  // Queues one link message and writes what the socket takes at once.
  // DATA respects the link buffer (waiting until `deadline` when given,
  // else refusing); control messages always go.
  bool Send(Conn& c, std::uint8_t type, std::uint8_t flags, bool has_flags, std::shared_ptr<const Bytes> body,
            std::shared_ptr<Entry> entry, const Clock::time_point* deadline) {
    Out o;
    const bool handshake = type == kChallenge || type == kHello;
    o.tag_len = handshake ? 0 : kLinkTagBytes;
    const std::uint32_t len =
        static_cast<std::uint32_t>(1 + (has_flags ? 1 : 0) + (body ? body->size() : 0) + o.tag_len);
    for (int i = 0; i < 4; ++i) o.head[i] = static_cast<std::uint8_t>(len >> (8 * i));
    o.head[4] = type;
    o.head[5] = flags;
    o.head_len = has_flags ? 6 : 5;
    o.body = std::move(body);
    o.entry = std::move(entry);
    const std::size_t size = o.size();
    std::unique_lock lock(c.out_mu);
    if (type == kData) {
      while (!c.closed && c.out_bytes != 0 && c.out_bytes + size > cfg_.link_buffer_bytes) {
        if (deadline == nullptr || Clock::now() >= *deadline) return false;
        ++c.waiters;
        c.room_cv.wait_until(lock, *deadline);
        --c.waiters;
      }
    }
    if (c.closed) return false;
    if (!handshake) {
      // Nothing but the handshake goes without a tag; tags are numbered in
      // the order messages enter the stream (this lock).
      if (!c.keyed) return false;
      o.tag = LinkTagOf(c.send_key, c.sent++, o.head.data() + 4, o.head_len - 4u, o.body ? o.body->data() : nullptr,
                        o.body_size());
    }
    c.out.push_back(std::move(o));
    c.out_bytes += size;
    if (!c.connecting) Flush(c);
    if (!c.out.empty() && !c.want_out && !c.closed) {
      c.want_out = true;
      Watch(c.fd, EPOLLIN | EPOLLOUT, c.serial, EPOLL_CTL_MOD);
    }
    return true;
  }

  // Writes queued messages until the socket would block. Holds out_mu.
  void Flush(Conn& c) {
    while (!c.out.empty() && !c.closed) {
      iovec iov[64];
      int n = 0;
      for (auto it = c.out.begin(); it != c.out.end() && n <= 61; ++it) {
        std::size_t off = it->off;
        if (off < it->head_len) {
          iov[n++] = {it->head.data() + off, it->head_len - off};
          off = it->head_len;
        }
        const std::size_t body_end = it->head_len + it->body_size();
        if (off < body_end) {
          iov[n++] = {const_cast<std::uint8_t*>(it->body->data()) + (off - it->head_len), body_end - off};
          off = body_end;
        }
        if (off < it->size()) iov[n++] = {it->tag.data() + (off - body_end), it->size() - off};
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(n);
      const ssize_t w = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);  // a closed peer: EPIPE, not SIGPIPE
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        c.closed = true;  // the I/O thread reaps it (EPOLLERR / HUP)
        Wake();
        break;
      }
      std::size_t left = static_cast<std::size_t>(w);
      c.out_bytes -= left;
      while (left > 0 && !c.out.empty()) {
        Out& o = c.out.front();
        const std::size_t rest = o.size() - o.off;
        if (left >= rest) {
          left -= rest;
          c.out.pop_front();
        } else {
          o.off += left;
          left = 0;
        }
      }
    }
    // Wake waiting publishers once half the buffer is free, not at every
    // write (that would be a wake-up per socket write under load).
    if (c.waiters > 0 && (c.closed || c.out_bytes <= cfg_.link_buffer_bytes / 2)) c.room_cv.notify_all();
  }

  // ----- the I/O thread -----

  void Loop() {
    auto next_beat = Clock::now() + cfg_.heartbeat;
    epoll_event events[64];
    while (!stopping_.load()) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_beat - Clock::now()).count();
      const int n = ::epoll_wait(ep_, events, 64, static_cast<int>(std::clamp<long long>(wait, 0, 1000)));
      for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[i].data.u64;
        if (tag == kListenTag) {
          Accept();
        } else if (tag == kWakeTag) {
          std::uint64_t v;
          (void)!::read(wake_fd_, &v, sizeof v);
          Maintain(false);
        } else {
          OnEvent(static_cast<std::uint32_t>(tag), events[i].events);
        }
      }
      if (Clock::now() >= next_beat) {
        Maintain(true);
        next_beat = Clock::now() + cfg_.heartbeat;
      }
    }
  }

  std::shared_ptr<Conn> Find(std::uint32_t serial) {
    std::lock_guard lock(mu_);
    auto it = conns_.find(serial);
    return it == conns_.end() ? nullptr : it->second;
  }

  std::shared_ptr<Conn> Open(int fd, bool outbound, std::string expect) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_shared<Conn>();
    c->fd = fd;
    c->serial = ++next_serial_;
    if (c->serial == 0) c->serial = ++next_serial_;  // 0 means "no link" (MeshOf); tags are 64-bit, serials 32
    c->outbound = outbound;
    c->expect = std::move(expect);
    c->opened = c->last_rx = Clock::now();
    c->in.resize(256 * 1024);
    RandomBytes(c->nonce.data(), c->nonce.size());
    {
      std::lock_guard lock(mu_);
      conns_[c->serial] = c;
    }
    return c;
  }

  void Accept() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      std::size_t pending = 0;
      {
        std::lock_guard lock(mu_);
        for (const auto& [s, c] : conns_) pending += c->authed ? 0 : 1;
      }
      if (pending >= kMaxPendingHandshakes) {
        ::close(fd);
        if (hooks_.on_drop) hooks_.on_drop("", "link_refused", 0);
        continue;
      }
      auto c = Open(fd, false, "");
      Watch(fd, EPOLLIN, c->serial, EPOLL_CTL_ADD);
      SendChallenge(*c);
    }
  }

  void Dial(const std::string& node_id, const sockaddr_in& addr) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    auto c = Open(fd, true, node_id);
    const int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (r != 0 && errno != EINPROGRESS) {
      Close(c, "connect failed");
      return;
    }
    c->connecting = r != 0;
    // Watching EPOLLOUT while connecting: want_out says so, so that the
    // first writable event with nothing queued stops watching it (a
    // level-triggered EPOLLOUT left on would spin the I/O thread).
    c->want_out = c->connecting;
    Watch(fd, c->connecting ? EPOLLIN | EPOLLOUT : EPOLLIN, c->serial, EPOLL_CTL_ADD);
    if (!c->connecting) SendChallenge(*c);
  }

  void SendChallenge(Conn& c) {
    Send(c, kChallenge, 0, false, std::make_shared<const Bytes>(c.nonce.begin(), c.nonce.end()), nullptr, nullptr);
  }

  void CloseFd(Conn& c) {
    std::deque<Out> lost;
    {
      std::lock_guard lock(c.out_mu);
      if (c.fd >= 0) ::close(c.fd);  // also leaves the epoll set
      c.fd = -1;
      c.closed = true;
      lost.swap(c.out);
      c.out_bytes = 0;
      c.room_cv.notify_all();
    }
    for (const auto& o : lost) {
      if (o.entry && hooks_.on_drop) {
        hooks_.on_drop(o.entry->topic, "link_closed", o.entry->messages);
        c.dropped += o.entry->messages;
      }
    }
  }

  void Close(const std::shared_ptr<Conn>& c, std::string_view why) {
    std::string peer;
    {
      std::lock_guard lock(mu_);
      conns_.erase(c->serial);
      if (c->authed) {
        auto it = by_peer_.find(c->peer);
        if (it != by_peer_.end() && it->second == c) {
          by_peer_.erase(it);
          peer = c->peer;
        }
      }
    }
    if (!peer.empty()) kLog.debug("p2p: link to {} closed: {}", peer, why);
    CloseFd(*c);
  }

  void OnEvent(std::uint32_t serial, std::uint32_t events) {
    auto c = Find(serial);
    if (!c) return;
    if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        Close(c, "connect failed");
        return;
      }
      {
        std::lock_guard lock(c->out_mu);
        c->connecting = false;
      }
      SendChallenge(*c);
    }
    if (events & EPOLLOUT) {
      std::lock_guard lock(c->out_mu);
      if (!c->closed) {
        Flush(*c);
        if (c->out.empty() && c->want_out && !c->closed) {
          c->want_out = false;
          Watch(c->fd, EPOLLIN, c->serial, EPOLL_CTL_MOD);
        }
      }
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(c);
    bool broken;
    {
      std::lock_guard lock(c->out_mu);
      broken = c->closed;
    }
    if (broken) Close(c, "write failed");
  }

  void Read(const std::shared_ptr<Conn>& c) {
    // Bounded per event, so that one busy link cannot starve the others.
    for (int round = 0; round < 8; ++round) {
      if (c->in_begin > 0 && c->in_begin == c->in_end) c->in_begin = c->in_end = 0;
      if (c->in.size() - c->in_end < 16 * 1024) {
        std::memmove(c->in.data(), c->in.data() + c->in_begin, c->in_end - c->in_begin);
        c->in_end -= c->in_begin;
        c->in_begin = 0;
      }
      const ssize_t r = ::recv(c->fd, c->in.data() + c->in_end, c->in.size() - c->in_end, 0);
      if (r == 0) {
        Close(c, "closed by the peer");
        return;
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        Close(c, std::strerror(errno));
        return;
      }
      c->in_end += static_cast<std::size_t>(r);
      c->last_rx = Clock::now();
      while (c->in_end - c->in_begin >= 5) {
        const std::uint8_t* p = c->in.data() + c->in_begin;
        const std::uint32_t len = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
        if (len == 0 || len > kMaxLinkMessage || (!c->authed && len > 4096 + kMaxCredentialBytes)) {
          Close(c, "bad link message length");
          return;
        }
        if (c->in_end - c->in_begin < 4 + len) break;
        c->in_begin += 4 + len;
        std::size_t body = len - 1;
        if (c->authed) {
          // After the handshake: the tag, over the type, flags and body.
          if (len < 1 + kLinkTagBytes) {
            Close(c, "link message without its tag");
            return;
          }
          body -= kLinkTagBytes;
          const LinkTag want = LinkTagOf(c->recv_key, c->received++, p + 4, 1 + body);
          if (sodium_memcmp(want.data(), p + 4 + 1 + body, kLinkTagBytes) != 0) {
            kLog.warn("p2p: closing the link to {}: a message's tag does not verify", c->peer);
            Close(c, "a link message whose tag does not verify");
            return;
          }
        }
        if (!Handle(c, p[4], p + 5, body)) return;  // closed
      }
      if (static_cast<std::size_t>(r) < 16 * 1024) return;
    }
  }

  // False when the link was closed.
  bool Handle(const std::shared_ptr<Conn>& c, std::uint8_t type, const std::uint8_t* p, std::size_t n) {
    if (!c->authed) return Handshake(c, type, p, n);
    switch (type) {
      case kSubs: {
        std::unordered_set<std::string> subs;
        std::string_view all(reinterpret_cast<const char*>(p), n);
        while (!all.empty() && subs.size() < kMaxSubscriptions) {
          const auto nl = all.find('\n');
          const std::string_view t = all.substr(0, nl);
          if (ValidateTopic(t).empty()) subs.emplace(t);
          all = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
        }
        std::lock_guard lock(mu_);
        c->subs = std::move(subs);
        return true;
      }
      case kData:
        if (n < 1) break;
        OnData(c, p[0], p + 1, n - 1);
        return true;
      case kIHave:
        if (n % kIdBytes != 0) break;
        OnIHave(c, p, n);
        return true;
      case kIWant:
        if (n % kIdBytes != 0) break;
        OnIWant(c, p, n);
        return true;
      default:
        break;
    }
    Close(c, "protocol error");
    return false;
  }

  bool Handshake(const std::shared_ptr<Conn>& c, std::uint8_t type, const std::uint8_t* p, std::size_t n) {
    if (type == kChallenge && n == kNonceBytes && !c->hello_sent) {
      std::memcpy(c->peer_nonce.data(), p, kNonceBytes);
      auto hello = hooks_.sign_hello(HexOf(p, n));
      if (!hello.ok()) {
        Close(c, "cannot sign a hello (not admitted)");
        return false;
      }
      c->hello_sent = true;
      Send(*c, kHello, 0, false, std::make_shared<const Bytes>(std::move(hello).value()), nullptr, nullptr);
      return true;
    }
    // A hello before the peer's challenge: no keys can be agreed on.
    if (type != kHello || !c->hello_sent) {
      Close(c, "protocol error before the handshake");
      return false;
    }
    const auto peer = hooks_.check_hello(p, n, HexOf(c->nonce.data(), c->nonce.size()));
    if (!peer || peer->node_id == own_ || (c->outbound && peer->node_id != c->expect)) {
      Close(c, "handshake refused");
      return false;
    }
    const std::string& id = peer->node_id;
    auto shared = hooks_.shared_secret(peer->key);
    if (!shared.ok()) {
      Close(c, "no link key: " + shared.status().message());
      return false;
    }
    {
      const LinkKeys keys = c->outbound ? LinkKeysOf(*shared, c->nonce.data(), c->peer_nonce.data())
                                        : LinkKeysOf(*shared, c->peer_nonce.data(), c->nonce.data());
      sodium_memzero(shared->data(), shared->size());
      c->peer_key = peer->key;
      c->recv_key = c->outbound ? keys.acceptor_to_dialer : keys.dialer_to_acceptor;
      std::lock_guard lock(c->out_mu);
      c->send_key = c->outbound ? keys.dialer_to_acceptor : keys.acceptor_to_dialer;
      c->keyed = true;
    }
    // Two links to one peer: both ends keep the one the lower id dialed.
    std::shared_ptr<Conn> other;
    std::shared_ptr<const Bytes> topics;
    {
      std::lock_guard lock(mu_);
      auto it = by_peer_.find(id);
      if (it != by_peer_.end()) {
        const bool want_outbound = own_ < id;
        if (it->second->outbound == want_outbound) {
          other = c;  // the existing one is the keeper
        } else {
          other = it->second;
        }
      }
      if (other != c) {
        c->authed = true;
        c->peer = id;
        c->connected_ms = NowMs();
        by_peer_[id] = c;
        if (auto a = addrs_.find(id); a != addrs_.end()) a->second.backoff = std::chrono::milliseconds(100);
      }
      topics = topics_;
    }
    if (other) Close(other, "a second link to the same peer");
    if (other == c) return false;
    kLog.debug("p2p: link to {} up ({})", id, c->outbound ? "dialed" : "accepted");
    Send(*c, kSubs, 0, false, topics, nullptr, nullptr);
    return true;
  }

  void OnData(const std::shared_ptr<Conn>& c, std::uint8_t flags, const std::uint8_t* p, std::size_t n) {
    c->frames_received++;
    FrameRoute route;
    if (!PeekFrameRoute(p, n, &route) || route.kind != FrameKind::kPubsub) {
      (void)hooks_.on_frame(p, n, Origin::kSignature);  // refuses and counts it
      return;
    }
    if (hooks_.seen(route.sender, route.seq)) {
      if (auto e = Cached(IdOf(route.sender, route.seq))) {
        std::lock_guard lock(cache_mu_);
        if (!e->Has(c->serial)) e->have.push_back(c->serial);
      }
      if (hooks_.on_drop) hooks_.on_drop(route.topic, "duplicate", route.messages);
      return;
    }
    // From its signer, over this authenticated link, and not to be passed
    // on: the link's tag stands for the signature. A frame this node will
    // forward is verified first, so that it never passes on a frame whose
    // signature the next hop would refuse.
    const bool from_signer = route.sender == c->peer_key && (flags & kForwardFlag) == 0;
    if (!hooks_.on_frame(p, n, from_signer ? Origin::kAuthenticatedLink : Origin::kSignature)) return;
    auto e = std::make_shared<Entry>();
    e->id = IdOf(route.sender, route.seq);
    e->topic = route.topic;
    e->frame = std::make_shared<const Bytes>(p, p + n);
    e->messages = route.messages;
    e->at = Clock::now();
    e->have.push_back(c->serial);
    Remember(e);
    if ((flags & kRepairFlag) && hooks_.on_repaired) hooks_.on_repaired(e->topic, e->messages);
    if (flags & kForwardFlag) Forward(e, c->serial, NodeIdOf(route.sender));
  }

  void OnIHave(const std::shared_ptr<Conn>& c, const std::uint8_t* p, std::size_t n) {
    Bytes want;
    for (std::size_t off = 0; off < n && want.size() < kIdsPerMessage * kIdBytes; off += kIdBytes) {
      PublicKey sender;
      std::uint64_t seq;
      SplitId(p + off, &sender, &seq);
      if (auto e = Cached(IdOf(sender, seq))) {
        std::lock_guard lock(cache_mu_);
        if (!e->Has(c->serial)) e->have.push_back(c->serial);
        continue;
      }
      if (!hooks_.seen(sender, seq)) want.insert(want.end(), p + off, p + off + kIdBytes);
    }
    if (!want.empty()) Send(*c, kIWant, 0, false, std::make_shared<const Bytes>(std::move(want)), nullptr, nullptr);
  }

  void OnIWant(const std::shared_ptr<Conn>& c, const std::uint8_t* p, std::size_t n) {
    for (std::size_t off = 0; off < n; off += kIdBytes) {
      FrameId id;
      std::memcpy(id.data(), p + off, kIdBytes);
      auto e = Cached(id);
      if (!e) continue;  // evicted: the gap stays (counted nowhere: the sender counted nothing lost yet)
      {
        std::lock_guard lock(mu_);
        if (!c->subs.contains(e->topic)) continue;  // only topics the peer subscribes to
      }
      {
        std::lock_guard lock(cache_mu_);
        if (!e->Has(c->serial)) e->have.push_back(c->serial);
      }
      SendData(*c, e, kRepairFlag, nullptr);
    }
  }

  // Heartbeat (and on wake-up: dialing and forgetting only).
  void Maintain(bool beat) {
    const auto now = Clock::now();
    std::vector<std::shared_ptr<Conn>> to_close;
    std::vector<std::pair<std::string, sockaddr_in>> to_dial;
    std::vector<std::shared_ptr<Conn>> links;
    {
      std::lock_guard lock(mu_);
      for (const auto& id : forgotten_) {
        if (auto it = by_peer_.find(id); it != by_peer_.end()) to_close.push_back(it->second);
      }
      forgotten_.clear();
      std::set<std::string> dialing;
      for (const auto& [s, c] : conns_) {
        if (!c->authed && c->outbound) dialing.insert(c->expect);
        if (!c->authed && now - c->opened > kHandshakeTimeout) to_close.push_back(c);
        if (c->authed && beat && now - c->last_rx > 10 * cfg_.heartbeat + std::chrono::seconds(2)) {
          to_close.push_back(c);
        }
        if (c->authed) links.push_back(c);
      }
      for (auto& [id, a] : addrs_) {
        if (by_peer_.contains(id) || dialing.contains(id) || now < a.next_dial) continue;
        if (by_peer_.size() + to_dial.size() >= cfg_.max_links) break;
        // The lower id dials; the higher one too once the lower has had a
        // few heartbeats to do so (it may not know this node's address).
        if (own_ > id && now - a.learned < 3 * cfg_.heartbeat) continue;
        to_dial.emplace_back(id, a.addr);
        a.next_dial = now + a.backoff;
        a.backoff = std::min<std::chrono::milliseconds>(a.backoff * 2, std::chrono::seconds(10));
      }
    }
    for (auto& c : to_close) Close(c, "idle, timed out or forgotten");
    for (auto& [id, addr] : to_dial) Dial(id, addr);
    if (beat) Gossip(links, now);
  }

  // IHAVE to every link: recent frames on its topics it is not known to hold.
  // An empty IHAVE is the keep-alive.
  void Gossip(const std::vector<std::shared_ptr<Conn>>& links, Clock::time_point now) {
    // Frames at least a heartbeat old: a copy still on its way over another
    // link has had that long to arrive, so an iwant is for a real gap.
    const auto recent = now - 3 * cfg_.heartbeat, settled = now - cfg_.heartbeat;
    for (const auto& c : links) {
      std::unordered_set<std::string> subs;
      {
        std::lock_guard lock(mu_);
        if (!c->authed) continue;
        subs = c->subs;
      }
      Bytes ids;
      {
        std::lock_guard lock(cache_mu_);
        for (auto it = cache_order_.rbegin(); it != cache_order_.rend() && (*it)->at >= recent; ++it) {
          Entry& e = **it;
          if (e.at > settled) continue;
          if (e.Has(c->serial) || !subs.contains(e.topic)) continue;
          e.have.push_back(c->serial);
          ids.insert(ids.end(), e.id.begin(), e.id.end());
          if (ids.size() >= kIdsPerMessage * kIdBytes) break;
        }
      }
      Send(*c, kIHave, 0, false, std::make_shared<const Bytes>(std::move(ids)), nullptr, nullptr);
    }
  }
};

Mesh::Mesh(std::string own_id, MeshConfig config, MeshHooks hooks)
    : impl_(std::make_unique<Impl>(std::move(own_id), config, std::move(hooks))) {}
Mesh::~Mesh() = default;
Status Mesh::Start(const sockaddr_in& bind) { return impl_->Start(bind); }
std::uint16_t Mesh::port() const { return impl_->port(); }
void Mesh::Stop() { impl_->Stop(); }
void Mesh::Learn(const std::string& node_id, const sockaddr_in& addr) { impl_->Learn(node_id, addr); }
void Mesh::Forget(const std::string& node_id) { impl_->Forget(node_id); }
void Mesh::SetTopics(std::vector<std::string> topics) { impl_->SetTopics(std::move(topics)); }
std::vector<std::string> Mesh::Publish(const std::string& topic, std::shared_ptr<const Bytes> frame,
                                       std::uint64_t messages, std::chrono::milliseconds wait) {
  return impl_->Publish(topic, std::move(frame), messages, wait);
}
bool Mesh::Linked(std::string_view node_id) const { return impl_->Linked(node_id); }
std::vector<LinkInfo> Mesh::Links() const { return impl_->Links(); }

}  // namespace bzzz::p2p::internal
