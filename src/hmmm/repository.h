// HmmmRepository: what HMMM needs from durable storage (SPEC §3.7:
// conversation threads are part of what the stores keep).
//
// The hmmm subsystem owns this contract; each storage backend implements
// it (src/storage/<backend>/hmmm.cc) with its own migrations. A room is
// written by its owner only (the node that opened it); its messages are
// append-only and numbered 1, 2, ... in the order the owner accepted them.
// In a store shared by several nodes (PostgreSQL) every node reads every
// room; on SQLite a node reads its own.
//
// Thread safety: every method may be called from any thread concurrently,
// but not from an HTTP I/O thread (base/threads.h CheckMayBlock).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace bzzz::hmmm {

struct RoomRow {
  std::string id;          // the task id for a task's room, "room-<hex>" for a free room
  std::string task_id;     // "" for a free room
  std::string project;
  std::string title;
  std::string owner_node;  // the node that opened it: the only writer
  std::string state;       // "open", "decided", "escalated", "resolved", "archived"
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t last_seq = 0;  // seq of its last message
  std::string doc;            // the room's rule state as JSON (hmmm/room.h)
  bool operator==(const RoomRow&) const = default;
};

struct MessageRow {
  std::string room_id;
  std::int64_t seq = 0;    // 1, 2, ... per room
  std::string id;          // unique in the room (duplicate suppression)
  std::string type;        // "plan_proposed", "objection", ...
  std::string agent;
  std::string node;        // the node it came from (the verified signer or the API's node)
  std::string in_reply_to; // a message id of the room, or ""
  std::string body;
  std::int64_t created_ms = 0;
  int hop_count = 0;
  bool operator==(const MessageRow&) const = default;
};

// Filters of ListRooms; empty strings match everything. Newest first
// (updated_ms, then id).
struct RoomQuery {
  std::string state;
  std::string task_id;
  std::string project;
  std::size_t limit = 100;
};

class HmmmRepository {
 public:
  virtual ~HmmmRepository() = default;

  // Inserts or replaces `room` (by id) and appends `messages` (seqs after
  // those stored), in one transaction. A message seq or id that exists in
  // the room already is Conflict, and nothing is written.
  virtual Status SaveRoom(const RoomRow& room, const std::vector<MessageRow>& messages) = 0;
  // NotFound when there is no such room (on SQLite: of this node).
  virtual Result<RoomRow> GetRoom(const std::string& id) = 0;
  virtual Result<std::vector<RoomRow>> ListRooms(const RoomQuery& query) = 0;
  // Messages with seq > after_seq, oldest first, at most `limit`.
  virtual Result<std::vector<MessageRow>> ListMessages(const std::string& room_id, std::int64_t after_seq,
                                                      std::size_t limit) = 0;
};

}  // namespace bzzz::hmmm
