// The hmmm domain in PostgreSQL: its migrations and its HmmmRepository.
// Rooms of every node live in one table; a node writes only the rooms it
// owns (owner_node) and reads every room, so any node answers for any room.
#include <algorithm>

#include "storage/postgres/database.h"

namespace bzzz::storage::postgres {
namespace {

using hmmm::MessageRow;
using hmmm::RoomQuery;
using hmmm::RoomRow;

constexpr std::string_view kRoomColumns =
    "id, task_id, project, title, owner_node, state, created_ms, updated_ms, last_seq, doc";
constexpr std::string_view kMessageColumns =
    "room_id, seq, id, type, agent, node, in_reply_to, body, created_ms, hop_count";

RoomRow ReadRoom(const pqxx::row& r) {
  RoomRow room;
  std::string* texts[] = {&room.id, &room.task_id, &room.project, &room.title, &room.owner_node, &room.state};
  for (int i = 0; i < 6; ++i) *texts[i] = Text(r[i]);
  room.created_ms = Int(r[6]);
  room.updated_ms = Int(r[7]);
  room.last_seq = Int(r[8]);
  room.doc = Text(r[9]);
  return room;
}

MessageRow ReadMessage(const pqxx::row& r) {
  MessageRow m;
  m.room_id = Text(r[0]);
  m.seq = Int(r[1]);
  std::string* texts[] = {&m.id, &m.type, &m.agent, &m.node, &m.in_reply_to, &m.body};
  for (int i = 0; i < 6; ++i) *texts[i] = Text(r[i + 2]);
  m.created_ms = Int(r[8]);
  m.hop_count = static_cast<int>(Int(r[9]));
  return m;
}

class PostgresHmmmRepository final : public hmmm::HmmmRepository {
 public:
  explicit PostgresHmmmRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Status SaveRoom(const RoomRow& room, const std::vector<MessageRow>& messages) override {
    if (Status s = db_->RequireNode(); !s.ok()) return s;
    if (room.owner_node != db_->node_id()) {
      return InvalidArgument("room " + room.id + " is owned by " + room.owner_node + ", not " + db_->node_id());
    }
    return db_->Write("writing an hmmm room", [&](PgConnection& c, pqxx::work& tx) -> Status {
      // Another node's room under the same id is never overwritten.
      const auto owner = tx.exec_prepared(
          c.Prepare("hmmm_room_owner", "SELECT owner_node FROM hmmm_rooms WHERE id = $1 FOR UPDATE"), room.id);
      if (!owner.empty() && Text(owner[0][0]) != room.owner_node) {
        return Conflict("room " + room.id + " belongs to node " + Text(owner[0][0]));
      }
      const std::string put = c.Prepare(
          "hmmm_message_put",
          "INSERT INTO hmmm_messages (room_id, seq, id, type, agent, node, in_reply_to, body, created_ms, hop_count) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
      for (const MessageRow& m : messages) {
        tx.exec_prepared(put, m.room_id, m.seq, m.id, m.type, m.agent, m.node, m.in_reply_to, m.body, m.created_ms,
                         m.hop_count);
      }
      tx.exec_prepared(
          c.Prepare("hmmm_room_put",
                    "INSERT INTO hmmm_rooms (id, task_id, project, title, owner_node, state, created_ms, updated_ms, "
                    "last_seq, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET "
                    "state = excluded.state, updated_ms = excluded.updated_ms, last_seq = excluded.last_seq, "
                    "doc = excluded.doc"),
          room.id, room.task_id, room.project, room.title, room.owner_node, room.state, room.created_ms,
          room.updated_ms, room.last_seq, room.doc);
      return {};
    });
  }

  Result<RoomRow> GetRoom(const std::string& id) override {
    return db_->Read("reading hmmm_rooms", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<RoomRow> {
      const auto r = tx.exec_prepared(
          c.Prepare("hmmm_room_get", "SELECT " + std::string(kRoomColumns) + " FROM hmmm_rooms WHERE id = $1"), id);
      if (r.empty()) return NotFound("no room " + id);
      return ReadRoom(r[0]);
    });
  }

  Result<std::vector<RoomRow>> ListRooms(const RoomQuery& q) override {
    return db_->Read("reading hmmm_rooms", [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<RoomRow>> {
      const auto result = tx.exec_prepared(
          c.Prepare("hmmm_room_list", "SELECT " + std::string(kRoomColumns) +
                                          " FROM hmmm_rooms WHERE ($1::text = '' OR state = $1::text) AND "
                                          "($2::text = '' OR task_id = $2::text) AND ($3::text = '' OR project = "
                                          "$3::text) ORDER BY updated_ms DESC, id LIMIT $4::bigint"),
          q.state, q.task_id, q.project, static_cast<std::int64_t>(std::min<std::size_t>(q.limit, 1u << 30)));
      std::vector<RoomRow> out;
      out.reserve(result.size());
      for (const auto& r : result) out.push_back(ReadRoom(r));
      return out;
    });
  }

  Result<std::vector<MessageRow>> ListMessages(const std::string& room_id, std::int64_t after_seq,
                                              std::size_t limit) override {
    return db_->Read("reading hmmm_messages",
                     [&](PgConnection& c, pqxx::read_transaction& tx) -> Result<std::vector<MessageRow>> {
                       const auto result = tx.exec_prepared(
                           c.Prepare("hmmm_message_list", "SELECT " + std::string(kMessageColumns) +
                                                              " FROM hmmm_messages WHERE room_id = $1 AND seq > $2 "
                                                              "ORDER BY seq LIMIT $3::bigint"),
                           room_id, after_seq, static_cast<std::int64_t>(std::min<std::size_t>(limit, 1u << 30)));
                       std::vector<MessageRow> out;
                       out.reserve(result.size());
                       for (const auto& r : result) out.push_back(ReadMessage(r));
                       return out;
                     });
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<hmmm::HmmmRepository> MakeHmmmRepository(std::shared_ptr<Database> db) {
  return std::make_shared<PostgresHmmmRepository>(std::move(db));
}

DomainMigrations HmmmMigrations() {
  return {"hmmm",
          {
              {1, "hmmm_rooms", R"sql(
        -- HMMM rooms of every node (src/hmmm); each written by its owner only.
        CREATE TABLE hmmm_rooms (
          id         TEXT COLLATE "C" PRIMARY KEY,
          task_id    TEXT NOT NULL,              -- '' for a free room
          project    TEXT NOT NULL,
          title      TEXT NOT NULL,
          owner_node TEXT COLLATE "C" NOT NULL,  -- the only writer
          state      TEXT NOT NULL,              -- open, decided, escalated, resolved, archived
          created_ms BIGINT NOT NULL,
          updated_ms BIGINT NOT NULL,
          last_seq   BIGINT NOT NULL,
          doc        TEXT NOT NULL               -- JSON (hmmm/room.h)
        );
        CREATE INDEX hmmm_rooms_state ON hmmm_rooms (state, updated_ms);
        CREATE INDEX hmmm_rooms_task ON hmmm_rooms (task_id);
        CREATE INDEX hmmm_rooms_owner ON hmmm_rooms (owner_node, state);
        CREATE TABLE hmmm_messages (
          room_id     TEXT COLLATE "C" NOT NULL,
          seq         BIGINT NOT NULL,
          id          TEXT COLLATE "C" NOT NULL,
          type        TEXT NOT NULL,
          agent       TEXT NOT NULL,
          node        TEXT NOT NULL,
          in_reply_to TEXT NOT NULL,
          body        TEXT NOT NULL,
          created_ms  BIGINT NOT NULL,
          hop_count   INTEGER NOT NULL,
          PRIMARY KEY (room_id, seq),
          UNIQUE (room_id, id)
        );
      )sql"},
          }};
}

}  // namespace bzzz::storage::postgres
