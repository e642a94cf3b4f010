#include "audit/chain.h"

#include <sodium.h>

#include <array>

#include "base/hex.h"

namespace bzzz::audit {

namespace {

using Digest = std::array<std::uint8_t, crypto_hash_sha256_BYTES>;

void Field(crypto_hash_sha256_state& state, std::string_view value) {
  const auto n = static_cast<std::uint32_t>(value.size());
  const std::uint8_t length[4] = {static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
                                  static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
  crypto_hash_sha256_update(&state, length, sizeof length);
  crypto_hash_sha256_update(&state, reinterpret_cast<const std::uint8_t*>(value.data()), value.size());
}

Digest HashWithSeq(const AuditRow& row, std::int64_t seq) {
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  Field(state, "bzzz-audit-v1");
  Field(state, std::to_string(seq));
  Field(state, std::to_string(row.time_ms));
  for (const std::string* f : {&row.node_id, &row.kind, &row.principal, &row.action, &row.target, &row.outcome,
                               &row.client, &row.request_id, &row.details, &row.prev_hash}) {
    Field(state, *f);
  }
  Digest d{};
  crypto_hash_sha256_final(&state, d.data());
  return d;
}

// "entry 5 is" or "entries 5..9 are".
std::string Range(std::int64_t from, std::int64_t to) {
  return from == to ? "entry " + std::to_string(from) + " is"
                    : "entries " + std::to_string(from) + ".." + std::to_string(to) + " are";
}

class Verifier {
 public:
  Verifier(const p2p::PublicKey& key, std::size_t max_problems) : key_(key), max_(max_problems) {}

  void Add(const AuditRow& row) {
    ++report_.entries;
    if (report_.entries == 1) report_.first_seq = row.seq;
    bool sound = true;
    const std::string computed = EntryHash(row);
    if (computed != row.hash) {
      sound = false;
      if (const std::int64_t original = OriginalSeq(row); original != 0) {
        Problem(row.seq, "reordered",
                "entry " + std::to_string(row.seq) + " was written as entry " + std::to_string(original));
      } else if (SignatureValid(row, key_)) {
        Problem(row.seq, "changed", "entry " + std::to_string(row.seq) + " was changed after it was signed");
      } else {
        Problem(row.seq, "forged", "entry " + std::to_string(row.seq) +
                                       " was changed and its hash and signature are not the node's");
      }
    } else if (!SignatureValid(row, key_)) {
      sound = false;
      Problem(row.seq, "forged",
              "entry " + std::to_string(row.seq) + " is not signed by the node key (rewritten with a new hash)");
    }

    if (!have_prev_) {
      if (row.seq > 1) {
        Problem(1, "removed", Range(1, row.seq - 1) + " missing (before the first entry held)");
      } else if (sound && row.seq == 1 && row.prev_hash != kGenesisHash) {
        Problem(row.seq, "broken_link", "entry 1 does not start the chain");
      }
    } else if (row.seq <= prev_seq_) {
      sound = false;
      Problem(row.seq, "reordered",
              "entry " + std::to_string(row.seq) + " comes after entry " + std::to_string(prev_seq_));
    } else if (row.seq > prev_seq_ + 1) {
      Problem(prev_seq_ + 1, "removed",
              Range(prev_seq_ + 1, row.seq - 1) + " missing (entry " + std::to_string(row.seq) + " follows " +
                  std::to_string(prev_seq_) + ")");
    } else if (sound && prev_sound_ && row.prev_hash != prev_hash_) {
      Problem(row.seq, "broken_link",
              "entry " + std::to_string(row.seq) + " does not follow entry " + std::to_string(prev_seq_) +
                  " (one of them was replaced)");
    }
    if (!have_prev_ || row.seq > prev_seq_) {
      prev_seq_ = row.seq;
      prev_hash_ = row.hash;
      prev_sound_ = sound;
      report_.last_seq = row.seq;
      last_hash_ = row.hash;
    }
    have_prev_ = true;
  }

  ChainReport Finish(const AuditHead& head) {
    report_.head = head;
    const std::int64_t last = have_prev_ ? prev_seq_ : 0;
    if (head.seq > last) {
      Problem(last + 1, "truncated",
              Range(last + 1, head.seq) + " missing at the end (the head names entry " +
                  std::to_string(head.seq) + ")");
    } else if (head.seq < last) {
      Problem(head.seq + 1, "inserted",
              Range(head.seq + 1, last) + " past the recorded head (entry " + std::to_string(head.seq) + ")");
    } else if (last > 0 && head.hash != last_hash_) {
      Problem(last, "changed", "the recorded head does not name entry " + std::to_string(last) + "'s hash");
    }
    return std::move(report_);
  }

 private:
  // The seq under which the row's content matches its hash, near its own;
  // 0 when none does.
  std::int64_t OriginalSeq(const AuditRow& row) const {
    Digest want{};
    if (!BytesOfHex(row.hash, want.data(), want.size())) return 0;
    for (std::int64_t d = 1; d <= kReorderWindow; ++d) {
      for (std::int64_t seq : {row.seq - d, row.seq + d}) {
        if (seq >= 1 && HashWithSeq(row, seq) == want) return seq;
      }
    }
    return 0;
  }

  void Problem(std::int64_t seq, std::string kind, std::string detail) {
    ++report_.problems_total;
    if (report_.problems.size() < max_) report_.problems.push_back({seq, std::move(kind), std::move(detail)});
  }

  p2p::PublicKey key_;
  std::size_t max_;
  ChainReport report_;
  bool have_prev_ = false;
  std::int64_t prev_seq_ = 0;
  std::string prev_hash_;
  bool prev_sound_ = true;
  std::string last_hash_;
};

}  // namespace

std::string EntryHash(const AuditRow& row) {
  const Digest d = HashWithSeq(row, row.seq);
  return HexOf(d.data(), d.size());
}

void SealEntry(AuditRow& row, const p2p::NodeIdentity& signer) {
  const Digest d = HashWithSeq(row, row.seq);
  row.hash = HexOf(d.data(), d.size());
  const p2p::Signature sig = signer.Sign(d.data(), d.size());
  row.signature = HexOf(sig.data(), sig.size());
}

bool SignatureValid(const AuditRow& row, const p2p::PublicKey& key) {
  Digest d{};
  p2p::Signature sig{};
  if (!BytesOfHex(row.hash, d.data(), d.size()) || !BytesOfHex(row.signature, sig.data(), sig.size())) {
    return false;
  }
  return p2p::NodeIdentity::Verify(key, d.data(), d.size(), sig);
}

AuditCursor StoredEntries(AuditRepository& repository, std::size_t page) {
  return [&repository, page, after = std::int64_t{0}]() mutable -> Result<std::vector<AuditRow>> {
    AuditQuery q;
    q.after_seq = after;
    q.ascending = true;
    q.limit = page;
    auto rows = repository.ListAudit(q);
    if (rows.ok() && !rows->empty()) after = rows->back().seq;
    return rows;
  };
}

Result<ChainReport> VerifyChain(const AuditCursor& next, const p2p::PublicKey& key, const AuditHead& head,
                                std::size_t max_problems) {
  Verifier verifier(key, max_problems);
  for (;;) {
    auto rows = next();
    if (!rows.ok()) return rows.status();
    if (rows->empty()) break;
    for (const AuditRow& row : *rows) verifier.Add(row);
  }
  return verifier.Finish(head);
}

}  // namespace bzzz::audit
