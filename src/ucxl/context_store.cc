#include "ucxl/context_store.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "dht/record_store.h"
#include "security/authenticator.h"

namespace bzzz::ucxl {

namespace {

using nlohmann::json;
using storage::ContextVersion;

using security::Sha256Hex;

json VersionJson(const ContextVersion& v) {
  return {{"number", v.number},
          {"author_agent", v.author_agent},
          {"author_role", v.author_role},
          {"created_ms", v.created_ms},
          {"content_type", v.content_type},
          {"size", v.size},
          {"content_hash", v.content_hash},
          {"tombstone", v.tombstone}};
}

Result<std::vector<ContextVersion>> HistoryFromJson(const std::string& key, const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("versions") || !j["versions"].is_array() || j.value("key", "") != key) {
    return Unavailable("malformed UCXL history record for " + key);
  }
  std::vector<ContextVersion> out;
  try {
    for (const auto& e : j["versions"]) {
      ContextVersion v;
      v.key = key;
      v.number = e.at("number").get<std::uint64_t>();
      v.author_agent = e.at("author_agent").get<std::string>();
      v.author_role = e.at("author_role").get<std::string>();
      v.created_ms = e.at("created_ms").get<std::int64_t>();
      v.content_type = e.at("content_type").get<std::string>();
      v.size = e.at("size").get<std::uint64_t>();
      v.content_hash = e.at("content_hash").get<std::string>();
      v.tombstone = e.at("tombstone").get<bool>();
      if (!out.empty() && v.number <= out.back().number)
        return Unavailable("UCXL history record out of order");
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

ContextStore::ContextStore(std::shared_ptr<storage::Store> store, dht::RecordStore* records,
                           ContextStoreOptions options, std::shared_ptr<ContentCodec> codec,
                           const Clock& clock)
    : store_(std::move(store)),
      records_(records),
      options_(options),
      codec_(std::move(codec)),
      clock_(clock) {}

std::string ContextStore::HistoryRecordName(const std::string& key) { return "ucxl/h/" + Sha256Hex(key); }

std::string ContextStore::VersionRecordName(const std::string& key, std::uint64_t number) {
  return "ucxl/v/" + Sha256Hex(key) + "/" + std::to_string(number);
}

ContextVersion ContextStore::NewVersion(const std::string& key, const Author& author) const {
  ContextVersion v;
  v.key = key;
  v.author_agent = author.agent;
  v.author_role = author.role;
  v.created_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now().time_since_epoch()).count();
  return v;
}

Result<Entry> ContextStore::Put(const Address& address, const Author& author, std::string content_type,
                                std::string content) {
  if (address.HasWildcard()) return InvalidArgument("address: a put needs a concrete address (no any or *)");
  if (address.temporal.kind != TemporalKind::kLatest) {
    return FailedPrecondition("temporal: a put appends the next version; address it with *^");
  }
  if (author.agent.empty() || author.role.empty())
    return InvalidArgument("author: agent and role are required");
  if (content.size() > options_.max_content_bytes) {
    return ResourceExhausted("content of " + std::to_string(content.size()) + " bytes is over the limit of " +
                             std::to_string(options_.max_content_bytes));
  }
  if (content_type.empty()) content_type = "application/octet-stream";
  const std::string key = ContentKey(address);
  ContextVersion v = NewVersion(key, author);
  v.content_type = std::move(content_type);
  v.size = content.size();
  v.content_hash = Sha256Hex(content);
  std::string stored = content;
  if (codec_) {
    auto sealed = codec_->Seal(key, author.role, std::move(stored));
    if (!sealed.ok()) return sealed.status();
    stored = std::move(sealed).value();
  }
  auto appended = store_->AppendContextVersion(std::move(v), stored);
  if (!appended.ok()) return appended.status();
  Publish(key, *appended, stored);
  Address pinned = address;
  pinned.temporal = Temporal{TemporalKind::kVersion, appended->number};
  pinned.query.reset();
  pinned.fragment.reset();
  return Entry{*appended, std::move(content), Format(pinned), Source::kLocal};
}

void ContextStore::Publish(const std::string& key, const ContextVersion& version, const std::string& stored) {
  if (records_ == nullptr) return;
  auto history = store_->ContextHistory(key);
  if (!history.ok()) return;
  json versions = json::array();
  for (const auto& v : *history) versions.push_back(VersionJson(v));
  if (!version.tombstone) {
    if (auto s = records_->Put(VersionRecordName(key, version.number), stored, version.content_type);
        !s.ok()) {
      spdlog::warn("ucxl: version {} of {} not published to the DHT: {}", version.number, key, s.ToString());
    }
  }
  const json h = {{"key", key}, {"versions", versions}};
  if (auto s = records_->Put(HistoryRecordName(key), h.dump(), "application/json"); !s.ok()) {
    spdlog::warn("ucxl: history of {} not published to the DHT: {}", key, s.ToString());
  }
}

Result<std::vector<ContextVersion>> ContextStore::LocalOrRemoteHistory(const std::string& key,
                                                                       Source* source) {
  auto local = store_->ContextHistory(key);
  if (!local.ok()) return local.status();
  *source = Source::kLocal;
  if (!local->empty() || records_ == nullptr) return local;
  // The history changes with every write: always the newest copy in the
  // DHT, never a cached or held one. Version records never change.
  auto record = records_->Get(HistoryRecordName(key), /*bypass_cache=*/true);
  if (!record.ok()) {
    if (record.status().IsNotFound()) return std::vector<ContextVersion>{};
    return record.status();
  }
  *source = SourceOf(*record);
  return HistoryFromJson(key, record->content);
}

Result<Entry> ContextStore::Load(const Address& address, const std::vector<ContextVersion>& history,
                                 std::size_t index, Source source) {
  const ContextVersion& v = history[index];
  Address pinned = address;
  pinned.temporal = Temporal{TemporalKind::kVersion, v.number};
  pinned.query.reset();
  pinned.fragment.reset();
  Entry e{v, "", Format(pinned), source};
  if (v.tombstone) return e;
  std::string stored;
  if (source == Source::kLocal) {
    auto content = store_->ContextContent(v.key, v.number);
    if (!content.ok()) return content.status();
    stored = std::move(content).value();
  } else {
    auto record = records_->Get(VersionRecordName(v.key, v.number));
    if (!record.ok()) return record.status();
    e.source = SourceOf(*record);
    stored = std::move(record->content);
  }
  if (codec_) {
    auto opened = codec_->Open(v.key, std::move(stored));
    if (!opened.ok()) return opened.status();
    stored = std::move(opened).value();
  }
  if (Sha256Hex(stored) != v.content_hash) return Unavailable("content of " + e.address + " fails its hash");
  e.content = std::move(stored);
  return e;
}

Result<Entry> ContextStore::Get(const Address& address) {
  if (address.HasWildcard())
    return InvalidArgument("address: get needs a concrete address (discover takes wildcards)");
  const std::string key = ContentKey(address);
  Source source;
  auto history = LocalOrRemoteHistory(key, &source);
  if (!history.ok()) return history.status();
  auto index = Resolve(address.temporal, Refs(*history));
  if (!index.ok()) {
    if (index.status().IsNotFound()) return NotFound("nothing stored at " + key);
    return index.status();
  }
  auto e = Load(address, *history, *index, source);
  if (!e.ok()) return e.status();
  if (e->version.tombstone) {
    return NotFound(key + " was deleted at version " + std::to_string(e->version.number));
  }
  return e;
}

Result<ContextVersion> ContextStore::Delete(const Address& address, const Author& author) {
  if (address.HasWildcard()) return InvalidArgument("address: delete needs a concrete address");
  if (author.agent.empty() || author.role.empty())
    return InvalidArgument("author: agent and role are required");
  const std::string key = ContentKey(address);
  auto history = store_->ContextHistory(key);
  if (!history.ok()) return history.status();
  if (history->empty() || history->back().tombstone) return NotFound("nothing live at " + key);
  ContextVersion v = NewVersion(key, author);
  v.content_type = history->back().content_type;
  v.content_hash = Sha256Hex("");
  v.tombstone = true;
  auto appended = store_->AppendContextVersion(std::move(v), "");
  if (!appended.ok()) return appended.status();
  Publish(key, *appended, "");
  return appended;
}

Result<std::vector<ContextVersion>> ContextStore::History(const Address& address) {
  if (address.HasWildcard()) return InvalidArgument("address: history needs a concrete address");
  Source source;
  return LocalOrRemoteHistory(ContentKey(address), &source);
}

Result<Entry> ContextStore::Navigate(const Address& address, std::int64_t steps) {
  if (address.HasWildcard()) return InvalidArgument("address: navigate needs a concrete address");
  const std::string key = ContentKey(address);
  Source source;
  auto history = LocalOrRemoteHistory(key, &source);
  if (!history.ok()) return history.status();
  auto from = Resolve(address.temporal, Refs(*history));
  if (!from.ok()) return from.status().IsNotFound() ? NotFound("nothing stored at " + key) : from.status();
  const auto target = static_cast<std::int64_t>(*from) + steps;
  if (target < 0 || target >= static_cast<std::int64_t>(history->size())) {
    return FailedPrecondition("temporal out of range: " + std::to_string(steps) + " step(s) from version " +
                              std::to_string((*history)[*from].number) + " leaves the history of " +
                              std::to_string(history->size()) + " version(s)");
  }
  return Load(address, *history, static_cast<std::size_t>(target), source);
}

Result<std::vector<ContextVersion>> ContextStore::Search(const std::string& text, std::size_t limit) {
  return store_->SearchContext(text, limit);
}

Result<std::vector<ContextVersion>> ContextStore::Discover(const Address& pattern, std::size_t limit) {
  auto all = store_->SearchContext("", 1u << 20);
  if (!all.ok()) return all.status();
  std::vector<ContextVersion> out;
  for (auto& v : *all) {
    // A key is an address without its temporal: put one back to parse it.
    const auto slash = v.key.find('/', kScheme.size());
    if (slash == std::string::npos) continue;
    auto a = Parse(v.key.substr(0, slash) + "/*^" + v.key.substr(slash));
    if (!a.ok()) continue;
    if (Matches(pattern, *a)) out.push_back(std::move(v));
    if (out.size() >= limit) break;
  }
  return out;
}

Status ContextStore::Announce(const Address& address) {
  if (records_ == nullptr) return Unavailable("no DHT on this node");
  if (address.HasWildcard()) return InvalidArgument("address: announce needs a concrete address");
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
