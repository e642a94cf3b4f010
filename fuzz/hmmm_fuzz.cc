// Fuzzes HMMM's rules and its stored room document (hmmm/room.h). The
// first byte picks: even, the rest is a room document read back by
// Room::FromRow (what the store hands over is not trusted); odd, the rest
// drives a room through posts, time, joins, leaves and resolutions.
// Properties: no crash; a room never holds two decisions; message numbers
// have no gap; a room's row reads back to the same room.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hmmm/room.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

using bzzz::hmmm::MessageRow;
using bzzz::hmmm::MessageType;
using bzzz::hmmm::Post;
using bzzz::hmmm::Room;
using bzzz::hmmm::RoomRow;
using bzzz::hmmm::Rules;

struct Reader {
  std::string_view in;
  std::size_t at = 0;
  bool more() const { return at < in.size(); }
  unsigned char Byte() { return more() ? static_cast<unsigned char>(in[at++]) : 0; }
  std::string Text(std::size_t max) {
    const std::size_t want = Byte() % (max + 1);
    const std::size_t n = std::min<std::size_t>(want, in.size() - at);
    std::string s(in.substr(at, n));
    at += n;
    return s;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  Rules rules;
  rules.objection_window_ms = 100;
  rules.max_message_bytes = 64;
  rules.max_participants = 4;
  rules.message_limit = 40;
  rules.room_timeout_ms = 5000;
  rules.room_ttl_ms = 1000;
  rules.escalation_keywords = {"stuck"};
  if (data[0] % 2 == 0) {
    RoomRow row;
    row.id = "t-1";
    row.owner_node = "o";
    row.state = "open";
    row.doc = std::string(text);
    auto room = Room::FromRow(row, rules);
    if (room.ok()) {
      auto again = Room::FromRow(room->Row(), rules);
      Check(again.ok() && again->Row() == room->Row());
    }
    return 0;
  }
  Reader r{text};
  RoomRow meta;
  meta.id = "t-1";
  meta.owner_node = "o";
  Post seed;
  seed.type = MessageType::kHelpRequest;
  seed.agent = "a0";
  seed.node = "n0";
  auto opened = Room::Open(meta, rules, seed, 0);
  Check(opened.ok());
  Room room = std::move(opened->first);
  std::int64_t now = 0, seq = 1;
  int decisions = 0;
  auto record = [&](const std::vector<MessageRow>& msgs) {
    for (const auto& m : msgs) {
      Check(m.seq == ++seq);
      if (m.type == "decision") ++decisions;
    }
    Check(decisions <= 1);
  };
  while (r.more()) {
    const unsigned char op = r.Byte();
    const std::string agent = "a" + std::to_string(r.Byte() % 6);
    switch (op % 6) {
      case 0:
        now += r.Byte() * 4;
        record(room.Advance(now));
        break;
      case 1:
      case 2: {
        Post p;
        p.type = bzzz::hmmm::kMessageTypes[r.Byte() % 8];
        p.agent = r.Byte() % 16 == 0 ? r.Text(8) : agent;
        p.node = "n" + std::to_string(r.Byte() % 3);
        p.in_reply_to = r.Byte() % 2 ? r.Text(16) : (room.proposal() ? room.proposal()->id : "");
        p.id = r.Byte() % 3 == 0 ? r.Text(12) : "";
        p.body = r.Text(80);
        p.hop_count = r.Byte() % 12;
        auto out = room.Accept(p, now);
        record(out.messages);
        break;
      }
      case 3:
        record(room.Advance(now));
        (void)room.Join(agent, "n1", now);
        break;
      case 4:
        record(room.Advance(now));
        (void)room.Leave(agent, "n1", now);
        break;
      default: {
        const char* kinds[] = {"answer", "decision", "retry", "other"};
        auto res = room.Resolve(kinds[r.Byte() % 4], r.Text(20), r.Byte() % 2 ? r.Text(20) : "", "ops", now);
        if (res.ok()) record(*res);
        break;
      }
    }
    auto back = Room::FromRow(room.Row(), rules);
    Check(back.ok() && back->Row() == room.Row());
  }
  return 0;
}
