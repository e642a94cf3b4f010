// Election: the admin election of SPEC §3.5 as a deterministic state machine.
//
// The protocol is Raft's leader election without the log: terms, one
// persisted vote per term, majority quorum over a persisted electorate (the
// admin-capable members), pre-vote and leader stickiness so that a node that
// was cut off cannot disrupt a healthy admin, check-quorum so that an admin
// that lost its majority steps down, leadership transfer for clean handover,
// and single-member electorate changes committed by a majority. Candidate
// scores order the election timeouts so that the best node stands first.
// docs/election.md has the protocol, its invariants and the proofs sketch.
//
// Everything that is not protocol is injected: time (every call takes
// `now`), randomness (seeded in Options), the message transport and the
// durable state store. The same class runs inside the node (ElectionService
// adds a mutex, a timer thread and the P2P transport) and inside the
// deterministic simulation test. It is not thread-safe.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace bzzz::election {

using Millis = std::chrono::milliseconds;

// What a node is in the election. Observers are not admin-capable: they
// follow the admin but never stand or vote.
enum class Role { kFollower, kCandidate, kAdmin, kObserver };
std::string_view RoleName(Role role);  // "follower", "candidate", "admin", "observer"

// Identifies one version of the electorate: the term of the admin that wrote
// it (0 for the bootstrap version) and a version number. Ordered like Raft's
// (last log term, last log index): a voter only votes for candidates whose
// electorate is at least as recent as its own.
struct ConfigId {
  std::uint64_t term = 0;
  std::uint64_t version = 0;  // 0: no electorate yet (a fresh node)
  auto operator<=>(const ConfigId&) const = default;
};

struct Electorate {
  ConfigId id;
  std::vector<std::string> members;  // sorted node ids

  bool Empty() const { return id.version == 0; }
  bool Contains(const std::string& node_id) const;
  std::size_t Quorum() const { return members.size() / 2 + 1; }
  bool operator==(const Electorate&) const = default;
};

// Stable id of a cluster: a hash of its bootstrap electorate. Messages of
// another cluster are ignored (and reported: two clusters share a network).
std::string ClusterIdOf(const std::vector<std::string>& sorted_members);

// What survives a crash. Saved (durably) before any message that depends on
// it is sent.
struct HardState {
  std::string cluster;  // "" until the electorate is formed or learned
  std::uint64_t term = 0;
  std::string voted_for;  // in `term`; "" when no vote was given
  Electorate electorate;
  bool operator==(const HardState&) const = default;
};

enum class MessageType : std::uint8_t {
  kHello,         // periodic, broadcast: capability, score, electorate, fresh
  kHeartbeat,     // admin -> all
  kHeartbeatAck,  // -> admin
  kPreVote,       // candidate -> all, for term+1, changes nothing at voters
  kPreVoteReply,
  kVote,  // candidate -> all
  kVoteReply,
  kTimeoutNow,       // admin -> chosen successor: stand now (handover)
  kTransferRequest,  // any -> admin: hand over (trigger-election on a non-member)
};
std::string_view MessageTypeName(MessageType type);

struct Message {
  MessageType type = MessageType::kHello;
  std::string from;
  std::string to;  // "" for everyone
  std::string cluster;
  std::uint64_t term = 0;            // sender's term; kPreVote: the proposed term
  ConfigId config;                   // sender's electorate version
  std::vector<std::string> members;  // kHello, kHeartbeat: the sender's electorate
  std::uint64_t seq = 0;             // kHeartbeat and its ack
  bool granted = false;              // replies
  bool transfer = false;             // kVote after a handover: voters ignore stickiness
  bool admin_capable = false;        // kHello
  bool fresh = false;                // kHello: no electorate yet (bootstrap)
  double score = 0;                  // kHello
  std::string admin;                 // kHello: the admin the sender follows
  bool operator==(const Message&) const = default;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Best effort: messages may be lost, delayed, duplicated or reordered.
  virtual void Send(const Message& message) = 0;
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  // Returns only once `state` is durable. A failure stops the node from
  // taking the step that needed it.
  virtual Status Save(const HardState& state) = 0;
};

// A change of this node's role or of the admin it knows.
struct Transition {
  Role role = Role::kFollower;
  Role previous = Role::kFollower;
  std::uint64_t term = 0;
  std::string admin;  // "" when none is known
  std::string reason;
};

class Observer {
 public:
  virtual ~Observer() = default;
  // Called from inside Election's methods, in order. Becoming admin is
  // reported after the state that makes it so has been saved.
  virtual void OnTransition(const Transition& t) = 0;
};

struct Options {
  std::string node_id;
  bool admin_capable = true;
  // A fresh admin-capable node forms the electorate once it sees exactly
  // this many fresh admin-capable nodes (itself included); 0: never forms
  // one, waits to learn an existing electorate.
  int bootstrap_expect = 1;
  Millis heartbeat_interval{150};
  Millis election_timeout{600};   // a follower stands after [t, 2t) without heartbeat
  Millis stability_window{2000};  // no voluntary change sooner than this after one
  Millis hello_interval{1000};
  // Autopilot (after Consul's): the committed admin changes the electorate
  // by itself, one member at a time. It adds a live admin-capable node of
  // its cluster that has been heard continuously for
  // `autopilot_stabilization`, and removes a member not heard from (no hello,
  // no heartbeat acknowledgement) for `autopilot_dead_after`, but only while
  // the live members remain a majority of the electorate that results.
  // Zero turns that half off (the defaults here; the node's configuration
  // turns both on: election.autopilot.*).
  Millis autopilot_stabilization{0};
  Millis autopilot_dead_after{0};
  std::uint64_t seed = 0;  // randomized timeouts
};

struct CandidateInfo {
  std::string node_id;
  double score = 0;
  bool admin_capable = false;
  bool member = false;
  bool self = false;
};

struct Snapshot {
  Role role = Role::kFollower;
  std::string node_id;
  std::string admin;
  std::string cluster;
  std::uint64_t term = 0;
  SteadyTime since{};                   // when `admin` became known (or role changed)
  std::optional<Millis> heartbeat_age;  // since the last heartbeat (admin: 0)
  Electorate electorate;
  bool electorate_committed = false;  // admin only: known to a majority
  bool member = false;
  std::vector<CandidateInfo> candidates;
  std::uint64_t leadership_changes = 0;
  std::string problem;                 // "" or why the node cannot take part (bootstrap, conflicts)
  std::uint64_t foreign_messages = 0;  // messages of another cluster, ignored
  std::string autopilot;               // admin: the last change the autopilot made
  std::uint64_t refused_messages = 0;  // heartbeats, votes, handovers of non-members, ignored
};

class Election {
 public:
  // `state` is what `store` last saved (default for a fresh node). The
  // pointers must outlive the Election.
  Election(Options options, HardState state, Transport* transport, StateStore* store, Observer* observer,
           SteadyTime now);

  // Timers: call at NextDeadline() or sooner (calling often is harmless).
  void Tick(SteadyTime now);
  SteadyTime NextDeadline() const;

  void Receive(const Message& message, SteadyTime now);

  // trigger-election. On the admin: hand over to the best other member. On
  // an admin-capable member: stand now. Elsewhere: ask the admin to hand
  // over. Conflict inside the stability window unless `force`.
  Status Trigger(SteadyTime now, bool force);

  // Graceful shutdown: an admin steps down and names its successor, which
  // stands at once. Returns the successor ("" when there is none). The node
  // stops standing afterwards.
  std::string Resign(SteadyTime now);

  // Explicit electorate changes, one member at a time, on the admin only
  // (FailedPrecondition elsewhere, or while a change is being committed).
  Status AddMember(const std::string& node_id, SteadyTime now);
  Status RemoveMember(const std::string& node_id, SteadyTime now);

  // Candidate score in [0, 1] (ElectionService computes it; docs/election.md
  // has the weights). Announced in hellos; orders election timeouts.
  void SetScore(double score) { score_ = score; }

  Snapshot GetSnapshot(SteadyTime now) const;
  Role role() const { return role_; }
  const std::string& admin() const { return admin_; }
  std::uint64_t term() const { return hs_.term; }
  const HardState& hard_state() const { return hs_; }
  const Options& options() const { return options_; }

 private:
  struct Peer {
    bool admin_capable = false;
    bool fresh = false;
    double score = 0;
    std::string cluster;
    SteadyTime last_seen{};
    SteadyTime up_since{};  // heard continuously since (autopilot stabilization)
  };
  struct Ack {
    SteadyTime at{};
    ConfigId config;
  };

  bool Member() const { return hs_.electorate.Contains(options_.node_id); }
  bool CanStand() const { return options_.admin_capable && Member(); }
  bool InLease(SteadyTime now) const;
  bool Save(HardState next);
  void Send(Message m);
  Message Base(MessageType type, const std::string& to) const;
  void SetRole(Role role, const std::string& admin, SteadyTime now, const std::string& reason);
  Role RestingRole() const;  // follower, or observer when not admin-capable
  void BecomeFollower(std::uint64_t term, const std::string& admin, SteadyTime now,
                      const std::string& reason);
  void ResetElectionTimer(SteadyTime now);
  void Campaign(SteadyTime now, bool transfer);
  void BecomeCandidate(SteadyTime now, bool transfer);
  void BecomeAdmin(SteadyTime now);
  void StepDown(SteadyTime now, const std::string& reason);
  void SendHeartbeats(SteadyTime now);
  void SendHello(SteadyTime now);
  void CheckCommit(SteadyTime now);
  void CheckQuorum(SteadyTime now);
  void Autopilot(SteadyTime now);
  bool FromElectorate(const Message& m) const;
  SteadyTime LastContact(const std::string& node_id) const;
  void TryBootstrap(SteadyTime now);
  bool AdoptIfFresh(const Message& m, SteadyTime now);
  std::string BestSuccessor(SteadyTime now) const;
  Status Propose(std::vector<std::string> members, SteadyTime now);

  void OnHello(const Message& m, SteadyTime now);
  void OnHeartbeat(const Message& m, SteadyTime now);
  void OnHeartbeatAck(const Message& m, SteadyTime now);
  void OnPreVote(const Message& m, SteadyTime now);
  void OnPreVoteReply(const Message& m, SteadyTime now);
  void OnVote(const Message& m, SteadyTime now);
  void OnVoteReply(const Message& m, SteadyTime now);
  void OnTimeoutNow(const Message& m, SteadyTime now);

  Options options_;
  HardState hs_;
  Transport* transport_;
  StateStore* store_;
  Observer* observer_;
  std::mt19937_64 rng_;

  Role role_ = Role::kFollower;
  std::string admin_;
  SteadyTime since_{};
  SteadyTime admin_heard_{};  // last heartbeat from admin_
  bool heard_admin_ = false;
  SteadyTime election_deadline_{};
  SteadyTime next_hello_{};
  SteadyTime next_heartbeat_{};
  SteadyTime no_stand_until_{};  // after a voluntary handover
  SteadyTime last_change_{};     // last leadership change seen
  bool changed_once_ = false;
  std::string last_admin_;  // the last admin known (leadership changes count)
  bool resigned_ = false;   // shutting down: never stand again
  double score_ = 0.5;

  bool prevoting_ = false;
  std::set<std::string> prevotes_;
  std::set<std::string> votes_;

  // Admin only.
  std::uint64_t seq_ = 0;
  SteadyTime admin_since_{};
  std::map<std::string, Ack> acks_;
  bool committed_ = false;

  std::map<std::string, Peer> peers_;
  std::vector<std::string> bootstrap_set_;  // fresh admin-capable nodes seen, and since when
  SteadyTime bootstrap_since_{};
  std::uint64_t leadership_changes_ = 0;
  std::uint64_t foreign_ = 0;
  std::string autopilot_last_;  // the last change the autopilot made (for the status)
  std::uint64_t refused_ = 0;   // messages of nodes outside the electorate that may not lead or stand
  std::string problem_;
  std::string foreign_problem_;  // shown while messages of another cluster keep coming
  SteadyTime foreign_at_{};
};

}  // namespace bzzz::election
