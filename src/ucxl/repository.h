// ContextRepository: what the UCXL context store needs from durable storage.
//
// The ucxl subsystem owns this contract; each storage backend implements it
// (src/storage/<backend>/context.cc) with its own migrations, and nothing in
// src/ucxl knows which backend it talks to.
//
// Thread safety: every method may be called from any thread concurrently,
// but not from an HTTP I/O thread (base/threads.h CheckMayBlock).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace bzzz::ucxl {

// One version of the content at a UCXL address. The versions of a key are
// numbered 1, 2, ... in the order they were appended and never change; a
// delete appends a tombstone (no content).
struct ContextVersion {
  std::string key;               // ucxl::ContentKey: "ucxl://agent:role@project:task/path"
  std::uint64_t number = 0;      // assigned by AppendContextVersion
  std::string author_agent;
  std::string author_role;
  std::int64_t created_ms = 0;   // Unix milliseconds (the physical part of a hybrid logical clock)
  std::uint32_t logical = 0;     // the HLC's counter among versions of one key in the same millisecond
  std::string content_type;
  std::uint64_t size = 0;        // of the content as given (before any sealing)
  std::string content_hash;      // hex SHA-256 of the content as given
  bool tombstone = false;
  // The node that wrote the version and its number in that node's own log.
  // Not stored: every version in the repository is this node's
  // (writer_number == number here); ContextStore fills both when it merges
  // the histories of several writers and renumbers `number` in the shared
  // order.
  std::string writer;
  std::uint64_t writer_number = 0;
  bool operator==(const ContextVersion&) const = default;
};

// How many versions and how many stored bytes the repository holds.
struct ContextTotals {
  std::uint64_t versions = 0;
  std::uint64_t bytes = 0;
};

class ContextRepository {
 public:
  virtual ~ContextRepository() = default;

  // Appends `version` as the key's next version (its `number` is ignored and
  // returned set) with `stored` as its bytes (the content, or the content
  // sealed by the caller).
  virtual Result<ContextVersion> AppendContextVersion(ContextVersion version, const std::string& stored) = 0;
  // Every version of `key`, oldest first; empty when there is none.
  virtual Result<std::vector<ContextVersion>> ContextHistory(const std::string& key) = 0;
  // The stored bytes of one version; NotFound when there is no such version.
  virtual Result<std::string> ContextContent(const std::string& key, std::uint64_t number) = 0;
  // The latest version of every key whose latest version is not a tombstone
  // and whose key, content type, author or stored bytes contain `text`
  // (every live key when `text` is empty), at most `limit`, by key.
  virtual Result<std::vector<ContextVersion>> SearchContext(const std::string& text, std::size_t limit) = 0;
  virtual Result<ContextTotals> ContextStats() = 0;
  // Up to `limit` versions after (key, number) in (key, number) order, with
  // their stored bytes (tombstones included, with empty bytes): the re-wrap
  // job's scan.
  virtual Result<std::vector<std::pair<ContextVersion, std::string>>> ContextVersionsAfter(const std::string& key,
                                                                                          std::uint64_t number,
                                                                                          std::size_t limit) = 0;
  // Replaces the stored bytes of one version (re-wrapping changes how the
  // content is sealed, never the content: size and hash stay). NotFound
  // when there is no such version.
  virtual Status ReplaceContextContent(const std::string& key, std::uint64_t number, const std::string& stored) = 0;
};

}  // namespace bzzz::ucxl
