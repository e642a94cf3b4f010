// The hmmm domain in SQLite: its migrations and its HmmmRepository (the
// rooms this node owns and their append-only messages).
#include <algorithm>

#include "storage/sqlite/database.h"

namespace bzzz::storage::sqlite {
namespace {

using hmmm::MessageRow;
using hmmm::RoomQuery;
using hmmm::RoomRow;

constexpr std::string_view kRoomColumns =
    "id, task_id, project, title, owner_node, state, created_ms, updated_ms, last_seq, doc";
constexpr std::string_view kMessageColumns =
    "room_id, seq, id, type, agent, node, in_reply_to, body, created_ms, hop_count";

RoomRow ReadRoom(sqlite3_stmt* stmt) {
  RoomRow r;
  std::string* texts[] = {&r.id, &r.task_id, &r.project, &r.title, &r.owner_node, &r.state};
  for (int i = 0; i < 6; ++i) *texts[i] = ColumnText(stmt, i);
  r.created_ms = sqlite3_column_int64(stmt, 6);
  r.updated_ms = sqlite3_column_int64(stmt, 7);
  r.last_seq = sqlite3_column_int64(stmt, 8);
  r.doc = ColumnText(stmt, 9);
  return r;
}

MessageRow ReadMessage(sqlite3_stmt* stmt) {
  MessageRow m;
  m.room_id = ColumnText(stmt, 0);
  m.seq = sqlite3_column_int64(stmt, 1);
  std::string* texts[] = {&m.id, &m.type, &m.agent, &m.node, &m.in_reply_to, &m.body};
  for (int i = 0; i < 6; ++i) *texts[i] = ColumnText(stmt, i + 2);
  m.created_ms = sqlite3_column_int64(stmt, 8);
  m.hop_count = sqlite3_column_int(stmt, 9);
  return m;
}

class SqliteHmmmRepository final : public hmmm::HmmmRepository {
 public:
  explicit SqliteHmmmRepository(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Status SaveRoom(const RoomRow& room, const std::vector<MessageRow>& messages) override {
    auto on_error = [](const SqlError& e) -> Status {
      if ((e.code & 0xff) == SQLITE_CONSTRAINT) return Conflict("writing hmmm_messages: " + e.message);
      return RuntimeError(e, "writing an hmmm room");
    };
    return db_->Transaction(
        "save hmmm room",
        [&](SqliteConnection& conn) -> SqlError {
          sqlite3* db = conn.db();
          sqlite3_stmt* put = conn.Prepare(
              "INSERT INTO hmmm_messages (room_id, seq, id, type, agent, node, in_reply_to, body, created_ms, "
              "hop_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
          if (put == nullptr) return LastError(db, sqlite3_extended_errcode(db));
          for (const MessageRow& m : messages) {
            StmtUse use(put);
            const std::string* texts[] = {&m.id, &m.type, &m.agent, &m.node, &m.in_reply_to, &m.body};
            if (Status s = BindText(put, 1, m.room_id); !s.ok()) return {SQLITE_ERROR, s.message()};
            sqlite3_bind_int64(put, 2, m.seq);
            for (int i = 0; i < 6; ++i) {
              if (Status s = BindText(put, i + 3, *texts[i]); !s.ok()) return {SQLITE_ERROR, s.message()};
            }
            sqlite3_bind_int64(put, 9, m.created_ms);
            sqlite3_bind_int(put, 10, m.hop_count);
            if (int rc = sqlite3_step(put); rc != SQLITE_DONE) return LastError(db, rc);
          }
          sqlite3_stmt* up = conn.Prepare(
              "INSERT INTO hmmm_rooms (id, task_id, project, title, owner_node, state, created_ms, updated_ms, "
              "last_seq, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO UPDATE SET "
              "state = excluded.state, updated_ms = excluded.updated_ms, last_seq = excluded.last_seq, "
              "doc = excluded.doc");
          if (up == nullptr) return LastError(db, sqlite3_extended_errcode(db));
          StmtUse use(up);
          const std::string* texts[] = {&room.id, &room.task_id, &room.project, &room.title, &room.owner_node,
                                        &room.state};
          for (int i = 0; i < 6; ++i) {
            if (Status s = BindText(up, i + 1, *texts[i]); !s.ok()) return {SQLITE_ERROR, s.message()};
          }
          sqlite3_bind_int64(up, 7, room.created_ms);
          sqlite3_bind_int64(up, 8, room.updated_ms);
          sqlite3_bind_int64(up, 9, room.last_seq);
          if (Status s = BindText(up, 10, room.doc); !s.ok()) return {SQLITE_ERROR, s.message()};
          if (int rc = sqlite3_step(up); rc != SQLITE_DONE) return LastError(db, rc);
          return {};
        },
        on_error);
  }

  Result<RoomRow> GetRoom(const std::string& id) override {
    return db_->Read("get hmmm room", [&](SqliteConnection& conn) -> Result<RoomRow> {
      sqlite3_stmt* stmt = conn.Prepare("SELECT " + std::string(kRoomColumns) + " FROM hmmm_rooms WHERE id = ?1");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading hmmm_rooms");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, id); !s.ok()) return s;
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return NotFound("no room " + id);
      if (rc != SQLITE_ROW) return RuntimeError(LastError(conn.db(), rc), "reading hmmm_rooms");
      return ReadRoom(stmt);
    });
  }

  Result<std::vector<RoomRow>> ListRooms(const RoomQuery& q) override {
    return db_->Read("list hmmm rooms", [&](SqliteConnection& conn) -> Result<std::vector<RoomRow>> {
      sqlite3_stmt* stmt = conn.Prepare("SELECT " + std::string(kRoomColumns) +
                                        " FROM hmmm_rooms WHERE (?1 = '' OR state = ?1) AND (?2 = '' OR task_id = ?2) "
                                        "AND (?3 = '' OR project = ?3) ORDER BY updated_ms DESC, id LIMIT ?4");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading hmmm_rooms");
      StmtUse use(stmt);
      for (auto [i, text] : {std::pair{1, &q.state}, {2, &q.task_id}, {3, &q.project}}) {
        if (Status s = BindText(stmt, i, *text); !s.ok()) return s;
      }
      sqlite3_bind_int64(stmt, 4, static_cast<sqlite3_int64>(std::min<std::size_t>(q.limit, 1u << 30)));
      std::vector<RoomRow> out;
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadRoom(stmt));
      if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading hmmm_rooms");
      return out;
    });
  }

  Result<std::vector<MessageRow>> ListMessages(const std::string& room_id, std::int64_t after_seq,
                                              std::size_t limit) override {
    return db_->Read("list hmmm messages", [&](SqliteConnection& conn) -> Result<std::vector<MessageRow>> {
      sqlite3_stmt* stmt = conn.Prepare("SELECT " + std::string(kMessageColumns) +
                                        " FROM hmmm_messages WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
      if (stmt == nullptr) return PrepareError(conn.db(), "reading hmmm_messages");
      StmtUse use(stmt);
      if (Status s = BindText(stmt, 1, room_id); !s.ok()) return s;
      sqlite3_bind_int64(stmt, 2, after_seq);
      sqlite3_bind_int64(stmt, 3, static_cast<sqlite3_int64>(std::min<std::size_t>(limit, 1u << 30)));
      std::vector<MessageRow> out;
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadMessage(stmt));
      if (rc != SQLITE_DONE) return RuntimeError(LastError(conn.db(), rc), "reading hmmm_messages");
      return out;
    });
  }

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace

std::shared_ptr<hmmm::HmmmRepository> MakeHmmmRepository(std::shared_ptr<Database> db) {
  return std::make_shared<SqliteHmmmRepository>(std::move(db));
}

DomainMigrations HmmmMigrations() {
  return {"hmmm",
          {
              {1, "hmmm_rooms", R"sql(
        -- HMMM rooms this node owns (src/hmmm): the rule state in doc.
        CREATE TABLE hmmm_rooms (
          id         TEXT PRIMARY KEY,     -- the task id for a task's room, room-<hex> otherwise
          task_id    TEXT NOT NULL,        -- '' for a free room
          project    TEXT NOT NULL,
          title      TEXT NOT NULL,
          owner_node TEXT NOT NULL,        -- the only writer
          state      TEXT NOT NULL,        -- open, decided, escalated, resolved, archived
          created_ms INTEGER NOT NULL,
          updated_ms INTEGER NOT NULL,
          last_seq   INTEGER NOT NULL,
          doc        TEXT NOT NULL         -- JSON (hmmm/room.h)
        );
        CREATE INDEX hmmm_rooms_state ON hmmm_rooms (state, updated_ms);
        CREATE INDEX hmmm_rooms_task ON hmmm_rooms (task_id);
        -- Their messages, append-only, numbered per room in the order accepted.
        CREATE TABLE hmmm_messages (
          room_id     TEXT NOT NULL,
          seq         INTEGER NOT NULL,
          id          TEXT NOT NULL,
          type        TEXT NOT NULL,
          agent       TEXT NOT NULL,
          node        TEXT NOT NULL,
          in_reply_to TEXT NOT NULL,
          body        TEXT NOT NULL,
          created_ms  INTEGER NOT NULL,
          hop_count   INTEGER NOT NULL,
          PRIMARY KEY (room_id, seq),
          UNIQUE (room_id, id)
        );
      )sql"},
          }};
}

}  // namespace bzzz::storage::sqlite
