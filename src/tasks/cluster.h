// Tasks across nodes (docs/tasks.md, "Ownership protocol").
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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "tasks/manager.h"
#include "tasks/policy.h"

namespace bzzz::tasks {

// What a node tells the cluster about its work, every report interval.
struct LoadReport {
  std::string node_id;
  std::string role;
  std::vector<std::string> capabilities;
  std::vector<std::string> executors;  // kinds its agents can run
  std::int64_t queued = 0;     // ready to run here
  std::int64_t in_flight = 0;  // running or leased
  int agents = 0;
  int idle = 0;
  double performance = 0.5;
  std::int64_t at_ms = 0;
};
std::string EncodeReport(const LoadReport& report);
Result<LoadReport> DecodeReport(std::string_view json);

// The admin's instruction: owner lends up to `count` ready tasks to worker.
struct Offer {
  std::uint64_t term = 0;
  std::string owner;
  std::string worker;
  int count = 0;
  std::string role;                       // the worker's, from its report:
  std::vector<std::string> capabilities;  // the owner lends only what it can run
  std::vector<std::string> executors;
};

// The master loop's decision: owners whose ready backlog exceeds their idle
// agents lend to nodes with idle agents and nothing queued, the worker
// chosen by `strategy` (load = in_flight, performance, capabilities).
// A worker gets up to `per_idle_agent` tasks per idle agent (they queue
// there; short tasks would otherwise wait for the next round trip), at most
// `max_per_offer` per offer. Never pairs a node with itself.
std::vector<Offer> PlanTransfers(const std::vector<LoadReport>& reports, Strategy strategy, std::uint64_t term,
                                 std::size_t& cursor, int max_per_offer = 256, int per_idle_agent = 16);

// How cluster messages travel (the node adapts its P2P layer).
class ClusterTransport {
 public:
  virtual ~ClusterTransport() = default;
  virtual Status Send(const std::string& node_id, const std::string& type, std::string payload) = 0;
  virtual Status Broadcast(std::string payload) = 0;  // a load report to every node
};

// The admin-only nO master loop: keeps the latest load reports and, every
// iteration, sends the offers of PlanTransfers. Started and stopped by the
// election (AdminServices) with the term as fencing token.
class MasterLoop {
 public:
  struct Stats {
    bool running = false;
    std::uint64_t term = 0;
    std::uint64_t iterations = 0;
    std::uint64_t offers = 0;
    std::size_t nodes = 0;            // with a fresh report
    std::int64_t cluster_queued = 0;
    int cluster_agents = 0;
    int cluster_idle = 0;
  };

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
  const Strategy strategy_;
  const std::chrono::milliseconds interval_, report_ttl_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::pair<LoadReport, std::chrono::steady_clock::time_point>> reports_;
  std::optional<std::uint64_t> running_;
  Stats stats_;
  std::thread thread_;
};

// Every node's side: publishes its load, answers offers by lending,
// runs what others lend (through its TaskManager's foreign queue), renews
// and reports those leases, and records what its own borrowers report.
class ClusterLink {
 public:
  struct Options {
    std::string node_id;
    std::string role;
    std::vector<std::string> capabilities;
    std::vector<std::string> executors;
    std::chrono::milliseconds report_interval{250};   // at most this often, when the load changed
    std::chrono::milliseconds report_keepalive{2000}; // at least this often (the admin forgets after 5 s)
    std::chrono::milliseconds resend_interval{1000};
    std::chrono::milliseconds give_up_after{std::chrono::minutes(10)};  // an unacknowledged result
    // Whether `node_id` is the admin of `term` by this node's own election
    // state. Offers from anyone else are refused, whatever term they claim.
    // Unset: every offer is believed (tests of the protocol alone).
    std::function<bool(const std::string& node_id, std::uint64_t term)> admin_of;
  };
  // `load` gives this node's agents, idle agents and mean performance.
  ClusterLink(Options options, TaskManager& manager, ClusterTransport& transport,
              std::function<void(int* agents, int* idle, double* performance)> load);
  ~ClusterLink();
  void Start();
  void Stop();  // hands queued borrowed work back (best effort)

  // Inbound messages (from the transport's thread; they do not block).
  void OnMessage(const std::string& from, const std::string& type, const std::string& payload);

  struct Stats {
    std::uint64_t lent = 0, borrowed = 0, results_sent = 0, results_received = 0, stale_results = 0,
                  offers_refused = 0, offers_unauthorized = 0, grants_refused = 0;
    std::size_t unacknowledged = 0;
  };
  Stats GetStats() const;

 private:
  void Loop();
  void OnOffer(const std::string& from, const std::string& payload);
  void OnGrant(const std::string& from, const std::string& payload);
  void OnExpect(const std::string& from, const std::string& payload);
  // Borrowed jobs a grant of `owner` may bring: consumes expectations; the
  // rest waits (early) or is refused.
  void AcceptGrant(const std::string& owner, std::vector<Assignment> jobs);
  void OnResult(const std::string& from, const std::string& payload);
  void OnAck(const std::string& payload);
  void OnRenew(const std::string& from, const std::string& payload);
  void Finished(const Assignment& job, const AttemptOutcome& outcome);

  Options options_;
  TaskManager& manager_;
  ClusterTransport& transport_;
  std::function<void(int*, int*, double*)> load_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::uint64_t newest_term_ = 0;
  struct Pending {
    Assignment job;
    AttemptOutcome outcome;
    std::chrono::steady_clock::time_point first, last_sent;
  };
  std::map<std::pair<std::string, int>, Pending> unacked_;  // (task, attempt) → result
  struct Expectation {
    int count = 0;
    std::chrono::steady_clock::time_point until;
  };
  std::map<std::string, Expectation> expected_;  // owner → what the admin said it would lend
  struct EarlyGrant {
    std::vector<Assignment> jobs;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, std::vector<EarlyGrant>> early_;  // grants that came before their expectation
  Stats stats_;
  std::thread thread_;
};

}  // namespace bzzz::tasks
