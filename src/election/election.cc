#include "election/election.h"

#include <algorithm>
#include <cstdio>

#include "base/invariant.h"

namespace bzzz::election {

namespace {

constexpr int kHelloLifetimes = 3;  // a peer is live for 3 hello intervals

std::string Ms(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<Millis>(d).count()) + " ms";
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kCandidate:
      return "candidate";
    case Role::kAdmin:
      return "admin";
    case Role::kObserver:
      return "observer";
  }
  return "unknown";
}

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "hello";
    case MessageType::kHeartbeat:
      return "heartbeat";
    case MessageType::kHeartbeatAck:
      return "heartbeat_ack";
    case MessageType::kPreVote:
      return "pre_vote";
    case MessageType::kPreVoteReply:
      return "pre_vote_reply";
    case MessageType::kVote:
      return "vote";
    case MessageType::kVoteReply:
      return "vote_reply";
    case MessageType::kTimeoutNow:
      return "timeout_now";
    case MessageType::kTransferRequest:
      return "transfer_request";
  }
  return "unknown";
}

bool Electorate::Contains(const std::string& node_id) const {
  return std::binary_search(members.begin(), members.end(), node_id);
}

std::string ClusterIdOf(const std::vector<std::string>& sorted_members) {
  // FNV-1a 64: stable across processes, builds and machines.
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& m : sorted_members) {
    for (unsigned char c : m) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

Election::Election(Options options, HardState state, Transport* transport, StateStore* store,
                   Observer* observer, SteadyTime now)
    : options_(std::move(options)),
      hs_(std::move(state)),
      transport_(transport),
      store_(store),
      observer_(observer),
      rng_(options_.seed) {
  role_ = options_.admin_capable ? Role::kFollower : Role::kObserver;
  since_ = now;
  next_hello_ = now;
  ResetElectionTimer(now);
  // A lone member stands at once: there is nobody to wait for.
  if (CanStand() && hs_.electorate.members.size() == 1) election_deadline_ = now;
}

// --- helpers ---

bool Election::InLease(SteadyTime now) const {
  if (role_ == Role::kAdmin) return true;
  return heard_admin_ && !admin_.empty() && now - admin_heard_ < options_.election_timeout;
}

bool Election::Save(HardState next) {
  if (next == hs_) return true;
  // At most one admin per term rests on these: terms never go back, and a
  // node casts one vote per term (so two quorums of one term cannot exist).
  BZZZ_INVARIANT(next.term >= hs_.term, "term went back from " + std::to_string(hs_.term) + " to " +
                                            std::to_string(next.term));
  BZZZ_INVARIANT(next.term > hs_.term || hs_.voted_for.empty() || next.voted_for == hs_.voted_for,
                 "second vote in term " + std::to_string(hs_.term) + ": " + hs_.voted_for + " then " +
                     next.voted_for);
  if (auto s = store_->Save(next); !s.ok()) {
    problem_ = "cannot save the election state: " + s.message();
    return false;
  }
  hs_ = std::move(next);
  if (problem_.rfind("cannot save", 0) == 0) problem_.clear();
  return true;
}

Message Election::Base(MessageType type, const std::string& to) const {
  Message m;
  m.type = type;
  m.from = options_.node_id;
  m.to = to;
  m.cluster = hs_.cluster;
  m.term = hs_.term;
  m.config = hs_.electorate.id;
  return m;
}

void Election::Send(Message m) { transport_->Send(m); }

void Election::SetRole(Role role, const std::string& admin, SteadyTime now, const std::string& reason) {
  if (role == role_ && admin == admin_) return;
  const Role previous = role_;
  if (!admin.empty() && admin != last_admin_) {
    ++leadership_changes_;
    last_admin_ = admin;
    last_change_ = now;
    changed_once_ = true;
  }
  role_ = role;
  admin_ = admin;
  since_ = now;
  if (observer_) observer_->OnTransition({role, previous, hs_.term, admin, reason});
}

Role Election::RestingRole() const { return options_.admin_capable ? Role::kFollower : Role::kObserver; }

void Election::BecomeFollower(std::uint64_t term, const std::string& admin, SteadyTime now,
                              const std::string& reason) {
  if (term > hs_.term) {
    HardState next = hs_;
    next.term = term;
    next.voted_for.clear();
    if (!Save(std::move(next))) return;
  }
  if (role_ == Role::kAdmin) acks_.clear();
  prevoting_ = false;
  votes_.clear();
  if (admin.empty()) heard_admin_ = false;
  SetRole(RestingRole(), admin, now, reason);
  ResetElectionTimer(now);
}

void Election::ResetElectionTimer(SteadyTime now) {
  // Rank this node among the live members that could stand (the current
  // admin aside) by score, best first: rank r of n waits
  // t * (1 + (r + u) / n), u uniform in [0, 1). The best stands first, the
  // slots do not overlap, and every wait stays in [t, 2t).
  std::vector<std::pair<double, std::string>> live;
  live.emplace_back(score_, options_.node_id);
  const auto horizon = options_.hello_interval * kHelloLifetimes;
  for (const auto& [id, p] : peers_) {
    if (id == admin_ || !p.admin_capable || !hs_.electorate.Contains(id) || now - p.last_seen > horizon)
      continue;
    live.emplace_back(p.score, id);
  }
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::size_t rank = 0;
  while (rank < live.size() && live[rank].second != options_.node_id) ++rank;
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  const double factor = 1.0 + (static_cast<double>(rank) + u) / static_cast<double>(live.size());
  const auto t = std::chrono::duration_cast<std::chrono::microseconds>(options_.election_timeout);
  election_deadline_ = now + std::chrono::microseconds(static_cast<std::int64_t>(t.count() * factor));
}

// --- timers ---

void Election::Tick(SteadyTime now) {
  if (now >= next_hello_) SendHello(now);
  if (hs_.electorate.Empty()) {
    TryBootstrap(now);
    return;
  }
  // A heartbeat long overdue: the admin is gone as far as this node knows.
  if (role_ != Role::kAdmin && !admin_.empty() && heard_admin_ &&
      now - admin_heard_ >= 2 * options_.election_timeout) {
    heard_admin_ = false;
    SetRole(role_, "", now, "no heartbeat for " + Ms(now - admin_heard_));
  }
  switch (role_) {
    case Role::kAdmin:
      if (now >= next_heartbeat_) SendHeartbeats(now);
      CheckQuorum(now);
      Autopilot(now);
      break;
    case Role::kFollower:
    case Role::kCandidate:
      if (CanStand() && !resigned_ && now >= election_deadline_ && now >= no_stand_until_)
        Campaign(now, false);
      break;
    case Role::kObserver:
      break;
  }
}

SteadyTime Election::NextDeadline() const {
  SteadyTime d = next_hello_;
  if (role_ == Role::kAdmin) {
    d = std::min(d, next_heartbeat_);
  } else if (CanStand() && !resigned_) {
    d = std::min(d, std::max(election_deadline_, no_stand_until_));
  }
  if (role_ != Role::kAdmin && !admin_.empty() && heard_admin_) {
    d = std::min(d, admin_heard_ + 2 * options_.election_timeout);
  }
  return d;
}

void Election::SendHello(SteadyTime now) {
  Message m = Base(MessageType::kHello, "");
  m.members = hs_.electorate.members;
  m.admin_capable = options_.admin_capable;
  m.fresh = hs_.electorate.Empty();
  m.score = score_;
  m.admin = admin_;
  Send(std::move(m));
  // Fresh nodes hello at heartbeat pace so that the electorate forms fast.
  next_hello_ = now + (hs_.electorate.Empty() ? options_.heartbeat_interval : options_.hello_interval);
}

void Election::SendHeartbeats(SteadyTime now) {
  Message m = Base(MessageType::kHeartbeat, "");
  m.members = hs_.electorate.members;
  m.seq = ++seq_;
  Send(std::move(m));
  next_heartbeat_ = now + options_.heartbeat_interval;
}

// --- bootstrap ---

void Election::TryBootstrap(SteadyTime now) {
  if (!options_.admin_capable) {
    problem_ = "waiting to learn the electorate from its members";
    return;
  }
  if (options_.bootstrap_expect <= 0) {
    problem_ = "not in any electorate: election.bootstrap_expect is 0 and no cluster has been heard";
    return;
  }
  std::vector<std::string> fresh = {options_.node_id};
  const auto horizon = options_.heartbeat_interval * kHelloLifetimes * 2;
  for (const auto& [id, p] : peers_) {
    if (p.fresh && p.admin_capable && p.cluster.empty() && now - p.last_seen <= horizon) fresh.push_back(id);
  }
  const auto expect = static_cast<std::size_t>(options_.bootstrap_expect);
  if (fresh.size() < expect) {
    problem_ = "forming the electorate: " + std::to_string(fresh.size()) + " of " + std::to_string(expect) +
               " admin-capable nodes seen (election.bootstrap_expect)";
    return;
  }
  if (fresh.size() > expect) {
    problem_ =
        "not forming an electorate: " + std::to_string(fresh.size()) +
        " fresh admin-capable nodes seen, more than election.bootstrap_expect=" + std::to_string(expect);
    return;
  }
  // The same set for two fresh-hello intervals: a node that started a
  // moment later would otherwise be left out (or make it one too many).
  std::sort(fresh.begin(), fresh.end());
  if (fresh != bootstrap_set_) {
    bootstrap_set_ = fresh;
    bootstrap_since_ = now;
  }
  if (expect > 1 && now - bootstrap_since_ < 2 * options_.heartbeat_interval) {
    problem_ = "forming the electorate: all " + std::to_string(expect) + " admin-capable nodes seen";
    return;
  }
  HardState next = hs_;
  next.cluster = ClusterIdOf(fresh);
  next.electorate = Electorate{ConfigId{0, 1}, fresh};
  if (!Save(std::move(next))) return;
  problem_.clear();
  ResetElectionTimer(now);
  SendHello(now);
  if (hs_.electorate.members.size() == 1) Campaign(now, false);
}

bool Election::AdoptIfFresh(const Message& m, SteadyTime now) {
  if (!hs_.cluster.empty()) return true;
  if (m.cluster.empty() || m.members.empty() || m.config.version == 0) return false;
  if (!std::is_sorted(m.members.begin(), m.members.end())) return false;
  HardState next = hs_;
  next.cluster = m.cluster;
  next.electorate = Electorate{m.config, m.members};
  if (!Save(std::move(next))) return false;
  problem_.clear();
  ResetElectionTimer(now);
  SendHello(now);
  return true;
}

// --- messages ---

void Election::Receive(const Message& m, SteadyTime now) {
  if (m.from.empty() || m.from == options_.node_id) return;
  if (!m.to.empty() && m.to != options_.node_id) return;
  if (!m.cluster.empty() && !hs_.cluster.empty() && m.cluster != hs_.cluster) {
    ++foreign_;
    foreign_at_ = now;
    foreign_problem_ = "ignoring node " + m.from + " of another cluster (" + m.cluster + "; this one is " +
                       hs_.cluster + "): two electorates share this network";
    return;
  }
  if (m.type == MessageType::kHello) {
    OnHello(m, now);
    return;
  }
  if (m.cluster.empty()) return;  // only hellos come from fresh nodes
  if (!FromElectorate(m)) {
    ++refused_;
    return;
  }
  if (hs_.cluster.empty()) {
    if (m.type != MessageType::kHeartbeat || !AdoptIfFresh(m, now)) return;
  }
  switch (m.type) {
    case MessageType::kHello:
      break;
    case MessageType::kHeartbeat:
      OnHeartbeat(m, now);
      break;
    case MessageType::kHeartbeatAck:
      OnHeartbeatAck(m, now);
      break;
    case MessageType::kPreVote:
      OnPreVote(m, now);
      break;
    case MessageType::kPreVoteReply:
      OnPreVoteReply(m, now);
      break;
    case MessageType::kVote:
      OnVote(m, now);
      break;
    case MessageType::kVoteReply:
      OnVoteReply(m, now);
      break;
    case MessageType::kTimeoutNow:
      OnTimeoutNow(m, now);
      break;
    case MessageType::kTransferRequest:
      if (role_ == Role::kAdmin && m.term == hs_.term) (void)Trigger(now, true);
      break;
  }
}

void Election::OnHello(const Message& m, SteadyTime now) {
  const bool known = peers_.contains(m.from);
  Peer& p = peers_[m.from];
  // A gap longer than a peer's lifetime starts its stabilization over.
  if (!known || now - p.last_seen > options_.hello_interval * kHelloLifetimes || p.cluster != m.cluster ||
      p.admin_capable != m.admin_capable) {
    p.up_since = now;
  }
  p.admin_capable = m.admin_capable;
  p.fresh = m.fresh;
  p.score = m.score;
  p.cluster = m.cluster;
  p.last_seen = now;
  if (hs_.cluster.empty()) {
    if (!m.cluster.empty()) {
      (void)AdoptIfFresh(m, now);
    } else {
      TryBootstrap(now);
    }
  }
}

void Election::OnHeartbeat(const Message& m, SteadyTime now) {
  if (m.term < hs_.term) {  // a deposed admin: tell it the term
    Message r = Base(MessageType::kHeartbeatAck, m.from);
    r.seq = m.seq;
    r.granted = false;
    Send(std::move(r));
    return;
  }
  if (role_ == Role::kAdmin && m.term == hs_.term) {
    problem_ = "heartbeat of " + m.from + " in this admin's own term " + std::to_string(hs_.term);
    return;  // cannot happen while the invariants hold
  }
  if (m.term > hs_.term || role_ == Role::kCandidate || admin_ != m.from) {
    BecomeFollower(m.term, m.from, now, "heartbeat of admin " + m.from);
    if (hs_.term != m.term) return;  // the new term could not be saved
  }
  heard_admin_ = true;
  admin_heard_ = now;
  prevoting_ = false;
  // The admin's electorate is authoritative. Within one admin's term its
  // versions only grow, and its first version already carries its term, so
  // "newer" is the right test even for heartbeats that arrive out of order.
  if (m.config > hs_.electorate.id && !m.members.empty() &&
      std::is_sorted(m.members.begin(), m.members.end())) {
    HardState next = hs_;
    next.electorate = Electorate{m.config, m.members};
    if (!Save(std::move(next))) return;
    if (!CanStand() && role_ != RestingRole()) SetRole(RestingRole(), admin_, now, "left the electorate");
  }
  ResetElectionTimer(now);
  Message r = Base(MessageType::kHeartbeatAck, m.from);
  r.seq = m.seq;
  r.granted = true;
  Send(std::move(r));
}

void Election::OnHeartbeatAck(const Message& m, SteadyTime now) {
  if (m.term > hs_.term) {
    BecomeFollower(m.term, "", now, "a member is in newer term " + std::to_string(m.term));
    return;
  }
  if (role_ != Role::kAdmin || m.term != hs_.term || !m.granted) return;
  acks_[m.from] = Ack{now, m.config};
  CheckCommit(now);
}

// Every node answers (pre-)votes, members or not, as in Raft: a candidate
// may count a node its own electorate has that this node has not learned.
void Election::OnPreVote(const Message& m, SteadyTime now) {
  Message r = Base(MessageType::kPreVoteReply, m.from);
  // A pre-vote changes nothing here. It is granted to a candidate that could
  // win (its term would be newer, its electorate is at least as recent) when
  // this node has no live admin: a node that was cut off cannot disrupt.
  if (m.term <= hs_.term) {
    r.granted = false;  // r.term = our newer term: the candidate catches up
  } else {
    r.granted = m.config >= hs_.electorate.id && !InLease(now);
    if (r.granted) r.term = m.term;
  }
  Send(std::move(r));
}

void Election::OnPreVoteReply(const Message& m, SteadyTime now) {
  if (resigned_) return;
  if (!m.granted) {
    if (m.term > hs_.term)
      BecomeFollower(m.term, "", now, "a member is in newer term " + std::to_string(m.term));
    return;
  }
  if (!prevoting_ || m.term != hs_.term + 1 || !hs_.electorate.Contains(m.from)) return;
  prevotes_.insert(m.from);
  if (prevotes_.size() >= hs_.electorate.Quorum()) BecomeCandidate(now, false);
}

void Election::OnVote(const Message& m, SteadyTime now) {
  if (m.term > hs_.term) {
    // Leader stickiness: while this node hears a live admin, a vote request
    // of a newer term is refused, unless it follows a handover.
    if (!m.transfer && InLease(now)) {
      Message r = Base(MessageType::kVoteReply, m.from);
      r.granted = false;
      Send(std::move(r));
      return;
    }
    BecomeFollower(m.term, "", now, "vote requested by " + m.from + " for term " + std::to_string(m.term));
    if (hs_.term != m.term) return;
  }
  Message r = Base(MessageType::kVoteReply, m.from);
  r.granted = false;
  if (m.term == hs_.term && (hs_.voted_for.empty() || hs_.voted_for == m.from) &&
      m.config >= hs_.electorate.id) {
    HardState next = hs_;
    next.voted_for = m.from;
    if (!Save(std::move(next))) return;
    r.granted = true;
    ResetElectionTimer(now);
  }
  Send(std::move(r));
}

void Election::OnVoteReply(const Message& m, SteadyTime now) {
  if (m.term > hs_.term) {
    BecomeFollower(m.term, "", now, "a member is in newer term " + std::to_string(m.term));
    return;
  }
  if (resigned_ || role_ != Role::kCandidate || m.term != hs_.term || !m.granted ||
      !hs_.electorate.Contains(m.from)) {
    return;
  }
  votes_.insert(m.from);
  if (votes_.size() >= hs_.electorate.Quorum()) BecomeAdmin(now);
}

void Election::OnTimeoutNow(const Message& m, SteadyTime now) {
  if (m.term != hs_.term || !CanStand() || resigned_) return;
  if (!admin_.empty() && m.from != admin_) return;
  BecomeCandidate(now, true);
}

// --- standing and winning ---

void Election::Campaign(SteadyTime now, bool transfer) {
  if (!CanStand() || resigned_) return;
  if (transfer) {
    BecomeCandidate(now, true);
    return;
  }
  prevoting_ = true;
  prevotes_ = {options_.node_id};
  ResetElectionTimer(now);
  Message m = Base(MessageType::kPreVote, "");
  m.term = hs_.term + 1;
  Send(std::move(m));
  if (prevotes_.size() >= hs_.electorate.Quorum()) BecomeCandidate(now, false);
}

void Election::BecomeCandidate(SteadyTime now, bool transfer) {
  HardState next = hs_;
  ++next.term;
  next.voted_for = options_.node_id;
  if (!Save(std::move(next))) return;
  if (role_ == Role::kAdmin) acks_.clear();
  prevoting_ = false;
  votes_ = {options_.node_id};
  heard_admin_ = false;
  SetRole(Role::kCandidate, "", now, transfer ? "standing after a handover" : "no heartbeat: standing");
  ResetElectionTimer(now);
  Message m = Base(MessageType::kVote, "");
  m.transfer = transfer;
  Send(std::move(m));
  if (votes_.size() >= hs_.electorate.Quorum()) BecomeAdmin(now);
}

void Election::BecomeAdmin(SteadyTime now) {
  // Admin of a term only as the candidate this node voted for, with a
  // quorum of that term's votes.
  BZZZ_INVARIANT(role_ == Role::kCandidate && hs_.voted_for == options_.node_id &&
                     votes_.size() >= hs_.electorate.Quorum(),
                 "becoming admin of term " + std::to_string(hs_.term) + " without a quorum of its votes");
  // The first act of an admin is a new electorate version carrying its term
  // (Raft's no-op entry): no change of membership is proposed until this one
  // is known to a majority.
  HardState next = hs_;
  next.electorate.id = ConfigId{hs_.term, hs_.electorate.id.version + 1};
  if (!Save(std::move(next))) return;
  acks_.clear();
  committed_ = false;
  seq_ = 0;
  admin_since_ = now;
  votes_.clear();
  SetRole(Role::kAdmin, options_.node_id, now, "won term " + std::to_string(hs_.term));
  SendHeartbeats(now);
  CheckCommit(now);
}

void Election::StepDown(SteadyTime now, const std::string& reason) {
  if (role_ != Role::kAdmin) return;
  acks_.clear();
  heard_admin_ = false;
  SetRole(RestingRole(), "", now, reason);
  ResetElectionTimer(now);
}

void Election::CheckCommit(SteadyTime now) {
  if (committed_ || role_ != Role::kAdmin) return;
  std::size_t have = Member() ? 1 : 0;
  for (const auto& id : hs_.electorate.members) {
    if (id == options_.node_id) continue;
    auto it = acks_.find(id);
    if (it != acks_.end() && it->second.config >= hs_.electorate.id) ++have;
  }
  if (have < hs_.electorate.Quorum()) return;
  committed_ = true;
  if (!Member()) StepDown(now, "removed from the electorate");
}

void Election::CheckQuorum(SteadyTime now) {
  if (role_ != Role::kAdmin || now - admin_since_ < options_.election_timeout) return;
  std::size_t live = Member() ? 1 : 0;
  for (const auto& id : hs_.electorate.members) {
    if (id == options_.node_id) continue;
    auto it = acks_.find(id);
    if (it != acks_.end() && now - it->second.at < options_.election_timeout) ++live;
  }
  if (live < hs_.electorate.Quorum()) {
    StepDown(now, "lost contact with a majority of the electorate (" + std::to_string(live) + " of " +
                      std::to_string(hs_.electorate.members.size()) + " reachable)");
  }
}

// Who may lead or stand, as far as this node can tell. An admin is always a
// member of the electorate its heartbeats carry (it cannot remove itself),
// and a node of this node's electorate or of a newer one (that this node
// has not learned yet: Raft's configuration rule). A heartbeat, vote
// request or handover of anyone else, whatever term it claims, changes
// nothing here: a removed member or a node that never belonged cannot
// raise the term or take over.
bool Election::FromElectorate(const Message& m) const {
  switch (m.type) {
    case MessageType::kHeartbeat:
      if (!std::binary_search(m.members.begin(), m.members.end(), m.from)) return false;
      [[fallthrough]];
    case MessageType::kPreVote:
    case MessageType::kVote:
    case MessageType::kTimeoutNow:
      return hs_.electorate.Empty() || hs_.electorate.Contains(m.from) || m.config > hs_.electorate.id;
    default:
      return true;
  }
}

SteadyTime Election::LastContact(const std::string& node_id) const {
  SteadyTime last = admin_since_;  // nobody is dead for longer than this admin has been listening
  if (auto p = peers_.find(node_id); p != peers_.end()) last = std::max(last, p->second.last_seen);
  if (auto a = acks_.find(node_id); a != acks_.end()) last = std::max(last, a->second.at);
  return last;
}

void Election::Autopilot(SteadyTime now) {
  if (role_ != Role::kAdmin || !committed_ || !Member()) return;
  const auto& members = hs_.electorate.members;
  // Dead members first: a majority that has to count the dead is fragile.
  if (options_.autopilot_dead_after.count() > 0 && members.size() > 1) {
    std::size_t live = 0;
    std::string dead;
    for (const auto& id : members) {
      if (id == options_.node_id || now - LastContact(id) < options_.autopilot_dead_after) {
        ++live;
      } else if (dead.empty()) {
        dead = id;  // members are sorted: the lowest id goes first
      }
    }
    const std::size_t quorum_after = (members.size() - 1) / 2 + 1;
    if (!dead.empty() && live >= quorum_after) {
      auto next = members;
      next.erase(std::remove(next.begin(), next.end(), dead), next.end());
      if (Propose(std::move(next), now).ok()) {
        autopilot_last_ = "removed " + dead + " (not heard from for " + Ms(now - LastContact(dead)) + ")";
      }
      return;
    }
  }
  if (options_.autopilot_stabilization.count() <= 0) return;
  const auto horizon = options_.hello_interval * kHelloLifetimes;
  for (const auto& [id, p] : peers_) {  // sorted by id
    if (hs_.electorate.Contains(id) || !p.admin_capable || p.cluster != hs_.cluster) continue;
    if (now - p.last_seen > horizon || now - p.up_since < options_.autopilot_stabilization) continue;
    auto next = members;
    next.push_back(id);
    if (Propose(std::move(next), now).ok()) {
      autopilot_last_ = "added " + id + " (stable for " + Ms(now - p.up_since) + ")";
    }
    return;
  }
}

std::string Election::BestSuccessor(SteadyTime now) const {
  std::string best;
  double best_score = -1;
  for (const auto& id : hs_.electorate.members) {
    if (id == options_.node_id) continue;
    auto ack = acks_.find(id);
    if (ack == acks_.end() || now - ack->second.at >= options_.election_timeout) continue;
    auto p = peers_.find(id);
    if (p != peers_.end() && !p->second.admin_capable) continue;
    const double score = p != peers_.end() ? p->second.score : 0;
    if (score > best_score) {  // members are sorted: ties go to the lowest id
      best = id;
      best_score = score;
    }
  }
  return best;
}

// --- operations ---

Status Election::Trigger(SteadyTime now, bool force) {
  if (hs_.electorate.Empty()) return FailedPrecondition(problem_.empty() ? "no electorate yet" : problem_);
  if (!force && changed_once_ && now - last_change_ < options_.stability_window) {
    return Conflict("the admin changed " + Ms(now - last_change_) +
                    " ago, inside election.stability_window (" + Ms(options_.stability_window) +
                    "): retry later or force");
  }
  if (role_ == Role::kAdmin) {
    const std::string next = BestSuccessor(now);
    if (next.empty()) {
      if (hs_.electorate.members.size() == 1) {
        BecomeCandidate(now, true);  // alone: a new term, same admin
        return Status::Ok();
      }
      return FailedPrecondition("no other live admin-capable member to hand over to");
    }
    SendHeartbeats(now);  // a last heartbeat: the followers' gap is the handover alone
    StepDown(now, "handing over to " + next + " (trigger-election)");
    no_stand_until_ = now + options_.stability_window;
    Message m = Base(MessageType::kTimeoutNow, next);
    Send(std::move(m));
    return Status::Ok();
  }
  if (CanStand() && !resigned_) {
    no_stand_until_ = SteadyTime{};
    BecomeCandidate(now, true);
    return Status::Ok();
  }
  if (admin_.empty()) return Unavailable("no admin known, and this node cannot stand");
  Send(Base(MessageType::kTransferRequest, admin_));
  return Status::Ok();
}

std::string Election::Resign(SteadyTime now) {
  resigned_ = true;
  if (role_ != Role::kAdmin) {
    prevoting_ = false;
    return "";
  }
  const std::string next = BestSuccessor(now);
  if (!next.empty()) SendHeartbeats(now);  // a last heartbeat: the followers' gap is the handover alone
  StepDown(now, next.empty() ? "shutting down" : "shutting down: handing over to " + next);
  if (!next.empty()) Send(Base(MessageType::kTimeoutNow, next));
  return next;
}

Status Election::Propose(std::vector<std::string> members, SteadyTime now) {
  if (role_ != Role::kAdmin) {
    return FailedPrecondition(admin_.empty() ? "no admin: electorate changes need one"
                                             : "not the admin; the admin is " + admin_);
  }
  if (!committed_) return FailedPrecondition("the previous electorate change is not yet known to a majority");
  std::sort(members.begin(), members.end());
  HardState next = hs_;
  next.electorate = Electorate{ConfigId{hs_.term, hs_.electorate.id.version + 1}, std::move(members)};
  if (!Save(std::move(next))) return Internal(problem_);
  committed_ = false;
  SendHeartbeats(now);
  CheckCommit(now);
  return Status::Ok();
}

Status Election::AddMember(const std::string& node_id, SteadyTime now) {
  if (node_id.empty() || node_id.size() > 128) return InvalidArgument("node id must be 1 to 128 characters");
  if (hs_.electorate.Contains(node_id))
    return Status(StatusCode::kAlreadyExists, node_id + " is already a member");
  if (role_ == Role::kAdmin) {
    // Only a node that is up and admin-capable: a member that never answers
    // would count against the majority from the start.
    auto p = peers_.find(node_id);
    if (p == peers_.end() || now - p->second.last_seen > options_.hello_interval * kHelloLifetimes) {
      return NotFound(node_id + " is not a live node of this cluster (no hello from it)");
    }
    if (!p->second.admin_capable) return FailedPrecondition(node_id + " is not admin-capable");
  }
  auto members = hs_.electorate.members;
  members.push_back(node_id);
  return Propose(std::move(members), now);
}

Status Election::RemoveMember(const std::string& node_id, SteadyTime now) {
  if (!hs_.electorate.Contains(node_id)) return NotFound(node_id + " is not a member of the electorate");
  if (role_ != Role::kAdmin) return Propose({}, now);  // the "not the admin" answer
  if (hs_.electorate.members.size() == 1) return FailedPrecondition("cannot remove the last member");
  // An admin outside its own electorate could not stand again if the change
  // stalled (its electorate would be newer than every member's): the admin
  // hands over first, and the new admin removes it.
  if (node_id == options_.node_id) {
    return FailedPrecondition("this node is the admin: hand over first (trigger-election), then remove it");
  }
  auto members = hs_.electorate.members;
  members.erase(std::remove(members.begin(), members.end(), node_id), members.end());
  return Propose(std::move(members), now);
}

Snapshot Election::GetSnapshot(SteadyTime now) const {
  Snapshot s;
  s.role = role_;
  s.node_id = options_.node_id;
  s.admin = admin_;
  s.cluster = hs_.cluster;
  s.term = hs_.term;
  s.since = since_;
  if (role_ == Role::kAdmin) {
    s.heartbeat_age = Millis(0);
  } else if (heard_admin_) {
    s.heartbeat_age = std::chrono::duration_cast<Millis>(now - admin_heard_);
  }
  s.electorate = hs_.electorate;
  s.electorate_committed = role_ == Role::kAdmin && committed_;
  s.member = Member();
  s.leadership_changes = leadership_changes_;
  s.problem = problem_;
  if (!foreign_problem_.empty() && now - foreign_at_ < options_.hello_interval * kHelloLifetimes) {
    s.problem = s.problem.empty() ? foreign_problem_ : s.problem + "; " + foreign_problem_;
  }
  s.foreign_messages = foreign_;
  s.autopilot = autopilot_last_;
  s.refused_messages = refused_;
  s.candidates.push_back({options_.node_id, score_, options_.admin_capable, Member(), true});
  const auto horizon = options_.hello_interval * kHelloLifetimes;
  for (const auto& [id, p] : peers_) {
    const bool member = hs_.electorate.Contains(id);
    if (now - p.last_seen > horizon || (!p.admin_capable && !member)) continue;
    s.candidates.push_back({id, p.score, p.admin_capable, member, false});
  }
  std::sort(s.candidates.begin(), s.candidates.end(), [](const CandidateInfo& a, const CandidateInfo& b) {
    return a.score != b.score ? a.score > b.score : a.node_id < b.node_id;
  });
  return s;
}

}  // namespace bzzz::election
