#include "p2p/probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <map>
#include <mutex>
#include <string>

namespace bzzz::p2p {

namespace {
constexpr std::size_t kClasses = static_cast<std::size_t>(TopicClass::kOther) + 1;
std::size_t Index(TopicClass c) { return static_cast<std::size_t>(c); }
std::string Label(TopicClass c) { return std::string(ClassName(c)); }
}  // namespace

struct P2pProbe::State {
  prometheus::Registry* registry = nullptr;
  std::array<prometheus::Counter*, kClasses> published{};
  std::array<prometheus::Counter*, kClasses> received{};
  std::array<prometheus::Counter*, kClasses> frames{};
  std::array<prometheus::Counter*, kClasses> failures{};
  std::array<prometheus::Counter*, kClasses> repaired{};
  prometheus::Gauge* links = nullptr;
  std::array<prometheus::Histogram*, kClasses> latency{};
  prometheus::Family<prometheus::Counter>* dropped = nullptr;
  prometheus::Family<prometheus::Counter>* rejected = nullptr;
  prometheus::Family<prometheus::Counter>* violations = nullptr;
  prometheus::Gauge* peers = nullptr;
  prometheus::Gauge* good = nullptr;
  prometheus::Gauge* dubious = nullptr;
  prometheus::Counter* errors = nullptr;

  std::mutex mu;  // for the lazily resolved (class, reason) series
  std::map<std::string, prometheus::Counter*> series;
};

P2pProbe::P2pProbe(prometheus::Registry* registry) : state_(std::make_unique<State>()) {
  if (registry == nullptr) return;
  auto& s = *state_;
  s.registry = registry;
  auto& published = prometheus::BuildCounter()
                        .Name("bzzz_pubsub_messages_published_total")
                        .Help("PubSub messages published by this node, by topic class")
                        .Register(*registry);
  auto& received = prometheus::BuildCounter()
                       .Name("bzzz_pubsub_messages_received_total")
                       .Help("PubSub messages received from other nodes and accepted, by topic class")
                       .Register(*registry);
  auto& frames = prometheus::BuildCounter()
                     .Name("bzzz_pubsub_frames_sent_total")
                     .Help("Signed frames (message batches) sent, by topic class")
                     .Register(*registry);
  auto& failures = prometheus::BuildCounter()
                       .Name("bzzz_pubsub_publish_failures_total")
                       .Help("Frames no DHT node accepted, by topic class")
                       .Register(*registry);
  auto& repaired = prometheus::BuildCounter()
                       .Name("bzzz_pubsub_messages_repaired_total")
                       .Help("Messages delivered late by the mesh's lazy repair (ihave/iwant), by topic class")
                       .Register(*registry);
  // Loopback deliveries take tens of microseconds; WAN ones up to seconds.
  auto& latency = prometheus::BuildHistogram()
                      .Name("bzzz_pubsub_delivery_latency_seconds")
                      .Help("Time from publish on the sender to delivery on this node, by topic class")
                      .Register(*registry);
  const prometheus::Histogram::BucketBoundaries buckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                           0.01,    0.025,  0.05,    0.1,    0.25,  0.5,   1,
                                                           2.5,     5};
  for (std::size_t i = 0; i < kClasses; ++i) {
    const auto c = static_cast<TopicClass>(i);
    s.published[i] = &published.Add({{"topic_class", Label(c)}});
    s.received[i] = &received.Add({{"topic_class", Label(c)}});
    s.frames[i] = &frames.Add({{"topic_class", Label(c)}});
    s.failures[i] = &failures.Add({{"topic_class", Label(c)}});
    s.repaired[i] = &repaired.Add({{"topic_class", Label(c)}});
    s.latency[i] = &latency.Add({{"topic_class", Label(c)}}, buckets);
  }
  s.dropped = &prometheus::BuildCounter()
                   .Name("bzzz_pubsub_messages_dropped_total")
                   .Help("Messages dropped by topic class and reason (self, duplicate, queue_full, "
                         "publish_queue_full, retained, no_handler, encode_failed, link_full, link_closed)")
                   .Register(*registry);
  s.rejected = &prometheus::BuildCounter()
                    .Name("bzzz_pubsub_messages_rejected_total")
                    .Help("Frames refused by topic class, reason (bad_signature, malformed, wrong_topic, "
                          "undecryptable) and stage (receive, store, link)")
                    .Register(*registry);
  s.links = &prometheus::BuildGauge()
                 .Name("bzzz_p2p_member_links")
                 .Help("Open pubsub mesh links to members")
                 .Register(*registry)
                 .Add({});
  s.peers = &prometheus::BuildGauge()
                 .Name("bzzz_p2p_connected_peers")
                 .Help("Peers whose presence announcement is live")
                 .Register(*registry)
                 .Add({});
  auto& nodes = prometheus::BuildGauge()
                    .Name("bzzz_p2p_dht_nodes")
                    .Help("Nodes in the OpenDHT routing table, by state")
                    .Register(*registry);
  s.good = &nodes.Add({{"state", "good"}});
  s.dubious = &nodes.Add({{"state", "dubious"}});
  s.errors = &prometheus::BuildCounter()
                  .Name("bzzz_errors_total")
                  .Help("Errors by component")
                  .Register(*registry)
                  .Add({{"component", "p2p"}});
  // Shared with security::SecurityProbe (the registry merges same-name families).
  s.violations = &prometheus::BuildCounter()
                      .Name("no_security_violations_total")
                      .Help("Detected security violations (forged messages, tampering, policy breaches)")
                      .Register(*registry);
  for (const char* kind : {"p2p_no_credential", "p2p_foreign_cluster", "p2p_revoked"}) {
    s.series[std::string("v") + kind] = &s.violations->Add({{"kind", kind}});
  }
  // Pre-create the common series so dashboards see zeros, not gaps.
  for (const char* reason : {"queue_full", "duplicate"}) Dropped(TopicClass::kCoordination, reason, 0);
  s.series["rcoordination/bad_signature/receive"] = &s.rejected->Add(
      {{"topic_class", "coordination"}, {"reason", "bad_signature"}, {"stage", "receive"}});
}

P2pProbe::~P2pProbe() = default;

void P2pProbe::Published(TopicClass c, std::uint64_t n) {
  if (auto* m = state_->published[Index(c)]) m->Increment(static_cast<double>(n));
}
void P2pProbe::FrameSent(TopicClass c) {
  if (auto* m = state_->frames[Index(c)]) m->Increment();
}
void P2pProbe::PublishFailed(TopicClass c) {
  if (auto* m = state_->failures[Index(c)]) m->Increment();
}
void P2pProbe::Received(TopicClass c, double latency) {
  if (auto* m = state_->received[Index(c)]) m->Increment();
  if (auto* h = state_->latency[Index(c)]) h->Observe(latency < 0 ? 0 : latency);
}

void P2pProbe::Repaired(TopicClass c, std::uint64_t n) {
  if (auto* m = state_->repaired[Index(c)]) m->Increment(static_cast<double>(n));
}
void P2pProbe::Links(std::size_t open) {
  if (auto* g = state_->links) g->Set(static_cast<double>(open));
}

void P2pProbe::Violation(std::string_view kind) {
  auto& s = *state_;
  if (s.violations == nullptr) return;
  const std::string key = "v" + std::string(kind);
  std::lock_guard lock(s.mu);
  auto& counter = s.series[key];
  if (counter == nullptr) counter = &s.violations->Add({{"kind", std::string(kind)}});
  counter->Increment();
}

void P2pProbe::Dropped(TopicClass c, std::string_view reason, std::uint64_t n) {
  auto& s = *state_;
  if (s.dropped == nullptr) return;
  const std::string key = "d" + Label(c) + "/" + std::string(reason);
  std::lock_guard lock(s.mu);
  auto& counter = s.series[key];
  if (counter == nullptr) counter = &s.dropped->Add({{"topic_class", Label(c)}, {"reason", std::string(reason)}});
  counter->Increment(static_cast<double>(n));
}

void P2pProbe::Rejected(TopicClass c, std::string_view reason, std::string_view stage) {
  auto& s = *state_;
  if (s.rejected == nullptr) return;
  const std::string key = "r" + Label(c) + "/" + std::string(reason) + "/" + std::string(stage);
  std::lock_guard lock(s.mu);
  auto& counter = s.series[key];
  if (counter == nullptr) {
    counter = &s.rejected->Add(
        {{"topic_class", Label(c)}, {"reason", std::string(reason)}, {"stage", std::string(stage)}});
  }
  counter->Increment();
}

void P2pProbe::Peers(std::size_t connected, unsigned good, unsigned dubious) {
  auto& s = *state_;
  if (s.peers == nullptr) return;
  s.peers->Set(static_cast<double>(connected));
  s.good->Set(good);
  s.dubious->Set(dubious);
}

void P2pProbe::Error() {
  if (auto* m = state_->errors) m->Increment();
}

}  // namespace bzzz::p2p
