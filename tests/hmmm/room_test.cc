// The rules of one room (hmmm/room.h), rule by rule, with time passed in.
#include "hmmm/room.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace bzzz::hmmm {
namespace {

using nlohmann::json;

Rules TestRules() {
  Rules r;
  r.objection_window_ms = 1000;
  r.quorum = 0.5;
  r.message_limit = 50;
  r.room_timeout_ms = 60000;
  r.room_ttl_ms = 5000;
  r.hop_limit = 3;
  r.max_participants = 4;
  r.max_message_bytes = 100;
  r.room_rate = 1000;
  r.agent_rate = 1000;
  r.escalation_keywords = {"stuck", "manual intervention"};
  return r;
}

Post P(MessageType type, std::string agent, std::string body = "", std::string reply = "", std::string id = "") {
  Post p;
  p.type = type;
  p.agent = std::move(agent);
  p.node = "n1";
  p.body = std::move(body);
  p.in_reply_to = std::move(reply);
  p.id = std::move(id);
  return p;
}

Room OpenRoom(Rules rules = TestRules(), std::int64_t now = 0) {
  RoomRow meta;
  meta.id = "t-1";
  meta.task_id = "t-1";
  meta.owner_node = "owner";
  auto opened = Room::Open(meta, rules, P(MessageType::kHelpRequest, "asker", "the task fails"), now);
  EXPECT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(opened->second.size(), 1u);
  return std::move(opened->first);
}

std::string Propose(Room& room, const std::string& agent, std::int64_t now) {
  Outcome o = room.Accept(P(MessageType::kPlanProposed, agent, "plan by " + agent), now);
  EXPECT_TRUE(o.accepted) << o.why;
  return o.messages.back().id;
}

TEST(Room, OpensWithASeedAndNumbersMessages) {
  Room room = OpenRoom();
  EXPECT_EQ(room.state(), RoomState::kOpen);
  EXPECT_EQ(room.message_count(), 1);
  EXPECT_EQ(room.participants().size(), 1u);
  Outcome o = room.Accept(P(MessageType::kHelpResponse, "helper", "try this", "auto-1"), 10);
  ASSERT_TRUE(o.accepted) << o.why;
  EXPECT_EQ(o.messages.back().seq, 2);
  EXPECT_EQ(o.messages.back().in_reply_to, "auto-1");
  RoomRow bad;
  bad.id = "t-2";
  EXPECT_FALSE(Room::Open(bad, TestRules(), P(MessageType::kAgreement, "a"), 0).ok());
  bad.id = "no spaces";
  EXPECT_FALSE(Room::Open(bad, TestRules(), P(MessageType::kHelpRequest, "a"), 0).ok());
}

TEST(Room, APlanWithAQuorumAndNoObjectionIsDecidedWhenItsWindowCloses) {
  Room room = OpenRoom();
  ASSERT_TRUE(room.Join("b", "n1", 0).ok());
  ASSERT_TRUE(room.Join("c", "n1", 0).ok());  // asker, b, c: 2 of 3 needed
  const std::string plan = Propose(room, "b", 100);
  EXPECT_TRUE(room.Advance(1099).empty());  // window still open
  ASSERT_TRUE(room.Accept(P(MessageType::kAgreement, "c", "", plan), 500).accepted);
  auto out = room.Advance(1100);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, "decision");
  EXPECT_EQ(out[0].in_reply_to, plan);
  EXPECT_EQ(out[0].created_ms, 1100);  // made when the window closed
  const json body = json::parse(out[0].body);
  EXPECT_EQ(body["required"], 2);
  EXPECT_EQ(body["agreed"].size(), 2u);
  EXPECT_EQ(room.state(), RoomState::kDecided);
  EXPECT_EQ(room.decision_id(), out[0].id);
  Outcome late = room.Accept(P(MessageType::kHelpResponse, "c", "too late"), 1200);
  EXPECT_FALSE(late.accepted);
  EXPECT_EQ(late.refusal, Refusal::kClosed);
  // Archived room_ttl after it closed.
  room.Advance(1100 + 4999);
  EXPECT_EQ(room.state(), RoomState::kDecided);
  room.Advance(1100 + 5000);
  EXPECT_EQ(room.state(), RoomState::kArchived);
}

TEST(Room, WithoutAQuorumTheProposalExpires) {
  Room room = OpenRoom();
  ASSERT_TRUE(room.Join("b", "n1", 0).ok());
  ASSERT_TRUE(room.Join("c", "n1", 0).ok());
  ASSERT_TRUE(room.Join("d", "n1", 0).ok());  // 4 participants: 2 needed
  Propose(room, "b", 0);
  EXPECT_TRUE(room.Advance(1000).empty());
  EXPECT_FALSE(room.proposal().has_value());
  EXPECT_EQ(room.state(), RoomState::kOpen);
}

TEST(Room, AnObjectionBlocksThePlanUntilANewProposalAnswersIt) {
  Room room = OpenRoom();
  ASSERT_TRUE(room.Join("b", "n1", 0).ok());
  const std::string first = Propose(room, "b", 0);
  ASSERT_TRUE(room.Accept(P(MessageType::kAgreement, "asker", "", first), 10).accepted);
  ASSERT_TRUE(room.Accept(P(MessageType::kObjection, "asker", "no: it loses data", first), 20).accepted);
  EXPECT_TRUE(room.Advance(2000).empty()) << "an objected plan is never decided";
  EXPECT_EQ(room.state(), RoomState::kOpen);
  // Objecting to or agreeing with anything but the open proposal is refused.
  Outcome stale = room.Accept(P(MessageType::kAgreement, "b", "", first), 2100);
  EXPECT_FALSE(stale.accepted);
  EXPECT_EQ(stale.refusal, Refusal::kInvalid);
  const std::string second = Propose(room, "asker", 3000);
  Outcome old = room.Accept(P(MessageType::kObjection, "b", "", first), 3001);
  EXPECT_FALSE(old.accepted) << "the superseded proposal takes no answers";
  ASSERT_TRUE(room.Accept(P(MessageType::kAgreement, "b", "", second), 3002).accepted);
  auto out = room.Advance(4000);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].in_reply_to, second);
}

TEST(Room, ParticipantsWhoLeftDoNotCount) {
  Room room = OpenRoom();
  ASSERT_TRUE(room.Join("b", "n1", 0).ok());
  const std::string plan = Propose(room, "b", 0);
  ASSERT_TRUE(room.Leave("b", "n1", 500).ok());  // the proposer leaves: asker alone, 0 agreeing
  EXPECT_TRUE(room.Advance(1000).empty());
  EXPECT_EQ(room.state(), RoomState::kOpen);
  ASSERT_TRUE(room.Leave("b", "n1", 600).ok()) << "leaving twice is fine";
}

TEST(Room, EscalatesOnKeywordsRequestsMessageLimitAndTimeout) {
  {
    Room room = OpenRoom();
    Outcome o = room.Accept(P(MessageType::kHelpResponse, "b", "I am STUCK here"), 10);
    ASSERT_TRUE(o.accepted);
    ASSERT_EQ(o.messages.size(), 2u);
    EXPECT_EQ(o.messages[1].type, "escalation");
    EXPECT_EQ(json::parse(o.messages[1].body)["reason"], "keyword");
    EXPECT_EQ(room.state(), RoomState::kEscalated);
    EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "b", "more"), 20).refusal, Refusal::kClosed);
  }
  {
    Room room = OpenRoom();  // keywords are whole words: "unstuck" is not "stuck"
    ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "b", "now unstuck, thanks"), 10).accepted);
    EXPECT_EQ(room.state(), RoomState::kOpen);
    ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "b", "needs manual intervention."), 11).accepted);
    EXPECT_EQ(room.state(), RoomState::kEscalated);
  }
  {
    Room room = OpenRoom();
    ASSERT_TRUE(room.Accept(P(MessageType::kEscalation, "b", "please look"), 10).accepted);
    EXPECT_EQ(room.state(), RoomState::kEscalated);
    EXPECT_EQ(room.escalation_reason(), "requested");
  }
  {
    Rules rules = TestRules();
    rules.message_limit = 3;
    Room room = OpenRoom(rules);
    ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "b", "1"), 10).accepted);
    Outcome o = room.Accept(P(MessageType::kHelpResponse, "b", "2"), 11);
    ASSERT_EQ(o.messages.size(), 2u);
    EXPECT_EQ(room.escalation_reason(), "message_limit");
  }
  {
    Room room = OpenRoom();
    EXPECT_EQ(room.NextDeadline(), 60000);
    auto out = room.Advance(60000);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(room.escalation_reason(), "timeout");
    EXPECT_EQ(room.NextDeadline(), 0) << "an escalated room waits for a human, however long";
  }
}

TEST(Room, AnOperatorResolvesAnEscalatedRoomOnce) {
  Room room = OpenRoom();
  ASSERT_TRUE(room.Accept(P(MessageType::kEscalation, "b", "help"), 10).accepted);
  auto bad = room.Resolve("shrug", "", "", "ops", 20);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(room.Resolve("retry", "", "{not json", "ops", 20).status().code(), StatusCode::kInvalidArgument);
  auto ok = room.Resolve("retry", "use the mirror", R"({"url":"https://mirror"})", "ops", 30);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].type, "decision");
  EXPECT_EQ((*ok)[0].agent, "operator:ops");
  EXPECT_EQ(json::parse((*ok)[0].body)["input"]["url"], "https://mirror");
  EXPECT_EQ(room.state(), RoomState::kResolved);
  EXPECT_EQ(room.Resolve("answer", "again", "", "ops", 40).status().code(), StatusCode::kFailedPrecondition);
}

TEST(Room, ProtectsItselfAndCountsWhy) {
  Room room = OpenRoom();
  EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "b", std::string(101, 'x')), 1).refusal, Refusal::kTooLarge);
  Post hops = P(MessageType::kHelpResponse, "b", "relayed");
  hops.hop_count = 4;
  EXPECT_EQ(room.Accept(hops, 1).refusal, Refusal::kHopLimit);
  EXPECT_EQ(room.Accept(P(MessageType::kDecision, "b", "mine"), 1).refusal, Refusal::kInvalid);
  EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "b", "", "nope"), 1).refusal, Refusal::kInvalid);
  EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "b a d", ""), 1).refusal, Refusal::kInvalid);
  EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "b", "", "", "decision-x"), 1).refusal, Refusal::kInvalid);
  for (const char* a : {"b", "c", "d"}) ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, a, "hi"), 2).accepted);
  Outcome full = room.Accept(P(MessageType::kHelpResponse, "e", "me too"), 3);
  EXPECT_EQ(full.refusal, Refusal::kParticipants);
  EXPECT_EQ(room.Join("e", "n1", 3).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(room.message_count(), 4) << "refused posts change nothing";
}

TEST(Room, RatesAreTokenBucketsPerRoomAndPerAgent) {
  Rules rules = TestRules();
  rules.agent_rate = 1;   // burst 2
  rules.room_rate = 2;    // burst 4
  Room room = OpenRoom(rules);  // the seed took one room token
  ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "b", "1"), 0).accepted);
  ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "b", "2"), 0).accepted);
  EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "b", "3"), 0).refusal, Refusal::kAgentRate);
  ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "c", "1"), 0).accepted);
  EXPECT_EQ(room.Accept(P(MessageType::kHelpResponse, "d", "1"), 0).refusal, Refusal::kRoomRate);
  ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "b", "after a second"), 1000).accepted);
}

TEST(Room, ADuplicateIdReturnsTheOriginalAndChangesNothing) {
  Room room = OpenRoom();
  Outcome first = room.Accept(P(MessageType::kHelpResponse, "b", "once", "", "b-1"), 1);
  ASSERT_TRUE(first.accepted);
  Outcome again = room.Accept(P(MessageType::kHelpResponse, "b", "once", "", "b-1"), 2);
  EXPECT_TRUE(again.accepted);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.duplicate_seq, first.messages.back().seq);
  EXPECT_TRUE(again.messages.empty());
  EXPECT_EQ(room.message_count(), 2);
}

TEST(Room, SurvivesARoundTripThroughItsRowMidProposal) {
  Room room = OpenRoom();
  ASSERT_TRUE(room.Join("b", "n2", 0).ok());
  const std::string plan = Propose(room, "b", 100);
  ASSERT_TRUE(room.Accept(P(MessageType::kHelpResponse, "c", "x", "", "c-1"), 200).accepted);
  const RoomRow row = room.Row();
  EXPECT_EQ(row.state, "open");
  auto back = Room::FromRow(row, TestRules());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->Row(), row);
  EXPECT_TRUE(back->Accept(P(MessageType::kHelpResponse, "c", "x", "", "c-1"), 300).duplicate);
  ASSERT_TRUE(back->Accept(P(MessageType::kAgreement, "c", "", plan), 300).accepted);
  EXPECT_EQ(back->Advance(1100).size(), 1u);
  RoomRow broken = row;
  broken.doc = "{}";
  EXPECT_FALSE(Room::FromRow(broken, TestRules()).ok());
}

}  // namespace
}  // namespace bzzz::hmmm
