#include "ucxl/context_store.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "base/json.h"
#include "base/log.h"
#include "dht/record_store.h"
#include "security/authenticator.h"
#include "security/redact.h"
#include "ucxl/errc.h"

namespace bzzz::ucxl {

namespace {

// The media type without parameters, lower case.
std::string MediaType(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return t;
}

bool IsJson(std::string_view content_type) {
  const std::string t = MediaType(content_type);
  return t == "application/json" || (t.size() > 5 && t.compare(t.size() - 5, 5, "+json") == 0);
}

// Content SHHH reads as text (binary content is stored as it is).
bool IsTextual(std::string_view content_type) {
  const std::string t = MediaType(content_type);
  return t.rfind("text/", 0) == 0 || IsJson(content_type) || t == "application/yaml" ||
         t == "application/x-yaml" || t == "application/xml" || (t.size() > 4 && t.compare(t.size() - 4, 4, "+xml") == 0);
}

constexpr SubsystemLog kLog{"ucxl"};

using nlohmann::json;

using security::Sha256Hex;

json VersionJson(const ContextVersion& v) {
  return {{"writer", v.writer},
          {"writer_number", v.writer_number},
          {"author_agent", v.author_agent},
          {"author_role", v.author_role},
          {"created_ms", v.created_ms},
          {"logical", v.logical},
          {"content_type", v.content_type},
          {"size", v.size},
          {"content_hash", v.content_hash},
          {"tombstone", v.tombstone}};
}

// The versions in one writer's history record; `number` is left 0.
Result<std::vector<ContextVersion>> HistoryFromJson(const std::string& key, const std::string& text) {
  const json j = ParseJson(text);
  if (!j.is_object() || !j.contains("versions") || !j["versions"].is_array() || j.value("key", "") != key) {
    return Unavailable("malformed UCXL history record for " + key);
  }
  std::vector<ContextVersion> out;
  try {
    for (const auto& e : j["versions"]) {
      ContextVersion v;
      v.key = key;
      v.writer = e.at("writer").get<std::string>();
      v.writer_number = e.at("writer_number").get<std::uint64_t>();
      v.author_agent = e.at("author_agent").get<std::string>();
      v.author_role = e.at("author_role").get<std::string>();
      v.created_ms = e.at("created_ms").get<std::int64_t>();
      v.logical = e.value("logical", std::uint32_t{0});  // absent in records written before the HLC
      v.content_type = e.at("content_type").get<std::string>();
      v.size = e.at("size").get<std::uint64_t>();
      v.content_hash = e.at("content_hash").get<std::string>();
      v.tombstone = e.at("tombstone").get<bool>();
      if (v.writer.empty() || v.writer_number == 0 || v.content_hash.size() != 64) {
        return Unavailable("UCXL history record names a version without its writer, number or hash");
      }
      out.push_back(std::move(v));
    }
  } catch (const json::exception& ex) {
    return Unavailable(std::string("malformed UCXL history record: ") + ex.what());
  }
  return out;
}

std::vector<VersionRef> Refs(const std::vector<ContextVersion>& history) {
  std::vector<VersionRef> refs;
  refs.reserve(history.size());
  for (const auto& v : history) refs.push_back({v.number, v.created_ms});
  return refs;
}

Source SourceOf(const dht::Record& r) { return r.source == "dht" ? Source::kDht : Source::kCache; }

}  // namespace

// The shared order: the hybrid logical clock, then writer, then the
// writer's number. Total: a writer never stamps two versions alike.
bool VersionBefore(const ContextVersion& a, const ContextVersion& b) {
  return std::tie(a.created_ms, a.logical, a.writer, a.writer_number) <
         std::tie(b.created_ms, b.logical, b.writer, b.writer_number);
}

std::vector<ContextVersion> MergeHistories(const std::string& own_writer, std::vector<ContextVersion> own,
                                           const std::vector<WriterRecord>& records) {
  struct Known {
    ContextVersion version;
    bool from_writer = false;  // said by its writer (or this node's own store)
  };
  std::map<std::pair<std::string, std::uint64_t>, Known> known;
  for (auto& v : own) {
    v.writer = own_writer;
    v.writer_number = v.number;
    auto id = std::make_pair(v.writer, v.writer_number);
    known[std::move(id)] = {std::move(v), true};
  }
  for (const auto& r : records) {
    for (const auto& v : r.versions) {
      const bool from_writer = v.writer == r.writer;
      auto [it, added] = known.try_emplace({v.writer, v.writer_number});
      // A writer's word on its own versions wins over what others say of
      // them; among others' words the first (by writer id, records come
      // sorted) is kept, so arrival order never matters.
      if (added || (from_writer && !it->second.from_writer)) it->second = {v, from_writer};
    }
  }
  std::vector<ContextVersion> history;
  history.reserve(known.size());
  for (auto& [id, k] : known) history.push_back(std::move(k.version));
  std::sort(history.begin(), history.end(), VersionBefore);
  for (std::size_t i = 0; i < history.size(); ++i) history[i].number = i + 1;
  return history;
}

bool Reader::MayRead(const std::string& role) const {
  return all || std::find(roles.begin(), roles.end(), role) != roles.end();
}

std::string_view SourceName(Source s) {
  switch (s) {
    case Source::kLocal:
      return "local";
    case Source::kCache:
      return "cache";
    case Source::kDht:
      return "dht";
  }
  return "local";
}

ContextStore::ContextStore(std::shared_ptr<ContextRepository> store, dht::RecordStore* records,
                           ContextStoreOptions options, std::shared_ptr<ContentCodec> codec,
                           const Clock& clock)
    : store_(std::move(store)),
      records_(records),
      options_(options),
      codec_(std::move(codec)),
      clock_(clock),
      writer_id_(records_ != nullptr ? records_->WriterId() : "local") {}

std::string ContextStore::HistoryRecordName(const std::string& key) { return "ucxl/h/" + Sha256Hex(key); }

std::string ContextStore::VersionRecordName(const std::string& key, const std::string& writer,
                                            std::uint64_t writer_number) {
  return "ucxl/v/" + Sha256Hex(key) + "/" + writer + "/" + std::to_string(writer_number);
}

std::mutex& ContextStore::PublishLock(const std::string& key) {
  return publish_locks_[std::hash<std::string>{}(key) % publish_locks_.size()];
}

ContextVersion ContextStore::NewVersion(const std::string& key, const Author& author,
                                        const std::vector<ContextVersion>& history) const {
  ContextVersion v;
  v.key = key;
  v.author_agent = author.agent;
  v.author_role = author.role;
  v.created_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now().time_since_epoch()).count();
  // Hybrid logical clock: after the newest version known, even when this
  // node's clock is behind the writer of that version.
  if (!history.empty()) {
    const ContextVersion& last = *std::max_element(history.begin(), history.end(), VersionBefore);
    if (last.created_ms >= v.created_ms) {
      v.created_ms = last.created_ms;
      v.logical = last.logical + 1;
    }
  }
  return v;
}

std::vector<ContextVersion> ContextStore::HistoryBeforeWrite(const std::string& key) {
  auto shared = SharedHistory(key);
  if (shared.ok()) return std::move(shared).value();
  kLog.warn("ucxl: history of {} not merged before a write: {}", key, shared.status().ToString());
  auto local = store_->ContextHistory(key);
  if (!local.ok()) return {};
  return MergeHistories(writer_id_, std::move(local).value(), {});
}

Result<std::vector<ContextVersion>> ContextStore::SharedHistory(const std::string& key) {
  auto local = store_->ContextHistory(key);
  if (!local.ok()) return local.status();
  std::vector<WriterRecord> parsed;
  if (records_ != nullptr) {
    // The history changes with every write: always every writer's newest
    // copy in the DHT, never a cached or held one.
    auto records = records_->GetEachWriter(HistoryRecordName(key));
    if (!records.ok() && !records.status().IsNotFound()) {
      if (local->empty()) return records.status();
      kLog.debug("ucxl: history of {} from this node only: {}", key, records.status().ToString());
    }
    std::string malformed;
    if (records.ok()) {
      for (const auto& r : *records) {
        auto versions = HistoryFromJson(key, r.content);
        if (!versions.ok()) {
          malformed = r.writer + ": " + versions.status().message();
          continue;
        }
        parsed.push_back({r.writer, std::move(versions).value()});
      }
    }
    if (local->empty() && parsed.empty() && !malformed.empty())
      return Unavailable("UCXL history of " + key + " from " + malformed);
    std::sort(parsed.begin(), parsed.end(), [](const auto& a, const auto& b) { return a.writer < b.writer; });
  }
  return MergeHistories(writer_id_, std::move(local).value(), parsed);
}

Result<Entry> ContextStore::Put(const Address& address, const Author& author, std::string content_type,
                                std::string content) {
  if (address.HasWildcard()) {
    return Error(Errc::kNeedsConcreteAddress, "address: a put needs a concrete address (no any or *)");
  }
  if (address.temporal.kind != TemporalKind::kLatest) {
    return Error(Errc::kTemporalInvalid, "temporal: a put appends the next version; address it with *^");
  }
  if (author.agent.empty() || author.role.empty())
    return Error(Errc::kInvalidPayload, "author: agent and role are required");
  if (content.size() > options_.max_content_bytes) {
    return Error(Errc::kPayloadTooLarge, "content of " + std::to_string(content.size()) +
                                             " bytes is over the limit of " +
                                             std::to_string(options_.max_content_bytes));
  }
  if (content_type.empty()) content_type = "application/octet-stream";
  // A media type is printable ASCII (RFC 9110); anything else could not be
  // written back as JSON, so it is refused before anything is stored.
  if (content_type.size() > 255 || !std::all_of(content_type.begin(), content_type.end(),
                                                [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    return Error(Errc::kInvalidPayload, "content_type: at most 255 printable ASCII characters");
  }
  // SHHH: secrets in text never reach the store or the DHT.
  if (IsTextual(content_type)) {
    content = IsJson(content_type) ? security::RedactJson(content, security::RedactionSite::kContext)
                                   : security::Redact(content, security::RedactionSite::kContext);
  }
  const std::string key = ContentKey(address);
  std::string stored = content;
  if (codec_) {
    auto sealed = codec_->Seal(key, std::move(stored));
    if (!sealed.ok()) return sealed.status();
    stored = std::move(sealed).value();
  }
  std::lock_guard lock(PublishLock(key));
  std::vector<ContextVersion> known = HistoryBeforeWrite(key);
  ContextVersion v = NewVersion(key, author, known);
  v.content_type = std::move(content_type);
  v.size = content.size();
  v.content_hash = Sha256Hex(content);
  auto appended = store_->AppendContextVersion(std::move(v), stored);
  if (!appended.ok()) return appended.status();
  appended->writer = writer_id_;
  appended->writer_number = appended->number;
  ++writes_;
  auto history = Publish(key, *appended, stored, std::move(known));
  if (!history.ok()) return history.status();
  for (const auto& h : *history) {
    if (h.writer == appended->writer && h.writer_number == appended->writer_number) *appended = h;
  }
  Address pinned = address;
  pinned.temporal = Temporal{TemporalKind::kVersion, appended->number};
  pinned.query.reset();
  pinned.fragment.reset();
  return Entry{*appended, std::move(content), Format(pinned), Source::kLocal};
}

Result<std::vector<ContextVersion>> ContextStore::Publish(const std::string& key, const ContextVersion& version,
                                                          const std::string& stored,
                                                          std::vector<ContextVersion> known) {
  if (records_ != nullptr && !version.tombstone) {
    if (auto s = records_->Put(VersionRecordName(key, version.writer, version.writer_number), stored,
                               version.content_type);
        !s.ok()) {
      kLog.warn("ucxl: version {} of {} not published to the DHT: {}", version.writer_number, key,
                   s.ToString());
    }
  }
  // What was known before the write, and the version: one merge, no second read.
  known.push_back(version);
  std::vector<ContextVersion> history = MergeHistories(writer_id_, {}, {WriterRecord{writer_id_, std::move(known)}});
  if (records_ != nullptr) {
    json versions = json::array();
    for (const auto& v : history) versions.push_back(VersionJson(v));
    const json h = {{"key", key}, {"versions", versions}};
    if (auto s = records_->Put(HistoryRecordName(key), DumpJson(h), "application/json"); !s.ok()) {
      kLog.warn("ucxl: history of {} not published to the DHT: {}", key, s.ToString());
    }
  }
  return history;
}

Result<Entry> ContextStore::Load(const Address& address, const ContextVersion& v, const Reader& reader) {
  Address pinned = address;
  pinned.temporal = Temporal{TemporalKind::kVersion, v.number};
  pinned.query.reset();
  pinned.fragment.reset();
  const bool mine = v.writer == writer_id_;
  Entry e{v, "", Format(pinned), mine ? Source::kLocal : Source::kDht};
  if (v.tombstone) return e;
  std::string stored;
  Result<std::string> local = mine ? store_->ContextContent(v.key, v.writer_number)
                                   : Result<std::string>(NotFound("not written here"));
  if (local.ok()) {
    stored = std::move(local).value();
  } else if (!local.status().IsNotFound()) {
    return local.status();
  } else if (records_ == nullptr) {
    return NotFound("content of " + e.address + " is not on this node");
  } else {
    const std::string name = VersionRecordName(v.key, v.writer, v.writer_number);
    auto record = records_->Get(name);
    if (record.ok() && record->writer != v.writer) {
      // Someone else signed a record under this version's name: the
      // writer's own copy, if there is one, is the version.
      auto each = records_->GetEachWriter(name);
      if (!each.ok()) return each.status();
      auto own =
          std::find_if(each->begin(), each->end(), [&](const auto& r) { return r.writer == v.writer; });
      if (own == each->end()) return Unavailable("content of " + e.address + " is not signed by its writer");
      record = std::move(*own);
    }
    if (!record.ok()) return record.status();
    e.source = SourceOf(*record);
    stored = std::move(record->content);
  }
  if (codec_) {
    auto opened = codec_->Open(v.key, stored, reader);
    if (!opened.ok() && opened.status().code() == StatusCode::kPermissionDenied && !mine && records_ != nullptr &&
        e.source != Source::kDht) {
      // A held or cached copy may predate a re-wrap (its writer republished
      // the version sealed to newer key versions): the writer's newest copy.
      auto fresh = records_->Get(VersionRecordName(v.key, v.writer, v.writer_number), /*bypass_cache=*/true);
      if (fresh.ok() && fresh->writer == v.writer && fresh->content != stored) {
        e.source = Source::kDht;
        opened = codec_->Open(v.key, std::move(fresh->content), reader);
      }
    }
    if (!opened.ok()) return opened.status();
    stored = std::move(opened).value();
  }
  if (Sha256Hex(stored) != v.content_hash) return Unavailable("content of " + e.address + " fails its hash");
  e.content = std::move(stored);
  return e;
}

Result<Entry> ContextStore::Get(const Address& address, const Reader& reader) {
  if (address.HasWildcard())
    return Error(Errc::kNeedsConcreteAddress, "address: get needs a concrete address (discover takes wildcards)");
  const std::string key = ContentKey(address);
  auto history = SharedHistory(key);
  if (!history.ok()) return history.status();
  auto index = Resolve(address.temporal, Refs(*history));
  if (!index.ok()) {
    if (index.status().IsNotFound()) return NotFound("nothing stored at " + key);
    return index.status();
  }
  auto e = Load(address, (*history)[*index], reader);
  if (!e.ok()) return e.status();
  if (e->version.tombstone) {
    return NotFound(key + " was deleted at version " + std::to_string(e->version.number));
  }
  return e;
}

Result<ContextVersion> ContextStore::Delete(const Address& address, const Author& author) {
  if (address.HasWildcard()) {
    return Error(Errc::kNeedsConcreteAddress, "address: delete needs a concrete address");
  }
  if (author.agent.empty() || author.role.empty())
    return Error(Errc::kInvalidPayload, "author: agent and role are required");
  const std::string key = ContentKey(address);
  std::lock_guard lock(PublishLock(key));
  auto history = SharedHistory(key);
  if (!history.ok()) return history.status();
  if (history->empty()) return NotFound("nothing stored at " + key);
  if (history->back().tombstone) {
    return Error(Errc::kAlreadyDeleted,
                 key + " is already deleted (tombstone at version " + std::to_string(history->back().number) + ")");
  }
  ContextVersion v = NewVersion(key, author, *history);
  v.content_type = history->back().content_type;
  v.content_hash = Sha256Hex("");
  v.tombstone = true;
  auto appended = store_->AppendContextVersion(std::move(v), "");
  if (!appended.ok()) return appended.status();
  appended->writer = writer_id_;
  appended->writer_number = appended->number;
  ++writes_;
  auto shared = Publish(key, *appended, "", std::move(history).value());
  if (!shared.ok()) return shared.status();
  for (const auto& h : *shared) {
    if (h.writer == appended->writer && h.writer_number == appended->writer_number) *appended = h;
  }
  return appended;
}

Result<std::vector<ContextVersion>> ContextStore::History(const Address& address) {
  if (address.HasWildcard()) {
    return Error(Errc::kNeedsConcreteAddress, "address: history needs a concrete address");
  }
  return SharedHistory(ContentKey(address));
}

Result<Entry> ContextStore::Navigate(const Address& address, std::int64_t steps, const Reader& reader) {
  if (address.HasWildcard()) {
    return Error(Errc::kNeedsConcreteAddress, "address: navigate needs a concrete address");
  }
  const std::string key = ContentKey(address);
  auto history = SharedHistory(key);
  if (!history.ok()) return history.status();
  auto from = Resolve(address.temporal, Refs(*history));
  if (!from.ok()) return from.status().IsNotFound() ? NotFound("nothing stored at " + key) : from.status();
  const auto target = static_cast<std::int64_t>(*from) + steps;
  if (target < 0 || target >= static_cast<std::int64_t>(history->size())) {
    return Error(Errc::kTemporalInvalid, "temporal out of range: " + std::to_string(steps) +
                                             " step(s) from version " + std::to_string((*history)[*from].number) +
                                             " leaves the history of " + std::to_string(history->size()) +
                                             " version(s)");
  }
  return Load(address, (*history)[static_cast<std::size_t>(target)], reader);
}

namespace {

bool AnyReadable(const std::optional<std::vector<std::string>>& readers, const Reader& reader) {
  if (reader.all || !readers) return true;
  return std::any_of(readers->begin(), readers->end(), [&](const std::string& r) { return reader.MayRead(r); });
}

}  // namespace

Result<std::vector<ContextStore::Candidate>> ContextStore::LocalCandidates() {
  auto all = store_->SearchContext("", std::size_t{1} << 30);
  if (!all.ok()) return all.status();
  std::vector<Candidate> out;
  out.reserve(all->size());
  for (auto& v : *all) {
    Candidate c;
    v.writer = writer_id_;
    v.writer_number = v.number;
    if (codec_) {
      auto stored = store_->ContextContent(v.key, v.number);
      if (!stored.ok()) continue;
      c.readers = codec_->Readers(v.key, *stored);
    }
    c.version = std::move(v);
    c.local = true;
    out.push_back(std::move(c));
  }
  return out;
}

Result<bool> ContextStore::PublishIndexIfChanged() {
  if (records_ == nullptr) return false;
  const std::uint64_t writes = writes_.load();
  if (indexed_writes_.load() == writes) return false;
  auto local = LocalCandidates();
  if (!local.ok()) return local.status();
  json keys = json::array();
  for (const auto& c : *local) {
    keys.push_back({{"key", c.version.key}, {"readers", c.readers ? json(*c.readers) : json(nullptr)}});
  }
  if (auto s = records_->Put(kIndexRecord, DumpJson(json{{"writer", writer_id_}, {"keys", keys}}),
                             "application/json");
      !s.ok()) {
    return s;
  }
  indexed_writes_.store(writes);
  return true;
}

Result<std::vector<ContextVersion>> ContextStore::Find(std::size_t limit, const Reader& reader,
                                                       const std::string& after,
                                                       const std::function<bool(const std::string&)>& key_filter,
                                                       const std::string& text) {
  std::map<std::string, Candidate> candidates;
  auto local = LocalCandidates();
  if (!local.ok()) return local.status();
  for (auto& c : *local) {
    const std::string key = c.version.key;
    candidates.emplace(key, std::move(c));
  }
  if (records_ != nullptr) {
    // Every writer's index: the keys the whole cluster wrote.
    auto indexes = records_->GetEachWriter(kIndexRecord);
    if (indexes.ok()) {
      for (const auto& r : *indexes) {
        const json j = ParseJson(r.content);
        if (!j.is_object() || !j.contains("keys") || !j["keys"].is_array()) continue;
        for (const auto& e : j["keys"]) {
          if (!e.is_object() || !e.contains("key") || !e["key"].is_string()) continue;
          const std::string key = e["key"].get<std::string>();
          if (candidates.count(key) || !AddressOfContentKey(key).ok()) continue;
          Candidate c;
          c.version.key = key;
          if (e.contains("readers") && e["readers"].is_array()) {
            std::vector<std::string> readers;
            for (const auto& role : e["readers"]) {
              if (role.is_string()) readers.push_back(role.get<std::string>());
            }
            c.readers = std::move(readers);
          }
          candidates.emplace(key, std::move(c));
        }
      }
    } else if (!indexes.status().IsNotFound()) {
      kLog.debug("ucxl: cluster index not read ({}); this node's keys only", indexes.status().ToString());
    }
  }
  std::vector<ContextVersion> out;
  for (auto& [key, c] : candidates) {
    if (out.size() >= limit) break;
    if (!after.empty() && key <= after) continue;
    if (!key_filter(key) || !AnyReadable(c.readers, reader)) continue;
    auto address = AddressOfContentKey(key);
    if (!address.ok()) continue;
    // The shared latest version: what a get of *^ would answer.
    ContextVersion latest = c.version;
    if (records_ != nullptr || !c.local) {
      auto history = SharedHistory(key);
      if (!history.ok() || history->empty()) continue;
      latest = history->back();
    }
    if (latest.tombstone) continue;
    bool keep = text.empty();
    for (const std::string* field : {&latest.key, &latest.content_type, &latest.author_agent, &latest.author_role}) {
      keep = keep || field->find(text) != std::string::npos;
    }
    if (!keep) {
      // The content as the reader would read it (opened with a key this
      // node holds, for a reader among its readers).
      auto e = Get(*address, reader);
      keep = e.ok() && e->content.find(text) != std::string::npos;
    } else if (codec_ && !reader.all && !c.readers) {
      keep = Get(*address, reader).ok();
    }
    if (keep) out.push_back(std::move(latest));
  }
  return out;
}

Result<std::vector<ContextVersion>> ContextStore::Search(const std::string& text, std::size_t limit,
                                                         const Reader& reader, const std::string& after) {
  return Find(limit, reader, after, [](const std::string&) { return true; }, text);
}

Result<std::vector<ContextVersion>> ContextStore::Discover(const Address& pattern, std::size_t limit,
                                                           const Reader& reader, const std::string& after) {
  return Find(
      limit, reader, after,
      [&](const std::string& key) {
        auto a = AddressOfContentKey(key);
        return a.ok() && Matches(pattern, *a);
      },
      "");
}

Result<bool> ContextStore::Rewrap(const ContextVersion& version, const std::string& stored) {
  if (!codec_ || version.tombstone) return false;
  auto next = codec_->Rewrap(version.key, stored);
  if (!next.ok()) return next.status();
  if (!next->has_value()) return false;
  std::lock_guard lock(PublishLock(version.key));
  if (auto s = store_->ReplaceContextContent(version.key, version.number, **next); !s.ok()) return s;
  if (records_ != nullptr) {
    if (auto s = records_->Put(VersionRecordName(version.key, writer_id_, version.number), **next,
                               version.content_type);
        !s.ok()) {
      kLog.warn("ucxl: re-wrapped version {} of {} not republished: {}", version.number, version.key, s.ToString());
    }
  }
  return true;
}

Status ContextStore::Announce(const Address& address) {
  if (records_ == nullptr) return Unavailable("no DHT on this node");
  if (address.HasWildcard()) {
    return Error(Errc::kNeedsConcreteAddress, "address: announce needs a concrete address");
  }
  return records_->Announce(HistoryRecordName(ContentKey(address)));
}

Result<std::vector<std::string>> ContextStore::Providers(const Address& address) {
  if (records_ == nullptr) return Unavailable("no DHT on this node");
  auto providers = records_->Discover(HistoryRecordName(ContentKey(address)));
  if (!providers.ok()) return providers.status();
  std::vector<std::string> out;
  for (const auto& p : *providers) out.push_back(p.node_id);
  return out;
}

}  // namespace bzzz::ucxl
