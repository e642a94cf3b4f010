// Tasks across nodes (docs/tasks.md, "Ownership protocol"): the threads
// that run the protocol of cluster_core.h (MasterCore, LinkCore) on a node.
//
// The node that accepts a task owns it: it alone writes it, leases its
// attempts and decides retries. Other nodes' agents run it only when the
// owner lends it to them, on the admin's word:
//
//   every node ──tasks.load (coordination topic, every report interval)──> all
//   admin (MasterLoop, term T) ──tasks.expect {T, owner O, count k}──> worker W
//   admin (MasterLoop, term T) ──tasks.offer {T, worker W, count k}──> owner O
//   owner O ──tasks.grant {attempts leased to "remote:W"}──> worker W
//   worker W ──tasks.renew (each heartbeat, queued and running)──> owner O
//   worker W ──tasks.result (resent until acknowledged)──> owner O ──tasks.ack──> W
//
// Offers carry the admin's term; an owner ignores offers of a term older
// than the newest it has seen (TermFence), so a deposed admin cannot move
// work; with `admin_of` set, offers and expectations are believed only from
// the node this node's election knows as the admin of their term, and a
// worker runs a grant only up to what the admin told it to expect from that
// owner (a grant that arrives first waits up to 2 s for its expectation),
// so no member can make another run work the admin did not assign. Everything else is the owner's lease: a worker that dies stops
// renewing and the attempt is lost (retried); a result that arrives after
// the lease moved on is acknowledged and ignored (never a second success).
// When the owner dies, its tasks wait in its store; after its restart the
// lent attempts are lost and run again (at least once, recorded once).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "tasks/cluster_core.h"
#include "tasks/manager.h"
#include "tasks/policy.h"

namespace bzzz::tasks {

// How cluster messages travel (the node adapts its P2P layer).
class ClusterTransport {
 public:
  virtual ~ClusterTransport() = default;
  virtual Status Send(const std::string& node_id, const std::string& type, std::string payload) = 0;
  virtual Status Broadcast(std::string payload) = 0;  // a load report to every node
};

// Delivers what a core wants sent (failures are the protocol's to absorb:
// leases expire, results are resent).
void SendAll(ClusterTransport& transport, std::vector<Outbound> messages);

// The admin-only nO master loop: a MasterCore iterated on its own thread.
// Started and stopped by the election (AdminServices) with the term as
// fencing token.
class MasterLoop {
 public:
  using Stats = MasterCore::Stats;

  MasterLoop(ClusterTransport& transport, Strategy strategy, std::chrono::milliseconds interval,
             std::chrono::milliseconds report_ttl);
  ~MasterLoop();
  Status Start(std::uint64_t term);
  void Stop(std::uint64_t term);
  void OnReport(LoadReport report);
  Stats GetStats() const;

 private:
  void Run(std::uint64_t term);

  ClusterTransport& transport_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  MasterCore core_;  // guarded by mu_
  std::optional<std::uint64_t> running_;
  std::thread thread_;
};

// Every node's side: a LinkCore over this node's TaskManager, its timers on
// a thread of its own, its messages from the transport's thread.
class ClusterLink {
 public:
  using Options = LinkCore::Options;
  using Stats = LinkCore::Stats;

  // `load` gives this node's agents, idle agents and mean performance.
  ClusterLink(Options options, TaskManager& manager, ClusterTransport& transport,
              std::function<void(int* agents, int* idle, double* performance)> load);
  ~ClusterLink();
  void Start();
  void Stop();  // hands queued borrowed work back (best effort)

  // Inbound messages (from the transport's thread; they do not block).
  void OnMessage(const std::string& from, const std::string& type, const std::string& payload);
  Stats GetStats() const;

 private:
  class Host;
  void Loop();

  TaskManager& manager_;
  ClusterTransport& transport_;
  std::function<void(int*, int*, double*)> load_;
  std::unique_ptr<Host> host_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::unique_ptr<LinkCore> core_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace bzzz::tasks
