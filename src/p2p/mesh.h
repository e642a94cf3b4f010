// Private to the P2P node: pubsub over direct links between admitted
// members (docs/p2p.md, "The pubsub mesh").
//
// - Links: one TCP connection per pair of members, on the member-link port
//   (the UDP link's port number, announced in presence). Either side may
//   dial; when two connections to one peer authenticate, both ends keep the
//   one dialed by the lower node id.
// - Handshake: each end sends a random 32-byte challenge, then a signed
//   kLink frame over the other end's challenge, carrying its cluster
//   credential. A connection is a member's link only once that frame
//   verifies (signature, credential of this cluster, the expected node id
//   when dialing); a stranger's connection never gets past it and is closed.
// - Link authentication: each direction has its own key, BLAKE2b of the
//   two ends' X25519 shared secret (their node keys, converted) and both
//   challenges (LinkKeysOf). After the handshake every link message ends in
//   a 16-byte Poly1305 tag over its type, flags and body, keyed per message
//   by ChaCha20 under the direction's key and the message's number on the
//   link (LinkTagOf): a message that was changed, injected, replayed or
//   reordered closes the link. A DATA frame whose sender is the link's peer
//   and that is not flagged "forward" is then known to come from its
//   signer: its Ed25519 signature is not checked again (Origin::
//   kAuthenticatedLink), which is most of a receiver's cost per frame.
//   Forwarded and repaired frames of others are verified as always.
//   After the handshake the link carries, length-prefixed:
//     SUBS   the topics its sender subscribes to (full replacement)
//     DATA   a signed pubsub frame, forwarded byte for byte (flags: forward)
//     IHAVE  ids (sender key, seq) of recent frames its sender holds
//     IWANT  ids its sender misses (answered from the message cache)
// - Routing in the spirit of gossipsub: a topic's mesh is its subscribed
//   linked peers; a frame goes to all of them when there are at most
//   `degree`, else to `degree` of them (a stable choice per topic) flagged
//   "forward", and every receiver forwards a first-seen forward frame to its
//   own mesh (duplicates suppressed by frame id). Each heartbeat a node
//   tells every linked subscriber which frames of the last 3 heartbeats (at
//   least one heartbeat old) it holds that the peer is not known to have
//   (IHAVE); the peer asks for the ones it misses (IWANT), and the answers
//   are flagged as repairs: the lazy repair of gaps left by a dropped
//   connection or a dropped frame. A repair that cannot be sent is not
//   counted again.
// - Flow control: each link has a bounded outgoing buffer. The publisher
//   waits for room (at most 1 s; not at all while its node stops); past
//   that, and for forwarded frames at once, the frame is dropped for that
//   link and counted
//   (`link_full`), so that under overload the node's outgoing queue fills
//   and Publish answers ResourceExhausted. A receiver's delivery may wait
//   for room in a subscriber's queue, which stops it reading its links, so
//   that TCP pushes back to the publisher.
//
// One I/O thread (epoll) reads every link and flushes what a direct write
// could not send; publishers write straight to the socket when its buffer
// is empty. Thread-safe.
#pragma once

#include <netinet/in.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "p2p/identity.h"
#include "p2p/p2p.h"
#include "p2p/wire.h"

namespace bzzz::p2p::internal {

struct MeshConfig {
  std::size_t degree = 6;                     // peers a frame is pushed to, per topic
  std::size_t max_links = 128;                // authenticated links; further members are not linked
  std::size_t link_buffer_bytes = 4u << 20;   // outgoing bytes held per link
  std::size_t cache_bytes = 32u << 20;        // recent frames kept to answer IWANT
  std::chrono::milliseconds heartbeat{1000};  // IHAVE, dialing, idle checks
};

inline constexpr std::size_t kLinkTagBytes = 16;
using LinkKey = std::array<std::uint8_t, 32>;
using LinkTag = std::array<std::uint8_t, kLinkTagBytes>;
struct LinkKeys {
  LinkKey dialer_to_acceptor{}, acceptor_to_dialer{};
};
// The two directions' keys of a link from the ends' shared secret and the
// 32-byte challenges each end sent.
LinkKeys LinkKeysOf(const LinkKey& shared, const std::uint8_t* dialer_challenge,
                    const std::uint8_t* acceptor_challenge);
// The tag of the `number`th message sent under `key` (counted from 0 after
// the handshake); the message's type, flags and body, in up to two pieces.
LinkTag LinkTagOf(const LinkKey& key, std::uint64_t number, const std::uint8_t* a, std::size_t a_size,
                  const std::uint8_t* b = nullptr, std::size_t b_size = 0);

// The member at the other end of a hello that verified.
struct LinkPeer {
  std::string node_id;
  PublicKey key{};
};

// What the mesh needs from its node.
struct MeshHooks {
  // A signed kLink frame whose one message carries `challenge` (hex).
  std::function<Result<Bytes>(const std::string& challenge)> sign_hello;
  // The sender of a hello frame when it is a kLink frame over `challenge`
  // signed by a member in good standing; nullopt otherwise (the hook counts
  // the refusal).
  std::function<std::optional<LinkPeer>(const std::uint8_t* data, std::size_t size, const std::string& challenge)>
      check_hello;
  // The secret this node shares with `peer` (NodeIdentity::SharedSecret).
  std::function<Result<LinkKey>(const PublicKey& peer)> shared_secret;
  // Verifies (as `origin` says), admits and delivers a pubsub frame that
  // came over a link. True when the frame was valid and new (the mesh then
  // caches and forwards it). May wait a bounded time for room in subscriber
  // queues.
  std::function<bool(const std::uint8_t* data, std::size_t size, Origin origin)> on_frame;
  // Whether a verified frame (sender, seq) was delivered already.
  std::function<bool(const PublicKey& sender, std::uint64_t seq)> seen;
  // A frame that arrived as an answer to this node's iwant was new: its
  // messages were repaired.
  std::function<void(std::string_view topic, std::uint64_t messages)> on_repaired;
  // `messages` messages of a frame on `topic` were dropped for `reason`.
  std::function<void(std::string_view topic, std::string_view reason, std::uint64_t messages)> on_drop;
};

using LinkInfo = LinkStats;

class Mesh {
 public:
  Mesh(std::string own_id, MeshConfig config, MeshHooks hooks);
  ~Mesh();  // Stop()
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // Listens on TCP `bind`:port (port 0: one the kernel picks) and starts
  // the I/O thread.
  Status Start(const sockaddr_in& bind);
  void Stop();
  // The TCP port listened on (after Start).
  std::uint16_t port() const;

  // Where a member's link is (presence, or the source of its link frame).
  // The mesh dials it when no link exists.
  void Learn(const std::string& node_id, const sockaddr_in& addr);
  // A member that left (revoked, expired): its link is closed.
  void Forget(const std::string& node_id);
  // This node's subscriptions, sent to every link.
  void SetTopics(std::vector<std::string> topics);

  // Sends this node's signed frame to the topic's mesh. Waits up to `wait`
  // for room in a full link buffer, then drops the frame for that link
  // (counted). Returns the node ids of the links it reached.
  std::vector<std::string> Publish(const std::string& topic, std::shared_ptr<const Bytes> frame,
                                   std::uint64_t messages, std::chrono::milliseconds wait);
  // Whether an authenticated link to `node_id` is open.
  bool Linked(std::string_view node_id) const;
  std::vector<LinkInfo> Links() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bzzz::p2p::internal
