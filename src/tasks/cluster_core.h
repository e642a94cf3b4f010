// The task ownership protocol across nodes (docs/tasks.md, "Ownership
// protocol") as state machines without threads, clocks or I/O, in the style
// of TaskCore and the election: every call takes `now_ms` (a monotonic
// millisecond count), and what a call wants sent comes back as `Outbound`
// messages for the caller to deliver. cluster.h runs them on threads over
// the node's P2P layer; the simulation (tests/tasks/cluster_sim_test.cc)
// runs three nodes of them on a simulated clock and network, with crashes,
// partitions, lost, late and repeated messages, and changes of admin.
//
//   MasterCore (admin, term T): load reports in, tasks.expect + tasks.offer out
//   LinkCore (every node): offers → grants (as owner), grants → borrowed
//     work (as worker), results resent until acknowledged, renewals, reports
//
// Neither is thread-safe; their owners lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "tasks/core.h"
#include "tasks/policy.h"

namespace bzzz::tasks {

// What a node tells the cluster about its work, every report interval.
struct LoadReport {
  std::string node_id;
  std::string role;
  std::vector<std::string> capabilities;
  std::vector<std::string> executors;  // kinds its agents can run
  std::int64_t queued = 0;     // ready to run here
  // Of those, the ready tasks none of this node's agents can run (a role
  // or capability they lack): work to lend even while agents are idle.
  // Optional on the wire (absent from older builds: 0).
  std::int64_t stranded = 0;
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

// A message a core wants sent. `to` empty: to every node (load reports,
// on the coordination topic); else a direct message of `type`.
struct Outbound {
  std::string to;
  std::string type;
  std::string payload;
};

// The admin's side: the latest load reports, and each iteration's offers.
class MasterCore {
 public:
  struct Stats {
    bool running = false;
    std::uint64_t term = 0;
    std::uint64_t iterations = 0;
    std::uint64_t offers = 0;
    std::size_t nodes = 0;  // with a fresh report
    std::int64_t cluster_queued = 0;
    int cluster_agents = 0;
    int cluster_idle = 0;
  };

  MasterCore(Strategy strategy, std::int64_t report_ttl_ms);
  void OnReport(LoadReport report, std::int64_t now_ms);
  // One iteration for `term`: forgets stale reports, plans, and returns for
  // each offer a tasks.expect to the worker followed by a tasks.offer to
  // the owner (the worker runs a grant only up to what it expects). An
  // offer changes the picture: both sides' reports are forgotten until
  // they report again.
  std::vector<Outbound> Iterate(std::uint64_t term, std::int64_t now_ms);
  const Stats& stats() const { return stats_; }
  Stats& stats() { return stats_; }

 private:
  const Strategy strategy_;
  const std::int64_t report_ttl_ms_;
  std::map<std::string, std::pair<LoadReport, std::int64_t>> reports_;  // node → (report, received at)
  std::size_t cursor_ = 0;
  Stats stats_;
};

// What a node's link needs of its own tasks: the owner's side (lending,
// remote ends and renewals) and the worker's (the borrowed-work queue).
// TaskManager provides it on a node; the simulation, a TaskCore and a
// BorrowedWork of its own.
class LinkHost {
 public:
  virtual ~LinkHost() = default;
  // Owner: leases ready tasks that fit `slot` (agent "remote:<worker>",
  // `free` = how many) and returns the assignments.
  virtual std::vector<Assignment> Lend(WorkerSlot slot) = 0;
  // Owner: a borrower's end of an attempt (kHandedBack hands it back).
  virtual Status RemoteComplete(const std::string& task_id, int attempt, const std::string& agent,
                                const AttemptOutcome& outcome) = 0;
  virtual Status RemoteRenew(const std::string& task_id, int attempt, const std::string& agent) = 0;
  // Worker: borrowed attempts for the local agents (before local work).
  virtual void AcceptForeign(std::vector<Assignment> jobs) = 0;
  // Worker: borrowed attempts held (queued or running), for renewals.
  virtual std::vector<Assignment> ForeignHeld() const = 0;
  // Worker: removes and returns the borrowed attempts no agent has started.
  virtual std::vector<Assignment> TakeForeignQueued() = 0;
  // For the load report: ready here (own and borrowed), in flight.
  virtual std::size_t ReadyCount() const = 0;
  // Ready tasks none of this node's agents can run (TaskCore::StrandedCount).
  virtual std::size_t StrandedCount() const = 0;
  virtual std::size_t InFlight() const = 0;
};

// Every node's side of the protocol.
class LinkCore {
 public:
  struct Options {
    std::string node_id;
    std::string role;
    std::vector<std::string> capabilities;
    std::vector<std::string> executors;
    std::int64_t report_interval_ms = 250;    // at most this often, when the load changed
    std::int64_t report_keepalive_ms = 2000;  // at least this often (the admin forgets after 5 s)
    std::int64_t renew_interval_ms = 1000;
    std::int64_t resend_interval_ms = 1000;
    std::int64_t give_up_after_ms = 600000;   // an unacknowledged result
    std::int64_t expectation_ms = 10000;      // how long the admin's word stays good
    std::int64_t early_grant_ms = 2000;       // how long a grant waits for its expectation
    // Whether `node_id` is the admin of `term` by this node's own election
    // state. Offers and expectations from anyone else are refused, whatever
    // term they claim. Unset: every offer is believed (tests of the
    // protocol alone).
    std::function<bool(const std::string& node_id, std::uint64_t term)> admin_of;
  };
  struct Stats {
    std::uint64_t lent = 0, borrowed = 0, results_sent = 0, results_received = 0, stale_results = 0,
                  offers_refused = 0, offers_unauthorized = 0, grants_refused = 0;
    std::size_t unacknowledged = 0;
  };

  LinkCore(Options options, LinkHost& host);

  // An inbound message (unknown types are ignored, malformed ones logged).
  std::vector<Outbound> OnMessage(const std::string& from, const std::string& type, const std::string& payload,
                                  std::int64_t now_ms);
  // A borrowed attempt ended here: reported to its owner until acknowledged.
  void Finished(const Assignment& job, const AttemptOutcome& outcome, std::int64_t now_ms);
  // Timers: grants whose expectation never came are refused; results are
  // sent (new ones at once, unacknowledged ones every resend interval);
  // leases renewed; the load reported when it changed or as a keepalive.
  // `load` carries the agents, idle agents, performance and wall-clock
  // `at_ms`; the rest of the report is filled in here.
  std::vector<Outbound> Tick(std::int64_t now_ms, LoadReport load);
  // Stopping: borrowed work nobody started goes back to its owners.
  std::vector<Outbound> HandBackQueued();
  Stats stats() const;

 private:
  void OnOffer(const std::string& from, const std::string& payload, std::vector<Outbound>& out);
  void OnGrant(const std::string& from, const std::string& payload, std::int64_t now_ms);
  void OnExpect(const std::string& from, const std::string& payload, std::int64_t now_ms);
  // Borrowed jobs a grant of `owner` may bring: consumes expectations; the
  // rest waits (early) or is refused.
  void AcceptGrant(const std::string& owner, std::vector<Assignment> jobs, std::int64_t now_ms);
  void OnResult(const std::string& from, const std::string& payload, std::vector<Outbound>& out);
  void OnAck(const std::string& payload);
  void OnRenew(const std::string& from, const std::string& payload);

  Options options_;
  LinkHost& host_;
  std::uint64_t newest_term_ = 0;
  struct Pending {
    Assignment job;
    AttemptOutcome outcome;
    std::int64_t first_ms = 0;
    std::int64_t last_sent_ms = -1;  // -1: never sent
  };
  std::map<std::pair<std::string, int>, Pending> unacked_;  // (task, attempt) → result
  struct Expectation {
    int count = 0;
    std::int64_t until_ms = 0;
  };
  std::map<std::string, Expectation> expected_;  // owner → what the admin said it would lend
  struct EarlyGrant {
    std::vector<Assignment> jobs;
    std::int64_t at_ms = 0;
  };
  std::map<std::string, std::vector<EarlyGrant>> early_;  // grants that came before their expectation
  std::int64_t next_report_ms_ = 0, last_report_ms_ = -1, next_renew_ms_ = 0;
  LoadReport last_load_;  // the last report sent (its load figures)
  Stats stats_;
};

}  // namespace bzzz::tasks
