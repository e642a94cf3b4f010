// Metrics of the P2P subsystem (SPEC §3.3, §4). Only this class knows
// their names:
//   bzzz_p2p_connected_peers                               live announced peers
//   bzzz_p2p_dht_nodes{state="good"|"dubious"}             OpenDHT routing table
//   bzzz_pubsub_messages_published_total{topic_class}
//   bzzz_pubsub_messages_received_total{topic_class}
//   bzzz_pubsub_messages_dropped_total{topic_class,reason} self, duplicate,
//       queue_full, publish_queue_full, retained, no_handler, encode_failed,
//       link_full, link_closed
//   bzzz_pubsub_messages_repaired_total{topic_class}       delivered late, by the mesh's
//       lazy repair (ihave/iwant) after a drop elsewhere
//   bzzz_p2p_member_links                                  open pubsub mesh links
//   bzzz_pubsub_messages_rejected_total{topic_class,reason,stage}
//       bad_signature, malformed, wrong_topic, undecryptable; stage
//       "receive" (subscriber), "store" (DHT storage node) or "link" (member links)
//   bzzz_pubsub_frames_sent_total{topic_class}             batches sent
//   bzzz_pubsub_publish_failures_total{topic_class}        puts no node took
//   bzzz_pubsub_delivery_latency_seconds{topic_class}      publish -> handler queue
//   bzzz_errors_total{component="p2p"}
//   no_security_violations_total{kind}                     frames refused because
//       of who sent them: p2p_no_credential, p2p_foreign_cluster,
//       p2p_bad_credential, p2p_key_mismatch, p2p_expired, p2p_revoked,
//       p2p_join_invalid (the family is shared with the security subsystem)
// Topic classes are a fixed set (p2p/topics.h), so label sets stay bounded.
// Thread-safe; every method is a no-op without a registry.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "p2p/topics.h"

namespace prometheus {
class Registry;
}

namespace bzzz::p2p {

class P2pProbe {
 public:
  explicit P2pProbe(prometheus::Registry* registry);
  ~P2pProbe();

  void Published(TopicClass c, std::uint64_t messages);
  void FrameSent(TopicClass c);
  void PublishFailed(TopicClass c);
  void Received(TopicClass c, double latency_seconds);
  void Dropped(TopicClass c, std::string_view reason, std::uint64_t messages = 1);
  void Repaired(TopicClass c, std::uint64_t messages);
  void Links(std::size_t open);
  void Rejected(TopicClass c, std::string_view reason, std::string_view stage);
  void Peers(std::size_t connected, unsigned good_nodes, unsigned dubious_nodes);
  void Error();
  // A frame refused for its sender (no_security_violations_total{kind}).
  void Violation(std::string_view kind);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace bzzz::p2p
