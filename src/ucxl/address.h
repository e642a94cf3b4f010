// UCXL addresses (SPEC §3.9): how agents, SLURP and operators name every
// piece of context.
//
//   ucxl://<agent>:<role>@<project>:<task>/<temporal>/<path>[?query][#fragment]
//
// agent, role, project, task: [A-Za-z0-9_-]+, or `any` (wildcard; `*` is
// accepted and written as `any`). path: [A-Za-z0-9_./-]*, no `..` segment.
// temporal: `*^` latest, `*~` first, `*~N` version N (from 1), `~~N` N
// versions back from the latest (`~~` is `~~1`), `^^N` N versions forward
// from the first (`^^` is `^^1`), or an ISO-8601 UTC instant
// (`2026-11-23T10:00:00Z`, fraction allowed): the version current then.
// query and fragment: RFC 3986 query characters, percent-escapes checked.
//
// Parse(Format(a)) == a for every parsed address; Format(Parse(s)) is the
// canonical form of s. Every error names the field. docs/ucxl.md has the
// grammar with examples.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace bzzz::ucxl {

inline constexpr std::string_view kScheme = "ucxl://";
inline constexpr std::string_view kAny = "any";
inline constexpr std::size_t kMaxAddressBytes = 2048;
inline constexpr std::size_t kMaxNameBytes = 128;

enum class TemporalKind { kLatest, kFirst, kVersion, kBack, kForward, kInstant };

struct Temporal {
  TemporalKind kind = TemporalKind::kLatest;
  std::uint64_t n = 0;       // kVersion: the version (>= 1); kBack, kForward: steps
  std::int64_t seconds = 0;  // kInstant: Unix seconds, UTC
  std::uint32_t nanos = 0;   // kInstant: fraction of the second
  bool operator==(const Temporal&) const = default;
};

struct Address {
  std::string agent;
  std::string role;
  std::string project;
  std::string task;
  Temporal temporal;
  std::string path;                     // "" for none; never starts with "/"
  std::optional<std::string> query;     // without "?"
  std::optional<std::string> fragment;  // without "#"
  bool operator==(const Address&) const = default;

  bool HasWildcard() const;
};

// Why an address was refused: the field ("scheme", "agent", "role",
// "project", "task", "temporal", "path", "query", "fragment", "address")
// and the reason.
struct AddressError {
  std::string field;
  std::string reason;
  std::string ToString() const { return field + ": " + reason; }
};

// InvalidArgument "invalid UCXL address: <field>: <reason>"; `error`
// receives the parts when not null.
Result<Address> Parse(std::string_view text, AddressError* error = nullptr);
std::string Format(const Address& address);
std::string FormatTemporal(const Temporal& temporal);

// One version of the content at an address, oldest first in a history.
struct VersionRef {
  std::uint64_t number = 0;     // 1, 2, 3, ...
  std::int64_t created_ms = 0;  // Unix milliseconds
};

// The index in `history` (ascending by number, non-empty) that `temporal`
// names. NotFound for an empty history; FailedPrecondition ("temporal out
// of range") when the history has no such version: N beyond the latest,
// more steps than versions, an instant before the first version.
Result<std::size_t> Resolve(const Temporal& temporal, const std::vector<VersionRef>& history);

// Whether `address` is one of the addresses `pattern` stands for: `any`
// matches every name; an empty pattern path matches every path, else the
// path matches itself and everything below it. Temporal, query and
// fragment are not compared.
bool Matches(const Address& pattern, const Address& address);

// The address without temporal, query and fragment: the key of the
// versioned content ("ucxl://a:r@p:t/path").
std::string ContentKey(const Address& address);
// The inverse: the address a content key names, at its latest version (*^).
Result<Address> AddressOfContentKey(std::string_view key);

}  // namespace bzzz::ucxl
