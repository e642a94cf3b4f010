// The audit hash chain: how an entry is hashed and signed, and how a stored
// log is verified.
//
// Entry hash = SHA-256 over "bzzz-audit-v1" and every field of the entry but
// `hash` and `signature`, each as a 4-byte big-endian length and its bytes
// (seq and time_ms in decimal), `prev_hash` included: so each entry commits
// to all entries before it. The node signs the 32 bytes of the hash with
// its Ed25519 key (p2p/identity.h); without that key nobody can write an
// entry that verifies.
//
// VerifyChain reads the entries in seq order and reports, entry by entry:
//   changed      the content no longer matches its hash (edited after signing)
//   forged       hash recomputed, but the signature is not the node's
//   reordered    the entry verifies only under another seq: it was moved
//   removed      seqs are missing between two entries (or before the first)
//   broken_link  an entry does not name its predecessor's hash (one of them
//                was replaced by a validly shaped entry from elsewhere)
//   truncated    the recorded head names later entries than the log holds
//   inserted     the log holds entries after the recorded head
// The head is written with every append, in the same transaction; tail
// truncation is caught only when the head was left alone, so operators who
// need more keep a copy of GET /api/v1/audit's head elsewhere.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/repository.h"
#include "base/status.h"
#include "p2p/identity.h"

namespace bzzz::audit {

// The prev_hash of the first entry.
inline const std::string kGenesisHash(64, '0');

// Hex SHA-256 of the entry's fields (all but hash and signature).
std::string EntryHash(const AuditRow& row);
// Fills row.hash and row.signature.
void SealEntry(AuditRow& row, const p2p::NodeIdentity& signer);
// Whether row.signature is `key`'s signature of row.hash.
bool SignatureValid(const AuditRow& row, const p2p::PublicKey& key);

struct ChainProblem {
  std::int64_t seq = 0;  // the entry concerned (for removed/truncated: the first missing)
  std::string kind;      // changed, forged, reordered, removed, broken_link, truncated, inserted
  std::string detail;    // one sentence for a person
};

struct ChainReport {
  std::int64_t entries = 0;
  std::int64_t first_seq = 0;
  std::int64_t last_seq = 0;
  AuditHead head;                     // as recorded
  std::vector<ChainProblem> problems;  // at most max_problems, in seq order
  std::int64_t problems_total = 0;     // including those not listed
  bool ok() const { return problems_total == 0; }
};

// The next entries of a log in the order it holds them (by seq for a
// store; as listed for an export); an empty page ends it.
using AuditCursor = std::function<Result<std::vector<AuditRow>>()>;
// A cursor over a repository, `page` rows at a time.
AuditCursor StoredEntries(AuditRepository& repository, std::size_t page = 5000);

// A row that was moved up to this many places is reported as reordered
// (with its original seq); further, as changed.
inline constexpr std::int64_t kReorderWindow = 1024;

Result<ChainReport> VerifyChain(const AuditCursor& next, const p2p::PublicKey& key, const AuditHead& head,
                                std::size_t max_problems = 100);

}  // namespace bzzz::audit
