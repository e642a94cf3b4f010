// A deterministic simulated cluster for the election state machine: a
// virtual clock, an event queue, a network that loses, delays, duplicates,
// reorders and partitions, crashes that keep only the saved HardState, and
// the protocol's invariants checked after every event. Same seed, same run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "election/election.h"

namespace bzzz::election::sim {

using std::chrono::microseconds;
using std::chrono::milliseconds;

struct NetworkProfile {
  double loss = 0;       // probability a message is dropped
  double duplicate = 0;  // probability a message is delivered twice
  microseconds min_delay{200};
  microseconds max_delay{3000};
  double slow = 0;  // probability of a delay up to slow_delay (reordering)
  microseconds slow_delay{300000};
};

class Cluster;

// Everything one simulated node has; `election` is null while it is down.
struct Node : Transport, StateStore, Observer {
  Cluster* cluster = nullptr;
  int index = 0;
  Options options;
  HardState saved;
  std::unique_ptr<Election> election;
  std::uint64_t tick_generation = 0;
  SteadyTime tick_at{};
  SteadyTime candidate_since{};
  std::uint64_t max_term = 0;

  void Send(const Message& m) override;
  Status Save(const HardState& s) override;
  void OnTransition(const Transition& t) override;
};

class Cluster {
 public:
  // Fails the run (first message wins) and stops it.
  std::string violation;
  std::vector<std::string> trace;  // filled when tracing
  bool tracing = false;

  explicit Cluster(std::uint64_t seed) : rng_(seed) {}
  Cluster(const Cluster&) = delete;  // nodes point back at their cluster
  Cluster& operator=(const Cluster&) = delete;

  SteadyTime now() const { return now_; }
  std::mt19937_64& rng() { return rng_; }
  NetworkProfile network;

  // Adds a node (down until Start).
  int Add(Options options, HardState state = {}) {
    auto n = std::make_unique<Node>();
    n->cluster = this;
    n->index = static_cast<int>(nodes_.size());
    n->options = std::move(options);
    n->saved = std::move(state);
    n->max_term = n->saved.term;
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }
  std::size_t size() const { return nodes_.size(); }
  Node& node(int i) { return *nodes_[i]; }
  Election* election(int i) { return nodes_[i]->election.get(); }
  bool Up(int i) const { return nodes_[i]->election != nullptr; }
  int IndexOf(const std::string& id) const {
    for (const auto& n : nodes_) {
      if (n->options.node_id == id) return n->index;
    }
    return -1;
  }

  void Start(int i) {
    Node& n = *nodes_[i];
    if (n.election) return;
    if (n.saved.term < n.max_term) Fail("node " + n.options.node_id + " restarted with an older term");
    n.options.seed = rng_();
    n.election = std::make_unique<Election>(n.options, n.saved, &n, &n, &n, now_);
    Trace("start " + n.options.node_id);
    Schedule(i);
  }
  void Crash(int i) {
    Node& n = *nodes_[i];
    if (!n.election) return;
    Trace("crash " + n.options.node_id);
    OnLeaveAdmin(i);
    n.election.reset();
    ++n.tick_generation;
  }

  // Partitions: group[i] per node; messages between groups are dropped.
  void Partition(std::vector<int> groups) {
    groups_ = std::move(groups);
    partition_since_ = now_;
    std::ostringstream os;
    os << "partition";
    for (int g : groups_) os << ' ' << g;
    Trace(os.str());
  }
  void Heal() {
    groups_.assign(nodes_.size(), 0);
    Trace("heal");
  }
  bool Connected(int a, int b) const { return groups_.empty() || groups_[a] == groups_[b]; }
  bool Partitioned() const {
    return std::any_of(groups_.begin(), groups_.end(), [](int g) { return g != 0; });
  }

  // Runs one closure at a virtual time (faults, operations).
  void At(SteadyTime t, std::function<void()> f) {
    Push(Event{t, seq_++, Event::kCall, -1, 0, {}, std::move(f)});
  }

  // Processes events until `until` or a violation.
  void RunUntil(SteadyTime until) {
    while (violation.empty() && !queue_.empty() && queue_.top().at <= until) {
      Event e = queue_.top();
      queue_.pop();
      now_ = e.at;
      switch (e.kind) {
        case Event::kTick: {
          Node& n = *nodes_[e.node];
          if (!n.election || e.generation != n.tick_generation) break;
          n.election->Tick(now_);
          Schedule(e.node);
          break;
        }
        case Event::kDeliver: {
          Node& n = *nodes_[e.node];
          const int from = IndexOf(e.message.from);
          if (!n.election || (from >= 0 && !Connected(from, e.node))) break;
          if (tracing) Trace("deliver " + Describe(e.message) + " -> " + n.options.node_id);
          n.election->Receive(e.message, now_);
          Schedule(e.node);
          break;
        }
        case Event::kCall:
          e.call();
          for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (nodes_[i]->election) Schedule(static_cast<int>(i));
          }
          break;
      }
      CheckInvariants();
    }
    if (violation.empty() && now_ < until) now_ = until;
  }
  void RunFor(std::chrono::nanoseconds d) {
    RunUntil(now_ + std::chrono::duration_cast<SteadyTime::duration>(d));
  }

  // The admin every live node agrees on, or -1 (none, or disagreement).
  int AgreedAdmin() {
    std::string admin;
    std::uint64_t term = 0;
    bool first = true;
    for (const auto& n : nodes_) {
      if (!n->election) continue;
      const auto& e = *n->election;
      if (e.admin().empty()) return -1;
      if (first) {
        admin = e.admin();
        term = e.term();
        first = false;
      } else if (admin != e.admin() || term != e.term()) {
        return -1;
      }
    }
    const int i = first ? -1 : IndexOf(admin);
    return i >= 0 && Up(i) && nodes_[i]->election->role() == Role::kAdmin ? i : -1;
  }

  // term -> node that became admin in it (over the whole run).
  const std::map<std::uint64_t, std::string>& admins_by_term() const { return admins_by_term_; }
  std::uint64_t elections() const { return admins_by_term_.size(); }

  void Fail(const std::string& what) {
    if (violation.empty()) {
      violation = "t=" + std::to_string(Micros(now_) / 1000.0) + "ms: " + what;
    }
  }
  void Trace(const std::string& line) {
    if (tracing) trace.push_back(std::to_string(Micros(now_) / 1000.0) + "ms " + line);
  }

  // --- hooks from Node ---
  void OnSend(int from, const Message& m) {
    if (tracing) Trace("send " + Describe(m) + " by " + nodes_[from]->options.node_id);
    for (std::size_t j = 0; j < nodes_.size(); ++j) {
      const int to = static_cast<int>(j);
      if (to == from || (!m.to.empty() && nodes_[j]->options.node_id != m.to)) continue;
      if (Chance(network.loss)) continue;
      const int copies = Chance(network.duplicate) ? 2 : 1;
      for (int c = 0; c < copies; ++c) Push(Event{now_ + Delay(), seq_++, Event::kDeliver, to, 0, m, {}});
    }
  }
  void OnSave(int i, const HardState& s) {
    Node& n = *nodes_[i];
    if (s.term < n.saved.term)
      Fail(n.options.node_id + ": term went back from " + std::to_string(n.saved.term));
    if (!s.voted_for.empty()) {
      auto key = std::make_pair(n.options.node_id, s.term);
      auto [it, inserted] = votes_.emplace(key, s.voted_for);
      if (!inserted && it->second != s.voted_for) {
        Fail(n.options.node_id + " voted twice in term " + std::to_string(s.term) + ": " + it->second +
             " and " + s.voted_for);
      }
    }
    if (!n.saved.electorate.Empty() && s.electorate.id < n.saved.electorate.id) {
      Fail(n.options.node_id + ": electorate went back");
    }
    n.max_term = std::max(n.max_term, s.term);
  }
  void OnTransition(int i, const Transition& t) {
    Node& n = *nodes_[i];
    Trace(n.options.node_id + " " + std::string(RoleName(t.previous)) + " -> " +
          std::string(RoleName(t.role)) + " term " + std::to_string(t.term) + " admin " + t.admin + " (" +
          t.reason + ")");
    if (t.role == Role::kCandidate) n.candidate_since = now_;
    if (t.previous == Role::kAdmin && t.role != Role::kAdmin) OnLeaveAdmin(i);
    if (t.role == Role::kAdmin && t.previous != Role::kAdmin) OnBecomeAdmin(i, t.term);
  }

 private:
  struct Event {
    enum Kind { kTick, kDeliver, kCall };
    SteadyTime at;
    std::uint64_t seq;
    Kind kind;
    int node;
    std::uint64_t generation;
    Message message;
    std::function<void()> call;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  static std::int64_t Micros(SteadyTime t) {
    return std::chrono::duration_cast<microseconds>(t.time_since_epoch()).count();
  }
  static std::string Describe(const Message& m) {
    return std::string(MessageTypeName(m.type)) + "{" + m.from + " t" + std::to_string(m.term) +
           (m.granted ? " granted" : "") + (m.transfer ? " transfer" : "") + "}";
  }
  bool Chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  SteadyTime::duration Delay() {
    auto pick = [&](microseconds lo, microseconds hi) {
      return microseconds(std::uniform_int_distribution<std::int64_t>(lo.count(), hi.count())(rng_));
    };
    if (Chance(network.slow)) return pick(network.max_delay, network.slow_delay);
    return pick(network.min_delay, network.max_delay);
  }
  void Push(Event e) { queue_.push(std::move(e)); }
  void Schedule(int i) {
    Node& n = *nodes_[i];
    if (!n.election) return;
    SteadyTime d = std::max(n.election->NextDeadline(), now_ + microseconds(100));
    if (n.tick_at > now_ && n.tick_at <= d) return;  // an earlier tick is pending
    n.tick_at = d;
    Push(Event{d, seq_++, Event::kTick, i, ++n.tick_generation, {}, {}});
  }

  void OnBecomeAdmin(int i, std::uint64_t term) {
    Node& n = *nodes_[i];
    const std::string& id = n.options.node_id;
    auto [it, inserted] = admins_by_term_.emplace(term, id);
    if (!inserted && it->second != id) {
      Fail("two admins in term " + std::to_string(term) + ": " + it->second + " and " + id);
      return;
    }
    // A majority of the admin's electorate voted for it in this term.
    const Electorate& el = n.election->hard_state().electorate;
    std::size_t votes = 0, reachable = 0;
    for (const auto& member : el.members) {
      auto v = votes_.find({member, term});
      if (v == votes_.end() || v->second != id) continue;
      ++votes;
      const int m = IndexOf(member);
      if (m >= 0 && Connected(m, i)) ++reachable;
    }
    if (votes < el.Quorum()) {
      Fail(id + " became admin of term " + std::to_string(term) + " with " + std::to_string(votes) +
           " votes of " + std::to_string(el.members.size()));
    }
    // A minority never elects: when the partition predates the candidacy,
    // every vote came from inside the admin's side.
    if (Partitioned() && partition_since_ <= n.candidate_since && reachable < el.Quorum()) {
      Fail(id + " became admin of term " + std::to_string(term) + " on a minority side");
    }
    // Fencing: the admin-only services of an older term are not running.
    for (const auto& [node, running_term] : services_) {
      if (running_term >= term && node != id) {
        Fail(id + " starts admin services for term " + std::to_string(term) + " while " + node +
             " runs term " + std::to_string(running_term));
      }
    }
    services_[id] = term;
  }
  void OnLeaveAdmin(int i) { services_.erase(nodes_[i]->options.node_id); }

  void CheckInvariants() {
    std::map<std::uint64_t, std::string> admins;
    for (const auto& n : nodes_) {
      if (!n->election) continue;
      const auto& e = *n->election;
      if (e.term() < n->max_term) Fail(n->options.node_id + ": term went back");
      if (e.role() != Role::kAdmin) continue;
      auto [it, inserted] = admins.emplace(e.term(), n->options.node_id);
      if (!inserted) Fail("two live admins in term " + std::to_string(e.term()));
      auto rec = admins_by_term_.find(e.term());
      if (rec == admins_by_term_.end() || rec->second != n->options.node_id) {
        Fail(n->options.node_id + " is admin of term " + std::to_string(e.term()) + " without having won it");
      }
    }
  }

  std::mt19937_64 rng_;
  SteadyTime now_{};
  std::uint64_t seq_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::vector<int> groups_;
  SteadyTime partition_since_{};
  std::map<std::pair<std::string, std::uint64_t>, std::string> votes_;
  std::map<std::uint64_t, std::string> admins_by_term_;
  std::map<std::string, std::uint64_t> services_;  // node -> term its admin services run for
};

inline void Node::Send(const Message& m) { cluster->OnSend(index, m); }
inline Status Node::Save(const HardState& s) {
  cluster->OnSave(index, s);
  saved = s;
  return Status::Ok();
}
inline void Node::OnTransition(const Transition& t) { cluster->OnTransition(index, t); }

inline Options NodeOptions(const std::string& id, bool capable = true, int bootstrap_expect = 1) {
  Options o;
  o.node_id = id;
  o.admin_capable = capable;
  o.bootstrap_expect = bootstrap_expect;
  return o;
}

}  // namespace bzzz::election::sim
