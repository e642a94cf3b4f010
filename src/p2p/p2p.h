// P2pNode: the node's place in the cluster, on OpenDHT (SPEC §3.3).
//
// - Membership (cluster/membership.h): the node sends frames only once it
//   holds a credential of its cluster, and every frame it receives, stores
//   for others or reads back from the DHT must carry a valid, unexpired,
//   unrevoked credential of the same cluster bound to the frame's signing
//   key; anything else is dropped and counted
//   (no_security_violations_total{kind}). The network id derives from the
//   cluster key unless p2p.network_id sets one. A node without a credential
//   may only put join requests (a join token in a kJoin frame).
// - Identity: an Ed25519 key in <data_dir>/p2p/identity.key; the OpenDHT
//   node id and the bzzz node id both derive from it, so a restart keeps both.
// - Network: a private network id, explicit bind address (loopback by
//   default), bootstrap peers from configuration plus the contacts saved in
//   <data_dir>/p2p/peers; multicast discovery only when configured.
// - Presence: every node puts a signed availability record under one
//   network-wide key each p2p.presence_interval, and at once when it
//   changes; every node listens there. A peer not heard from for
//   p2p.peer_expiry is dropped from the peer table.
// - PubSub: publishing packs one or more messages (batched when messages
//   queue up) into a signed frame. Frames travel over the pubsub mesh
//   (p2p/mesh.h): TCP links between admitted members on the member-link
//   port, pushed to the topic's subscribed peers and forwarded along a mesh
//   of bounded degree. A topic is also a DHT key that subscribers listen on:
//   a frame is put there too when some live member has no link yet (the
//   fallback path) or when p2p.pubsub.dht_copy asks for it (retention:
//   only what went through the DHT is retained). Frames are verified on
//   receipt (and by storage nodes); forged or tampered ones are dropped and
//   counted; the node's own frames and duplicates are dropped. Queues and
//   link buffers are bounded: the publisher waits a bounded time, then the
//   outgoing queue fills and Publish answers ResourceExhausted; every
//   message dropped anywhere is counted where it is dropped.
// - Direct messages: a frame sealed to the recipient's key and put under the
//   recipient's inbox key.
// - Member links: a UDP socket beside the DHT's (same host, its own port,
//   announced in presence, and learned from the source of every valid
//   member frame) takes signed frames sent straight to members, checked
//   like every other frame. PublishToMembers sends one frame to every member
//   link heard of in the last 10 minutes and puts the same frame into the
//   DHT as the fallback (receivers drop the second copy): the path of
//   time-critical traffic (the election), which therefore keeps working
//   while the DHT's routing recovers from a partition.
//
// Callbacks (subscription and direct-message handlers) run on the node's
// dispatcher threads, never on OpenDHT's thread; they may block briefly but
// should hand long work to their own threads. All methods are thread-safe.
// docs/p2p.md has the protocol in full.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cluster/credential.h"
#include "config/config.h"
#include "p2p/identity.h"
#include "p2p/wire.h"

namespace prometheus {
class Registry;
}

namespace bzzz::cluster {
class Membership;
}

namespace bzzz::p2p {

// The BZZZ availability broadcast (SPEC §3.3).
struct Presence {
  std::string agent_id;
  std::string role;
  std::vector<std::string> capabilities;
  std::vector<std::string> models;
  std::string http_endpoint;  // "http://127.0.0.1:8080"
  bool available_for_work = true;
  int current_tasks = 0;
  int max_tasks = 0;
  std::string status = "ready";
  std::string version;  // the node's build ("0.1.0"); empty from older builds
  std::string health;   // the node's health rollup ("healthy", "degraded", "unhealthy"); empty when unknown
  int peers = -1;       // the live peers the node sees; -1 when unknown
  // Where this node takes direct datagrams ("HOST:PORT"); set by the P2P node.
  std::string direct_endpoint;

  bool operator==(const Presence&) const = default;
};

std::string PresenceToJson(const Presence& presence, std::string_view node_id, std::string_view node_name);
// InvalidArgument on anything but the object PresenceToJson writes.
Result<Presence> PresenceFromJson(std::string_view json, std::string* node_name);

struct PeerInfo {
  std::string node_id;
  std::string name;
  PublicKey public_key{};
  Presence presence;
  std::chrono::system_clock::time_point first_seen;
  std::chrono::system_clock::time_point last_seen;
  std::int64_t announced_at_ms = 0;
};

// A received pubsub or direct message.
struct Message {
  std::string topic;  // "inbox/<node_id>" for direct messages, "join" for join requests
  Envelope envelope;
  PublicKey sender_key{};  // the verified signer
  // What the sender's verified credential says it is (join requests: the
  // role of the token they carry).
  cluster::NodeRole sender_role = cluster::NodeRole::kWorker;
  std::int64_t published_us = 0;
  std::int64_t received_us = 0;
};
using MessageHandler = std::function<void(const Message&)>;

struct SubscribeOptions {
  bool receive_own = false;      // deliver this node's own messages too (probes)
  bool replay_retained = false;  // deliver what the DHT still retains from before the subscription
};

struct Options {
  config::P2pConfig config;
  config::DhtConfig dht;  // expirations of records, providers and chunks
  std::string data_dir;   // "" keeps nothing on disk (tests, benchmarks)
  std::string node_name;
  Presence presence;      // the first announcement
  // Required: the cluster this node belongs to (or is joining). Shared with
  // the node, which admits, renews and revokes through it.
  std::shared_ptr<cluster::Membership> membership;
};

// A node's request to be admitted, as an authority receives it.
struct JoinRequest {
  PublicKey node_key{};
  std::string node_id;
  std::string name;
  std::string token;  // the join token text; its signature was checked on receipt
};

// OpenDHT value classes of the DHT subsystem (src/dht).
enum class ValueClass { kRecord, kProvider, kChunk };

struct DhtTableStats {
  unsigned good_nodes = 0;
  unsigned dubious_nodes = 0;
  unsigned searches = 0;
  std::size_t stored_values = 0;
  std::size_t stored_bytes = 0;
};

struct PubsubStats {
  std::uint64_t published = 0;
  std::uint64_t frames_sent = 0;
  std::uint64_t received = 0;
  std::uint64_t dropped = 0;
  std::uint64_t repaired = 0;  // delivered late by the mesh's lazy repair
  std::uint64_t rejected = 0;
  std::uint64_t publish_failures = 0;
  std::uint64_t refused_senders = 0;    // frames refused for their sender (any reason)
  std::uint64_t foreign_cluster = 0;    // of those: credentials of another cluster
  std::int64_t last_foreign_ms = 0;     // when the last one arrived (unix ms)
  std::string last_foreign_cluster;     // its cluster id
  // Dropped messages by reason (the bzzz_pubsub_messages_dropped_total
  // reasons): what a saturation run adds up.
  std::map<std::string, std::uint64_t> dropped_by_reason;
};

// One pubsub link to a member (the mesh, docs/p2p.md).
struct LinkStats {
  std::string node_id;
  bool outbound = false;               // this node dialed
  std::size_t topics = 0;              // topics the peer subscribes to
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t messages_dropped = 0;  // messages of frames dropped for this link (link_full, link_closed)
  std::size_t queued_bytes = 0;
  std::int64_t connected_ms = 0;       // unix ms
};

// The DHT key of a content-addressed chunk: "chunk:" + hex(SHA-1 of the
// bytes). Storage nodes refuse a chunk whose bytes do not hash to its key.
std::string ChunkKey(const std::uint8_t* data, std::size_t size);

// A stable OpenDHT value id for what one node keeps editing in place (its
// presence; its provider record for one name, salted with the name).
std::uint64_t ValueIdOf(const PublicKey& key, std::string_view salt);

class P2pNode {
 public:
  // Binds, bootstraps and starts presence. `metrics` may be null. Fails on a
  // bind error, an unreadable identity, or options without a membership
  // that knows its cluster. Until the membership holds a credential the
  // node announces nothing and Publish/SendDirect answer FailedPrecondition.
  static Result<std::unique_ptr<P2pNode>> Start(Options options, NodeIdentity identity,
                                                prometheus::Registry* metrics);
  ~P2pNode();  // Stop()
  P2pNode(const P2pNode&) = delete;
  P2pNode& operator=(const P2pNode&) = delete;

  // Saves the peer store, leaves the DHT and joins every thread. Idempotent.
  void Stop();

  const std::string& node_id() const;
  const NodeIdentity& identity() const;
  std::uint16_t port() const;  // the bound UDP port
  std::uint32_t network_id() const;  // the OpenDHT network id in use

  // --- PubSub ---
  // Queues one message. InvalidArgument for a bad topic or type or a payload
  // that cannot fit a frame; ResourceExhausted when the outgoing queue is full.
  Status Publish(std::string_view topic, std::string_view type, std::string data);
  // Joins `topic` for `subscriber`; joining again replaces the handler
  // (idempotent). The DHT listen exists while the topic has a subscriber.
  Status Subscribe(std::string_view topic, std::string_view subscriber, MessageHandler handler,
                   SubscribeOptions options = {});
  // Leaves; unknown topic or subscriber is fine (idempotent).
  void Unsubscribe(std::string_view topic, std::string_view subscriber);
  std::vector<std::string> Topics() const;
  // Puts an already encoded frame under `topic`: for tools and tests that
  // check how receivers treat foreign or damaged frames.
  Status PublishRawFrame(std::string_view topic, Bytes frame);
  // One signed frame straight to every member's link, and into the DHT
  // (see above); best effort like UDP. Subscribers of `topic` receive it as
  // any message.
  // InvalidArgument as Publish; FailedPrecondition before admission.
  Status PublishToMembers(std::string_view topic, std::string_view type, std::string data);
  std::uint16_t link_port() const;  // the member-link UDP port

  // --- Direct messages ---
  // NotFound when the recipient has not announced itself (no key known).
  Status SendDirect(std::string_view node_id, std::string_view type, std::string data);
  // One handler per message type; registering again replaces it.
  void OnDirect(std::string_view type, MessageHandler handler);
  // A direct message to a key whose presence is not known (an admission
  // answer to a node that is not a member yet).
  Status SendDirectToKey(const PublicKey& recipient, std::string_view type, std::string data);

  // --- Admission ---
  // Puts a join request carrying `token` (joining nodes, before admission).
  Status RequestAdmission(std::string_view token, std::string_view name);
  // Listens for join requests (authorities). Requests whose token is not a
  // valid, unexpired token of this cluster never reach `handler`.
  void OnJoinRequest(std::function<void(const JoinRequest&)> handler);
  // Announces at once (after admission or renewal).
  void MembershipChanged();
  // The verdict on a frame's sender, for frames read straight from the DHT
  // (records, providers).
  bool Authorize(const Frame& frame, std::string* refused = nullptr);
  // This node's credential, to put in frames it encodes itself ("" before admission).
  std::string credential() const;
  // What this node checks, as a storage node, in a record frame beyond its
  // signature and sender ("" to store it, else why not: counted as a
  // refusal at stage "store"). Set by the dht subsystem, which knows the
  // record format; callable from OpenDHT's thread.
  void SetRecordCheck(std::function<std::string(const Frame& frame)> check);

  // --- Presence and peers ---
  // Announces at once when `presence` differs from the last announcement.
  void UpdatePresence(Presence presence);
  Presence CurrentPresence() const;
  std::vector<PeerInfo> Peers() const;  // live peers, by node id
  std::size_t ConnectedPeers() const;
  std::optional<PeerInfo> FindPeer(std::string_view node_id) const;
  // Deletes <data_dir>/p2p/peers and forgets announced peers (they come back
  // as they announce again). Returns how many contacts were forgotten.
  std::size_t ClearPeerStore();

  DhtTableStats TableStats() const;
  PubsubStats Stats() const;
  // The open pubsub links to members, by node id.
  std::vector<LinkStats> Links() const;

  // --- Raw DHT access for the dht subsystem ---
  // Keys are namespaced by the network id; gets return only values of the
  // key's class ("rec:" records, "prov:" providers, else chunks). `value_id`
  // 0 lets OpenDHT pick.
  // Callbacks run on OpenDHT's thread: they must not block.
  void DhtPut(std::string_view key, Bytes value, ValueClass cls, std::uint64_t value_id,
              std::function<void(bool ok)> done);
  void DhtGet(std::string_view key, std::function<void(std::vector<Bytes> values, bool ok)> done);

 private:
  P2pNode();
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bzzz::p2p
