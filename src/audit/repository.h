// AuditRepository: what the audit log needs from durable storage.
//
// The audit subsystem owns this contract; each storage backend implements
// it (src/storage/<backend>/audit.cc) with its own migrations. Entries are
// append-only and written with the chain head in one transaction, so the
// head always names the last entry written (audit/chain.h explains the
// chain and what verification concludes from the head).
//
// Thread safety: every method may be called from any thread concurrently,
// but not from an HTTP I/O thread (base/threads.h CheckMayBlock).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace bzzz::audit {

// One entry as stored. Every field but `hash` and `signature` is covered
// by the hash (audit/chain.h EntryHash).
struct AuditRow {
  std::int64_t seq = 0;      // 1, 2, ... in the order written
  std::int64_t time_ms = 0;  // Unix milliseconds
  std::string node_id;       // the node that wrote (and signed) it
  std::string kind;          // "auth_failure", "permission_denied", "admin_action", ...
  std::string principal;     // who: a token name, a subject, "anonymous", "system"
  std::string action;        // what: "POST /api/election/trigger", "cluster.admit", ...
  std::string target;        // on what: a path, a task id, a node id ("" when none)
  std::string outcome;       // "ok", "denied", "failed: ..." or the HTTP status
  std::string client;        // the client address ("" for the node's own actions)
  std::string request_id;    // of the HTTP request, when there was one
  std::string details;       // a JSON object, "{}" when none
  std::string prev_hash;     // hex SHA-256 of the previous entry (64 zeros for the first)
  std::string hash;          // hex SHA-256 of this entry (EntryHash)
  std::string signature;     // hex Ed25519 signature of the hash's 32 bytes by the node key
  bool operator==(const AuditRow&) const = default;
};

// The last entry written: its seq and hash (0 and the genesis hash before
// the first).
struct AuditHead {
  std::int64_t seq = 0;
  std::string hash;
};

// Filters of ListAudit; empty strings and zeros match everything. Rows
// with seq > after_seq come oldest first when `ascending`, else rows with
// seq < before_seq (when > 0) newest first.
struct AuditQuery {
  std::string kind;
  std::string principal;
  std::string action_prefix;  // "POST /api/v1/dlq", "cluster."
  std::int64_t since_ms = 0;  // time_ms >= since_ms
  std::int64_t until_ms = 0;  // time_ms < until_ms
  std::int64_t after_seq = 0;
  std::int64_t before_seq = 0;
  bool ascending = false;
  std::size_t limit = 100;
};

class AuditRepository {
 public:
  virtual ~AuditRepository() = default;

  // Appends `rows` (consecutive seqs following the head) and moves the head
  // to the last of them, in one transaction. A seq that exists already is
  // refused with Conflict and nothing is written.
  virtual Status AppendAudit(const std::vector<AuditRow>& rows) = 0;
  virtual Result<std::vector<AuditRow>> ListAudit(const AuditQuery& query) = 0;
  // The head as recorded (seq 0 and an empty hash before the first append).
  virtual Result<AuditHead> ReadAuditHead() = 0;
};

}  // namespace bzzz::audit
