// Directed scenarios of the election state machine on the simulated network
// of sim.h (reliable unless a test says otherwise).
#include <gtest/gtest.h>

#include "election/sim.h"

namespace bzzz::election::sim {
namespace {

using namespace std::chrono_literals;

// n admin-capable nodes that bootstrap together.
void Bootstrap(Cluster& c, int n) {
  for (int i = 0; i < n; ++i) c.Add(NodeOptions("n" + std::to_string(i), true, n));
  for (int i = 0; i < n; ++i) c.Start(i);
}

int WaitAdmin(Cluster& c, std::chrono::milliseconds limit = 5s) {
  for (auto waited = 0ms; waited < limit; waited += 10ms) {
    c.RunFor(10ms);
    if (int a = c.AgreedAdmin(); a >= 0) return a;
  }
  return -1;
}

TEST(Election, SingleNodeElectsItselfAtOnce) {
  Cluster c(1);
  c.Add(NodeOptions("solo"));
  c.Start(0);
  c.RunFor(1ms);
  ASSERT_TRUE(c.violation.empty()) << c.violation;
  EXPECT_EQ(c.election(0)->role(), Role::kAdmin);
  EXPECT_EQ(c.election(0)->term(), 1u);
  EXPECT_EQ(c.election(0)->hard_state().electorate.members, std::vector<std::string>{"solo"});

  // A restart keeps the electorate and wins the next term at once.
  c.Crash(0);
  c.Start(0);
  c.RunFor(1ms);
  EXPECT_EQ(c.election(0)->role(), Role::kAdmin);
  EXPECT_EQ(c.election(0)->term(), 2u);
}

TEST(Election, ThreeNodesFormTheElectorateAndElectOne) {
  Cluster c(7);
  Bootstrap(c, 3);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0) << c.violation;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.election(i)->hard_state().electorate.members.size(), 3u);
    EXPECT_EQ(c.election(i)->hard_state().cluster, c.election(admin)->hard_state().cluster);
    EXPECT_EQ(c.election(i)->role(), i == admin ? Role::kAdmin : Role::kFollower);
  }
  // It stays: heartbeats keep every follower quiet.
  const auto term = c.election(admin)->term();
  c.RunFor(10s);
  EXPECT_EQ(c.AgreedAdmin(), admin);
  EXPECT_EQ(c.election(admin)->term(), term);
  EXPECT_TRUE(c.violation.empty()) << c.violation;
}

TEST(Election, BootstrapWaitsForExpectAndRefusesMore) {
  Cluster c(3);
  c.Add(NodeOptions("a", true, 3));
  c.Add(NodeOptions("b", true, 3));
  c.Start(0);
  c.Start(1);
  c.RunFor(3s);
  EXPECT_TRUE(c.election(0)->hard_state().electorate.Empty());
  EXPECT_NE(c.election(0)->GetSnapshot(c.now()).problem.find("2 of 3"), std::string::npos);

  Cluster d(4);
  for (auto id : {"a", "b", "c"}) d.Add(NodeOptions(id, true, 2));
  for (int i = 0; i < 3; ++i) d.Start(i);
  d.RunFor(3s);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(d.election(i)->hard_state().electorate.Empty());
  EXPECT_NE(d.election(0)->GetSnapshot(d.now()).problem.find("more than"), std::string::npos);
}

TEST(Election, KilledAdminIsReplacedWithinTheTimeoutBound) {
  Cluster c(7);
  Bootstrap(c, 5);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  c.RunFor(3s);  // hellos: everyone knows everyone's score
  const auto old_term = c.election(admin)->term();
  c.Crash(admin);
  const auto killed = c.now();
  int next = -1;
  while (next < 0 && c.now() - killed < 5s) {
    c.RunFor(5ms);
    next = c.AgreedAdmin();
  }
  ASSERT_GE(next, 0) << c.violation;
  EXPECT_NE(next, admin);
  EXPECT_GT(c.election(next)->term(), old_term);
  // Detection after [t, 2t) plus two message rounds.
  EXPECT_LT(c.now() - killed, 2 * 600ms + 50ms);
}

TEST(Election, MinorityNeverElectsAndStaleAdminStepsDown) {
  Cluster c(7);
  Bootstrap(c, 5);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  // The admin and one follower on one side, three on the other.
  std::vector<int> groups(5, 1);
  groups[admin] = 0;
  groups[(admin + 1) % 5] = 0;
  c.Partition(groups);
  c.RunFor(5s);
  ASSERT_TRUE(c.violation.empty()) << c.violation;
  // The old admin stepped down (check-quorum); the majority elected.
  EXPECT_NE(c.election(admin)->role(), Role::kAdmin);
  int majority_admins = 0;
  for (int i = 0; i < 5; ++i) {
    if (groups[i] == 1 && c.election(i)->role() == Role::kAdmin) ++majority_admins;
    if (groups[i] == 0) {
      EXPECT_NE(c.election(i)->role(), Role::kAdmin);
    }
  }
  EXPECT_EQ(majority_admins, 1);
  // The minority did not inflate its terms (pre-vote) and rejoins quietly.
  const auto minority_term = c.election(admin)->term();
  c.Heal();
  const int after = WaitAdmin(c);
  ASSERT_GE(after, 0);
  EXPECT_EQ(groups[after], 1);
  EXPECT_GE(c.election(after)->term(), minority_term);
}

TEST(Election, RejoiningNodeDoesNotDisruptTheAdmin) {
  Cluster c(7);
  Bootstrap(c, 3);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  const int cut = (admin + 1) % 3;
  std::vector<int> groups(3, 0);
  groups[cut] = 1;
  c.Partition(groups);
  c.RunFor(10s);  // the cut-off node keeps timing out, but pre-votes fail
  const auto term = c.election(admin)->term();
  EXPECT_EQ(c.election(cut)->term(), term);
  c.Heal();
  c.RunFor(3s);
  EXPECT_EQ(c.AgreedAdmin(), admin);
  EXPECT_EQ(c.election(admin)->term(), term);
}

TEST(Election, TriggerMovesLeadershipAndRespectsTheStabilityWindow) {
  Cluster c(7);
  Bootstrap(c, 3);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  EXPECT_EQ(c.election(admin)->Trigger(c.now(), false).code(), StatusCode::kConflict);
  c.RunFor(3s);
  ASSERT_TRUE(c.election(admin)->Trigger(c.now(), false).ok());
  const auto at = c.now();
  const int next = WaitAdmin(c);
  ASSERT_GE(next, 0);
  EXPECT_NE(next, admin);
  EXPECT_LT(c.now() - at, 150ms);  // a handover, not a timeout

  // On a follower: it stands at once and wins.
  c.RunFor(3s);
  const int follower = (next + 1) % 3;
  ASSERT_TRUE(c.election(follower)->Trigger(c.now(), false).ok());
  EXPECT_EQ(WaitAdmin(c), follower);
}

TEST(Election, ResignHandsOverWithinAHeartbeat) {
  Cluster c(7);
  Bootstrap(c, 3);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  c.RunFor(1s);
  const std::string next = c.election(admin)->Resign(c.now());
  ASSERT_FALSE(next.empty());
  const auto at = c.now();
  c.Crash(admin);
  const int now_admin = WaitAdmin(c);
  ASSERT_GE(now_admin, 0);
  EXPECT_EQ(c.node(now_admin).options.node_id, next);
  EXPECT_LT(c.now() - at, 150ms);
}

TEST(Election, ObserversFollowAndNeverStand) {
  Cluster c(9);
  c.Add(NodeOptions("a", true, 1));
  c.Add(NodeOptions("o", false, 1));
  c.Start(0);
  c.Start(1);
  ASSERT_EQ(WaitAdmin(c), 0);
  EXPECT_EQ(c.election(1)->role(), Role::kObserver);
  c.Crash(0);
  c.RunFor(5s);
  EXPECT_NE(c.election(1)->role(), Role::kAdmin);
  EXPECT_EQ(c.election(1)->admin(), "");  // the dead admin is forgotten
}

TEST(Election, ElectorateGrowsOneMemberAtATime) {
  Cluster c(11);
  c.Add(NodeOptions("a", true, 1));
  c.Add(NodeOptions("b", true, 0));
  c.Add(NodeOptions("c", true, 0));
  for (int i = 0; i < 3; ++i) c.Start(i);
  ASSERT_EQ(WaitAdmin(c), 0);
  // b and c learned the electorate and follow, as non-members.
  EXPECT_FALSE(c.election(1)->GetSnapshot(c.now()).member);
  ASSERT_TRUE(c.election(0)->AddMember("b", c.now()).ok());
  EXPECT_EQ(c.election(0)->AddMember("c", c.now()).code(), StatusCode::kFailedPrecondition);  // one at a time
  c.RunFor(1s);
  ASSERT_TRUE(c.election(0)->AddMember("c", c.now()).ok());
  c.RunFor(1s);
  EXPECT_EQ(c.election(2)->hard_state().electorate.members.size(), 3u);
  EXPECT_TRUE(c.election(0)->GetSnapshot(c.now()).electorate_committed);
  EXPECT_EQ(c.election(1)->AddMember("x", c.now()).code(), StatusCode::kFailedPrecondition);  // not the admin

  // Now a majority survives the loss of the founder.
  c.Crash(0);
  const int next = WaitAdmin(c);
  EXPECT_TRUE(next == 1 || next == 2);

  // The admin is not removed while it is the admin: it hands over first.
  c.Start(0);
  c.RunFor(3s);
  const int admin = c.AgreedAdmin();
  ASSERT_GE(admin, 0);
  const std::string admin_id = c.node(admin).options.node_id;
  EXPECT_EQ(c.election(admin)->RemoveMember(admin_id, c.now()).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c.election(admin)->Trigger(c.now(), true).ok());
  const int successor = WaitAdmin(c, 5s);
  ASSERT_GE(successor, 0) << c.violation;
  ASSERT_NE(successor, admin);
  ASSERT_TRUE(c.election(successor)->RemoveMember(admin_id, c.now()).ok());
  c.RunFor(1s);
  EXPECT_FALSE(c.election(admin)->GetSnapshot(c.now()).member);
  EXPECT_EQ(c.election(admin)->hard_state().electorate.members.size(), 2u);
  // The removed node no longer counts: with the admin of a two-member
  // electorate dead, the other member is not a majority and nobody is elected.
  c.Crash(successor);
  c.RunFor(5s);
  for (int i = 0; i < 3; ++i) {
    if (c.Up(i)) {
      EXPECT_NE(c.election(i)->role(), Role::kAdmin);
    }
  }
  EXPECT_TRUE(c.violation.empty()) << c.violation;
}

// Two nodes that each bootstrapped alone (election.bootstrap_expect=1 on
// both) are two clusters: each ignores the other's messages and says so.
// Autopilot: a founder alone, then admin-capable nodes that learn the
// electorate (bootstrap_expect 0, as joined nodes do) are added by the admin
// one at a time after the stabilization time; a member that dies is removed
// after the dead time, but never when the live members would lose their
// majority.
TEST(Election, AutopilotGrowsTheElectorateAndRemovesTheDead) {
  Cluster c(11);
  for (int i = 0; i < 5; ++i) {
    Options o = NodeOptions("n" + std::to_string(i), true, i == 0 ? 1 : 0);
    o.autopilot_stabilization = 2s;
    o.autopilot_dead_after = 4s;
    c.Add(o);
  }
  c.Start(0);
  ASSERT_EQ(WaitAdmin(c), 0);
  for (int i = 1; i < 5; ++i) c.Start(i);
  c.RunFor(1s);
  EXPECT_EQ(c.election(0)->hard_state().electorate.members.size(), 1u);  // not yet: stabilizing
  c.RunFor(8s);
  ASSERT_TRUE(c.violation.empty()) << c.violation;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(c.election(i)->hard_state().electorate.members.size(), 5u) << "node " << i;
    EXPECT_TRUE(c.election(i)->GetSnapshot(c.now()).member);
  }
  EXPECT_NE(c.election(0)->GetSnapshot(c.now()).autopilot.find("added"), std::string::npos);

  // kill -9 of a follower for longer than the dead time: it leaves.
  c.Crash(4);
  c.RunFor(6s);
  EXPECT_EQ(c.AgreedAdmin(), 0);
  EXPECT_EQ(c.election(0)->hard_state().electorate.members.size(), 4u);
  EXPECT_FALSE(c.election(0)->hard_state().electorate.Contains("n4"));
  // Back up: it is added again once stable.
  c.Start(4);
  c.RunFor(6s);
  EXPECT_TRUE(c.election(0)->hard_state().electorate.Contains("n4"));

  // Two of five die at once: both go (3 live stay a majority of 4, then 3).
  c.Crash(3);
  c.Crash(4);
  c.RunFor(12s);
  EXPECT_EQ(c.election(0)->hard_state().electorate.members, (std::vector<std::string>{"n0", "n1", "n2"}));
  // Then two of the remaining three: nothing is removed (one live member is
  // no majority of two), and the admin steps down by check-quorum.
  c.Crash(1);
  c.Crash(2);
  c.RunFor(10s);
  EXPECT_EQ(c.election(0)->hard_state().electorate.members.size(), 3u);
  EXPECT_NE(c.election(0)->role(), Role::kAdmin);
  EXPECT_TRUE(c.violation.empty()) << c.violation;
}

// A node outside the electorate (never a member, or removed) cannot raise
// the term or take over, whatever term it claims: its heartbeats (also
// with a forged electorate that does not name it, or names it with an
// electorate no newer than this node's), vote requests and handovers
// change nothing, and are counted.
TEST(Election, NonMembersCannotLeadOrRaiseTheTerm) {
  Cluster c(5);
  Bootstrap(c, 3);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  const int follower = (admin + 1) % 3;
  Election* e = c.election(follower);
  const auto term = e->term();
  const auto hs = e->hard_state();
  Message m;
  m.from = "intruder";
  m.cluster = hs.cluster;
  m.term = term + 1000;
  m.config = hs.electorate.id;
  m.type = MessageType::kHeartbeat;
  m.members = {"intruder"};  // an electorate of its own, no newer than ours
  e->Receive(m, c.now());
  m.members = hs.electorate.members;  // ours, which does not name it
  e->Receive(m, c.now());
  m.type = MessageType::kVote;
  e->Receive(m, c.now());
  m.type = MessageType::kPreVote;
  e->Receive(m, c.now());
  m.type = MessageType::kTimeoutNow;
  m.term = term;
  e->Receive(m, c.now());
  EXPECT_EQ(e->term(), term);
  EXPECT_EQ(e->hard_state(), hs);
  EXPECT_EQ(e->admin(), c.node(admin).options.node_id);
  EXPECT_EQ(e->GetSnapshot(c.now()).refused_messages, 5u);
  c.RunFor(2s);
  EXPECT_EQ(c.AgreedAdmin(), admin);
  EXPECT_TRUE(c.violation.empty()) << c.violation;
}

TEST(Election, MessagesOfAnotherClusterAreIgnoredAndReported) {
  struct Sink : Transport, StateStore {
    std::vector<Message> sent;
    void Send(const Message& m) override { sent.push_back(m); }
    Status Save(const HardState&) override { return Status::Ok(); }
  } sink;
  const SteadyTime t0{};
  Election a(NodeOptions("a"), HardState{}, &sink, &sink, nullptr, t0);
  a.Tick(t0);
  ASSERT_EQ(a.role(), Role::kAdmin);
  Message foreign;
  foreign.type = MessageType::kHeartbeat;
  foreign.from = "b";
  foreign.cluster = ClusterIdOf({"b"});
  foreign.term = 7;
  foreign.config = ConfigId{7, 2};
  foreign.members = {"b"};
  a.Receive(foreign, t0 + 1ms);
  EXPECT_EQ(a.role(), Role::kAdmin);
  EXPECT_EQ(a.term(), 1u);
  const auto s = a.GetSnapshot(t0 + 1ms);
  EXPECT_EQ(s.foreign_messages, 1u);
  EXPECT_NE(s.problem.find("another cluster"), std::string::npos) << s.problem;
}

TEST(Election, ScoreDecidesWhoStandsFirst) {
  Cluster c(21);
  Bootstrap(c, 3);
  const int admin = WaitAdmin(c);
  ASSERT_GE(admin, 0);
  const int best = (admin + 2) % 3;
  c.election(best)->SetScore(0.9);
  c.election((admin + 1) % 3)->SetScore(0.1);
  c.RunFor(3s);  // scores travel in hellos
  c.Crash(admin);
  EXPECT_EQ(WaitAdmin(c), best);
}

}  // namespace
}  // namespace bzzz::election::sim
