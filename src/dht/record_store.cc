#include "dht/record_store.h"
#include "base/file.h"
#include "base/log.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/threads.h"
#include "cache/cache.h"
#include "dht/probe.h"
#include "dht/record_format.h"
#include "security/authenticator.h"

namespace bzzz::dht {

namespace fs = std::filesystem;
using nlohmann::json;
using p2p::Bytes;
using SteadyClock = std::chrono::steady_clock;
using internal::Assemble;
using internal::kCacheMagic;
using internal::kHeldMagic;
using internal::RawRecord;
using internal::DecodeBlobs;
using internal::EncodeBlobs;
using internal::ReadBlobs;
using internal::ValidateName;
using internal::WriteBlobs;

namespace {

constexpr SubsystemLog kLog{"dht"};
constexpr std::string_view kCacheDomain = "dht";

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Every holder re-puts a record's frame with the same value id, derived from
// its bytes, so the copies coincide at the storage nodes instead of piling up.
std::uint64_t IdOfValue(const Bytes& value) {
  const std::string digest = security::Sha256Hex(std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
  const std::uint64_t id = std::stoull(digest.substr(0, 15), nullptr, 16);
  return id == 0 ? 1 : id;
}

std::string Sha(std::string_view data) { return security::Sha256Hex(data); }

// A one-shot result a callback fills and a caller waits for.
template <class T>
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  T value{};
  void Set(T v) {
    {
      std::lock_guard lock(mu);
      if (done) return;
      value = std::move(v);
      done = true;
    }
    cv.notify_all();
  }
  // False on timeout, or as soon as `abort` (checked every 20 ms) is true.
  bool Wait(std::chrono::milliseconds timeout, const std::function<bool()>& abort = {}) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mu);
    while (!done) {
      if (abort && abort()) return false;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      cv.wait_for(lock, std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(20)));
    }
    return true;
  }
};

}  // namespace

class RecordStore::Impl : public std::enable_shared_from_this<RecordStore::Impl> {
 public:
  Impl(Options o, p2p::P2pNode& node, prometheus::Registry* metrics) : opts(std::move(o)), p2p(node), probe(metrics) {}

  Options opts;
  p2p::P2pNode& p2p;
  DhtProbe probe;
  std::atomic<std::uint64_t> last_seq{0};
  std::mutex announce_mu;  // one provider announcement at a time

  struct Held {
    std::string name;
    std::size_t size = 0;
    int replication = -1;
    bool replicate = true;  // false: held here only (probes), never recruited elsewhere
    std::vector<Bytes> blobs;  // only without a data directory
    std::string writer;        // of the copy held
    std::int64_t written_at_ms = 0;
  };
  mutable std::mutex mu;
  std::map<std::string, Held, std::less<>> held;
  std::atomic<std::size_t> cache_bytes{0};

  std::mutex work_mu;
  std::condition_variable work_cv;
  std::deque<std::string> fetch_queue;
  bool round_requested = false;
  bool stopping = false;
  std::thread worker;

  std::chrono::milliseconds OpTimeout() const { return opts.config.operation_timeout; }
  bool OnDisk() const { return !opts.data_dir.empty(); }
  fs::path HeldDir() const { return fs::path(opts.data_dir) / "dht" / "held"; }
  fs::path CacheDir() const { return fs::path(opts.data_dir) / "dht" / "cache"; }
  fs::path HeldPath(std::string_view name) const { return HeldDir() / (Sha(name) + ".rec"); }
  fs::path CachePath(std::string_view name) const { return CacheDir() / (Sha(name) + ".rec"); }

  std::uint64_t NextSeq() {
    const auto now = static_cast<std::uint64_t>(NowMs()) * 1'000'000;
    std::uint64_t prev = last_seq.load();
    std::uint64_t next;
    do {
      next = std::max(now, prev + 1);
    } while (!last_seq.compare_exchange_weak(prev, next));
    return next;
  }

  // ----- DHT primitives, waited for -----

  struct PutItem {
    std::string key;
    Bytes value;
    p2p::ValueClass cls;
    std::uint64_t id;
  };

  Status PutAll(std::vector<PutItem> items) {
    struct State {
      std::atomic<std::size_t> left;
      std::atomic<bool> ok{true};
      Waiter<bool> done;
    };
    auto st = std::make_shared<State>();
    st->left = items.size();
    for (auto& item : items) {
      p2p.DhtPut(item.key, std::move(item.value), item.cls, item.id, [st](bool ok) {
        if (!ok) st->ok = false;
        if (--st->left == 0) st->done.Set(true);
      });
    }
    if (!st->done.Wait(OpTimeout(), [this] { return Stopping(); })) {
      return Timeout("DHT put not acknowledged within " + std::to_string(OpTimeout().count()) + " ms");
    }
    if (!st->ok) return Unavailable("no DHT node stored the value");
    return Status::Ok();
  }

  Result<std::vector<Bytes>> GetAll(const std::string& key) {
    auto w = std::make_shared<Waiter<std::pair<std::vector<Bytes>, bool>>>();
    p2p.DhtGet(key, [w](std::vector<Bytes> values, bool ok) { w->Set({std::move(values), ok}); });
    if (!w->Wait(OpTimeout(), [this] { return Stopping(); })) {
      return Timeout("DHT get of " + key + " took longer than " + std::to_string(OpTimeout().count()) + " ms");
    }
    return std::move(w->value.first);
  }

  // ----- records -----

  Result<RawRecord> FetchRaw(std::string_view name) {
    auto each = FetchVerified(name, /*per_writer=*/false);
    if (!each.ok()) return each.status();
    return std::move(each->front());
  }

  // The newest copy of `name` that verifies (per_writer false), or the
  // newest that verifies of each writer (true), newest first. NotFound when
  // there is no copy; Unavailable when none verifies.
  Result<std::vector<RawRecord>> FetchVerified(std::string_view name, bool per_writer) {
    auto values = GetAll("rec:" + std::string(name));
    if (!values.ok()) return values.status();
    struct Candidate {
      std::int64_t at;
      std::string writer;
      Bytes frame;
    };
    std::vector<Candidate> frames;
    std::size_t invalid = 0;
    for (auto& v : *values) {
      const p2p::Decoded d = p2p::DecodeFrame(v.data(), v.size());
      if (!d.ok() || d.frame.kind != p2p::FrameKind::kRecord || d.frame.topic != name || !p2p.Authorize(d.frame)) {
        ++invalid;  // forged, damaged, or written by a node that is not a member
        continue;
      }
      frames.push_back({d.frame.sent_at_ns, p2p::NodeIdOf(d.frame.sender), std::move(v)});
    }
    if (frames.empty()) {
      if (invalid) return Unavailable(std::to_string(invalid) + " copies of the record failed verification");
      return NotFound("no record named " + std::string(name));
    }
    std::sort(frames.begin(), frames.end(), [](const auto& a, const auto& b) { return a.at > b.at; });
    std::vector<RawRecord> out;
    std::set<std::string> done;  // writers with a verified copy
    std::string last_error;
    for (auto& c : frames) {
      if (done.count(c.writer)) continue;
      const p2p::Decoded d = p2p::DecodeFrame(c.frame.data(), c.frame.size());
      const json meta = ParseJson(d.frame.messages[0].data);
      std::vector<std::string> keys;
      if (meta.is_object() && meta.contains("chunks") && meta["chunks"].is_array()) {
        for (const auto& k : meta["chunks"]) {
          if (k.is_string()) keys.push_back(k.get<std::string>());
        }
      }
      std::vector<Bytes> blobs{std::move(c.frame)};
      if (!keys.empty()) {
        auto chunks = FetchChunks(keys);
        if (!chunks.ok()) {
          last_error = chunks.status().message();
          continue;
        }
        for (auto& chunk : *chunks) blobs.push_back(std::move(chunk));
      }
      RawRecord raw;
      last_error = Assemble(name, std::move(blobs), &raw);
      if (!last_error.empty()) continue;
      out.push_back(std::move(raw));
      if (!per_writer) break;
      done.insert(c.writer);
    }
    if (out.empty()) return Unavailable("no copy of " + std::string(name) + " verified: " + last_error);
    return out;
  }

  Result<std::vector<Bytes>> FetchChunks(const std::vector<std::string>& keys) {
    struct State {
      std::mutex mu;
      std::vector<Bytes> chunks;
      std::vector<bool> found;
      std::atomic<std::size_t> left;
      Waiter<bool> done;
    };
    auto st = std::make_shared<State>();
    st->chunks.resize(keys.size());
    st->found.resize(keys.size());
    st->left = keys.size();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      p2p.DhtGet(keys[i], [st, i, key = keys[i]](std::vector<Bytes> values, bool) {
        for (auto& v : values) {
          if (p2p::ChunkKey(v.data(), v.size()) == key) {
            std::lock_guard lock(st->mu);
            st->chunks[i] = std::move(v);
            st->found[i] = true;
            break;
          }
        }
        if (--st->left == 0) st->done.Set(true);
      });
    }
    if (!st->done.Wait(OpTimeout(), [this] { return Stopping(); })) {
      return Timeout("chunks not fetched within the operation timeout");
    }
    std::lock_guard lock(st->mu);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!st->found[i]) return NotFound("chunk " + keys[i] + " not found");
    }
    return std::move(st->chunks);
  }

  std::vector<PutItem> ItemsOf(const std::vector<Bytes>& blobs) {
    std::vector<PutItem> items;
    const p2p::Decoded d = p2p::DecodeFrame(blobs[0].data(), blobs[0].size());
    items.push_back({"rec:" + d.frame.topic, blobs[0], p2p::ValueClass::kRecord, IdOfValue(blobs[0])});
    for (std::size_t i = 1; i < blobs.size(); ++i) {
      items.push_back(
          {p2p::ChunkKey(blobs[i].data(), blobs[i].size()), blobs[i], p2p::ValueClass::kChunk, IdOfValue(blobs[i])});
    }
    return items;
  }

  Status Hold(const RawRecord& raw, bool replicate = true) {
    Held h;
    h.name = raw.record.name;
    h.replicate = replicate;
    h.size = raw.record.content.size();
    h.writer = raw.record.writer;
    h.written_at_ms = raw.record.written_at_ms;
    if (OnDisk()) {
      if (!WriteBlobs(HeldPath(h.name), kHeldMagic, 0, raw.blobs, /*durable=*/true)) {
        probe.Error();
        return Unavailable("cannot write " + HeldPath(h.name).string());
      }
    } else {
      h.blobs = raw.blobs;
    }
    std::lock_guard lock(mu);
    auto& slot = held[h.name];
    const int replication = slot.replication;
    slot = std::move(h);
    slot.replication = replication;
    return Status::Ok();
  }

  Result<std::vector<Bytes>> HeldBlobs(std::string_view name) {
    {
      std::lock_guard lock(mu);
      auto it = held.find(name);
      if (it == held.end()) return NotFound("not held");
      if (!OnDisk()) return it->second.blobs;
    }
    std::int64_t unused;
    std::vector<Bytes> blobs;
    if (!ReadBlobs(HeldPath(name), kHeldMagic, &unused, &blobs)) return Unavailable("held copy unreadable");
    return blobs;
  }

  void LoadHeld() {
    if (!OnDisk()) return;
    std::error_code ec;
    fs::create_directories(HeldDir(), ec);
    for (const auto& entry : fs::directory_iterator(HeldDir(), ec)) {
      if (entry.path().extension() != ".rec") continue;
      std::int64_t unused;
      std::vector<Bytes> blobs;
      if (!ReadBlobs(entry.path(), kHeldMagic, &unused, &blobs)) {
        kLog.warn("dht: ignoring unreadable held record {}", entry.path().string());
        continue;
      }
      const p2p::Decoded d = p2p::DecodeFrame(blobs[0].data(), blobs[0].size());
      RawRecord raw;
      if (!d.ok() || !Assemble(d.frame.topic, std::move(blobs), &raw).empty()) {
        kLog.warn("dht: ignoring held record {} that fails verification", entry.path().string());
        continue;
      }
      std::lock_guard lock(mu);
      held[raw.record.name] = Held{raw.record.name, raw.record.content.size(), -1,   true,
                                   {},                raw.record.writer,         raw.record.written_at_ms};
    }
    if (!held.empty()) kLog.info("dht: holding {} record(s) from {}", held.size(), HeldDir().string());
  }

  // ----- cache -----

  // The node's cache (memory, Redis): every value is verified as if it came
  // from the DHT; one that fails is dropped from every layer.
  std::optional<RawRecord> SharedCacheRead(std::string_view name) {
    if (!opts.cache || opts.config.cache_max_bytes == 0) return std::nullopt;
    auto hit = opts.cache->Get(kCacheDomain, name, /*promote=*/false);
    if (!hit) return std::nullopt;
    std::int64_t unused = 0;
    std::vector<Bytes> blobs;
    RawRecord raw;
    if (!DecodeBlobs(hit->value, kCacheMagic, &unused, &blobs) || !Assemble(name, std::move(blobs), &raw).empty()) {
      kLog.warn("dht: cached copy of {} from the {} layer fails verification; dropped", name,
                cache::LayerName(hit->layer));
      opts.cache->Erase(kCacheDomain, name);
      return std::nullopt;
    }
    if (hit->layer != cache::Layer::kMemory) {
      opts.cache->Put(kCacheDomain, name, hit->value, opts.config.cache_ttl, cache::Cache::Scope::kMemoryOnly);
    }
    return raw;
  }

  std::optional<RawRecord> CacheRead(std::string_view name) {
    if (!OnDisk() || opts.config.cache_max_bytes == 0) return std::nullopt;
    std::int64_t expires = 0;
    std::vector<Bytes> blobs;
    const fs::path path = CachePath(name);
    if (!ReadBlobs(path, kCacheMagic, &expires, &blobs)) return std::nullopt;
    RawRecord raw;
    if (expires < NowMs() || !Assemble(name, std::move(blobs), &raw).empty()) {
      std::error_code ec;
      fs::remove(path, ec);
      return std::nullopt;
    }
    return raw;
  }

  void CacheWrite(const RawRecord& raw) {
    if (opts.config.cache_max_bytes == 0) return;
    if (opts.cache) {
      opts.cache->Put(kCacheDomain, raw.record.name, EncodeBlobs(kCacheMagic, 0, raw.blobs), opts.config.cache_ttl);
    }
    if (!OnDisk()) return;
    std::size_t bytes = 16;
    for (const auto& b : raw.blobs) bytes += b.size() + 4;
    if (bytes > opts.config.cache_max_bytes) return;
    if (!WriteBlobs(CachePath(raw.record.name), kCacheMagic, NowMs() + opts.config.cache_ttl.count(), raw.blobs,
                    /*durable=*/false)) {
      return;  // the cache directory may have been deleted under us: the cache is optional
    }
    if ((cache_bytes += bytes) > opts.config.cache_max_bytes) EvictCache();
    probe.CacheBytes(cache_bytes.load());
  }

  // Deletes the oldest entries until the cache is under 90% of its limit.
  void EvictCache() {
    std::vector<std::pair<fs::file_time_type, fs::path>> files;
    std::size_t total = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(CacheDir(), ec)) {
      const auto size = e.file_size(ec);
      if (ec) continue;
      total += size;
      files.emplace_back(e.last_write_time(ec), e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& [t, p] : files) {
      if (total <= opts.config.cache_max_bytes * 9 / 10) break;
      const auto size = fs::file_size(p, ec);
      if (fs::remove(p, ec)) total -= std::min(total, static_cast<std::size_t>(size));
    }
    cache_bytes = total;
  }

  std::size_t ScanCacheBytes() {
    std::size_t total = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(CacheDir(), ec)) total += e.file_size(ec);
    return total;
  }

  // ----- providers -----

  Status Announce(std::string_view name) {
    const auto start = SteadyClock::now();
    {
      std::lock_guard lock(mu);
      if (!held.count(name)) return NotFound("this node does not hold " + std::string(name));
    }
    // One value per (node, name), edited in place by each refresh; storage
    // nodes accept an edit only with a higher sequence number. Announcements
    // from the put, the refresh round and a caller would race and arrive out
    // of order: they go one at a time, and a refused one is sent once more
    // with a fresh, higher number.
    std::lock_guard serial(announce_mu);
    Status s;
    for (int attempt = 0; attempt < 2; ++attempt) {
      p2p::Frame f;
      f.kind = p2p::FrameKind::kProvider;
      f.seq = NextSeq();
      f.sent_at_ns = NowMs() * 1'000'000;
      f.topic = std::string(name);
      f.credential = p2p.credential();
      const json body = {{"node_id", p2p.node_id()}, {"http_endpoint", p2p.CurrentPresence().http_endpoint}};
      f.messages.push_back({"provider", NowMs() * 1000, 0, body.dump()});
      auto encoded = p2p::EncodeFrame(f, p2p.identity());
      if (!encoded.ok()) return encoded.status();
      s = PutAll({{"prov:" + std::string(name), std::move(encoded).value(), p2p::ValueClass::kProvider,
                   p2p::ValueIdOf(p2p.identity().public_key(), name)}});
      if (s.ok() || Stopping()) break;
    }
    probe.Done(Operation::kAnnounce, Seconds(start), s.ok() ? "" : Reason(s));
    return s;
  }

  Result<std::vector<Provider>> Discover(std::string_view name) {
    const auto start = SteadyClock::now();
    auto values = GetAll("prov:" + std::string(name));
    if (!values.ok()) {
      probe.Done(Operation::kDiscover, Seconds(start), Reason(values.status()));
      return values.status();
    }
    const std::int64_t now = NowMs();
    std::map<std::string, Provider> by_node;
    for (const auto& v : *values) {
      const p2p::Decoded d = p2p::DecodeFrame(v.data(), v.size());
      if (!d.ok() || d.frame.kind != p2p::FrameKind::kProvider || d.frame.topic != name || !p2p.Authorize(d.frame)) {
        continue;
      }
      const std::int64_t at = d.frame.sent_at_ns / 1'000'000;
      if (at + opts.config.provider_ttl.count() < now) continue;  // stale: its node stopped refreshing
      const json body = ParseJson(d.frame.messages[0].data);
      Provider p;
      p.node_id = p2p::NodeIdOf(d.frame.sender);  // the signer, not what the body claims
      p.http_endpoint = body.is_object() && body.contains("http_endpoint") && body["http_endpoint"].is_string()
                            ? body["http_endpoint"].get<std::string>()
                            : "";
      p.announced_at_ms = at;
      auto& slot = by_node[p.node_id];
      if (p.announced_at_ms >= slot.announced_at_ms) slot = p;
    }
    std::vector<Provider> out;
    for (auto& [id, p] : by_node) out.push_back(std::move(p));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.announced_at_ms > b.announced_at_ms; });
    probe.Done(Operation::kDiscover, Seconds(start), "");
    return out;
  }

  // ----- replication -----

  // Rendezvous rank of a node for a record: every holder computes the same order.
  static std::string Rank(std::string_view name, std::string_view node_id) {
    return Sha(std::string(name) + "|" + std::string(node_id));
  }

  void ReplicateOne(const std::string& name) {
    auto blobs = HeldBlobs(name);
    if (!blobs.ok()) return;
    bool local_only = false;
    {
      std::lock_guard lock(mu);
      auto it = held.find(name);
      if (it != held.end()) local_only = !it->second.replicate;
    }
    (void)PutAll(ItemsOf(*blobs));  // keep the DHT copies alive
    (void)Announce(name);
    auto providers = Discover(name);
    if (!providers.ok()) return;
    const int factor = static_cast<int>(providers->size());
    int before = -1;  // not measured yet
    {
      std::lock_guard lock(mu);
      auto it = held.find(name);
      if (it != held.end()) {
        before = it->second.replication;
        it->second.replication = factor;
      }
    }
    const int target = local_only ? 1 : opts.config.replication_factor;
    // The words an operator greps for ("replica"), once per change.
    if (before >= 0 && factor < before) {
      kLog.warn("dht: replica lost: {} now has {} of {} copies (was {}); asking peers for more", name, factor,
                   target, before);
    } else if (before >= 0 && factor > before) {
      kLog.info("dht: replica gained: {} now has {} of {} copies (was {})", name, factor, target, before);
    }
    if (factor >= target) return;
    std::set<std::string> holding;
    for (const auto& p : *providers) holding.insert(p.node_id);
    holding.insert(p2p.node_id());
    std::vector<std::pair<std::string, std::string>> candidates;  // (rank, node id)
    for (const auto& peer : p2p.Peers()) {
      // Bootstrap-only nodes run no record store: asking them would stall the record below target.
      if (peer.presence.role == "bootstrap") continue;
      if (!holding.count(peer.node_id)) candidates.emplace_back(Rank(name, peer.node_id), peer.node_id);
    }
    std::sort(candidates.begin(), candidates.end());
    const std::size_t want = static_cast<std::size_t>(target - factor);
    for (std::size_t i = 0; i < candidates.size() && i < want; ++i) {
      const json body = {{"name", name}};
      if (Status s = p2p.SendDirect(candidates[i].second, "dht.replicate", body.dump()); !s.ok()) {
        kLog.debug("dht: replicate request to {}: {}", candidates[i].second, s.message());
      }
    }
  }

  void Round() {
    std::vector<std::string> names;
    {
      std::lock_guard lock(mu);
      for (const auto& [name, h] : held) names.push_back(name);
    }
    for (const auto& name : names) {
      if (Stopping()) return;
      RefreshReplica(name);
      ReplicateOne(name);
    }
    UpdateGauges();
  }

  // A replica (a copy this node holds for another writer) follows the
  // record when it changes: a UCXL history that grew, a version re-wrapped
  // after a key rotation. The newest verified copy replaces the held one.
  void RefreshReplica(const std::string& name) {
    std::int64_t held_at = 0;
    {
      std::lock_guard lock(mu);
      auto it = held.find(name);
      if (it == held.end() || it->second.writer == p2p.node_id() || !it->second.replicate) return;
      held_at = it->second.written_at_ms;
    }
    auto raw = FetchRaw(name);
    if (!raw.ok() || raw->record.written_at_ms <= held_at) return;
    if (Hold(*raw).ok()) kLog.debug("dht: replica of {} refreshed from {}", name, raw->record.writer);
  }

  void UpdateGauges() {
    std::lock_guard lock(mu);
    double sum = 0;
    std::size_t measured = 0;
    for (const auto& [name, h] : held) {
      if (h.replication >= 0) {
        sum += h.replication;
        ++measured;
      }
    }
    // The factor is exported once something was measured: absent, not 0, before.
    probe.Replication(measured ? std::optional<double>(sum / static_cast<double>(measured)) : std::nullopt,
                      held.size(), held.size());
  }

  void FetchAndHold(const std::string& name) {
    {
      std::lock_guard lock(mu);
      if (held.count(name)) return;
    }
    auto raw = FetchRaw(name);
    if (!raw.ok()) {
      kLog.warn("dht: cannot replicate {}: {}", name, raw.status().message());
      return;
    }
    if (Hold(*raw).ok()) {
      (void)Announce(name);
      kLog.info("dht: now holding a replica of {}", name);
    }
  }

  bool Stopping() {
    std::lock_guard lock(work_mu);
    return stopping;
  }

  void WorkLoop() {
    auto next_round = SteadyClock::now() + opts.config.provider_refresh;
    for (;;) {
      std::vector<std::string> fetch;
      bool round = false;
      {
        std::unique_lock lock(work_mu);
        work_cv.wait_until(lock, next_round,
                           [this] { return stopping || round_requested || !fetch_queue.empty(); });
        if (stopping) return;
        fetch.assign(fetch_queue.begin(), fetch_queue.end());
        fetch_queue.clear();
        round = round_requested || SteadyClock::now() >= next_round;
        round_requested = false;
      }
      for (const auto& name : fetch) FetchAndHold(name);
      if (round) {
        Round();
        next_round = SteadyClock::now() + opts.config.provider_refresh;
      }
    }
  }

  void RequestRound() {
    {
      std::lock_guard lock(work_mu);
      round_requested = true;
    }
    work_cv.notify_all();
  }

  void OnReplicateRequest(const p2p::Message& m) {
    const json body = ParseJson(m.envelope.data);
    if (!body.is_object() || !body.contains("name") || !body["name"].is_string()) return;
    const std::string name = body["name"].get<std::string>();
    if (!ValidateName(name).empty()) return;
    {
      std::lock_guard lock(work_mu);
      if (fetch_queue.size() >= 1024) return;  // bounded; the requester asks again next round
      fetch_queue.push_back(name);
    }
    work_cv.notify_all();
  }

  static double Seconds(SteadyClock::time_point start) {
    return std::chrono::duration<double>(SteadyClock::now() - start).count();
  }
  static std::string Reason(const Status& s) {
    switch (s.code()) {
      case StatusCode::kTimeout: return "timeout";
      case StatusCode::kNotFound: return "not_found";
      case StatusCode::kUnavailable: return "unavailable";
      default: return "invalid";
    }
  }
};

RecordStore::RecordStore() = default;
RecordStore::~RecordStore() { Stop(); }

Result<std::unique_ptr<RecordStore>> RecordStore::Start(Options options, p2p::P2pNode& p2p,
                                                        prometheus::Registry* metrics) {
  std::unique_ptr<RecordStore> store(new RecordStore());
  store->impl_ = std::make_shared<Impl>(std::move(options), p2p, metrics);
  Impl& n = *store->impl_;
  if (n.OnDisk()) {
    std::error_code ec;
    fs::create_directories(n.CacheDir(), ec);
    if (ec) return Unavailable("cannot create " + n.CacheDir().string() + ": " + ec.message());
    n.cache_bytes = n.ScanCacheBytes();
    n.probe.CacheBytes(n.cache_bytes.load());
  }
  n.LoadHeld();
  // As a storage node: a record whose inline content does not match its
  // hash is never stored (chunks are content-addressed and checked one by
  // one; readers check the whole record again).
  p2p.SetRecordCheck([](const p2p::Frame& f) -> std::string {
    if (f.messages.empty() || f.messages[0].type != "meta") return "malformed";
    const json meta = ParseJson(f.messages[0].data);
    if (!meta.is_object()) return "malformed";
    if (meta.contains("chunks") && meta["chunks"].is_array() && !meta["chunks"].empty()) return "";
    if (f.messages.size() != 2 || f.messages[1].type != "content") return "malformed";
    if (!meta.contains("sha256") || !meta["sha256"].is_string() ||
        meta["sha256"].get<std::string>() != security::Sha256Hex(f.messages[1].data)) {
      return "content_hash";
    }
    return "";
  });
  std::weak_ptr<Impl> weak = store->impl_;
  p2p.OnDirect("dht.replicate", [weak](const p2p::Message& m) {
    if (auto impl = weak.lock()) impl->OnReplicateRequest(m);
  });
  n.worker = NamedThread("dht-records", [&n] { n.WorkLoop(); });
  if (!n.held.empty()) n.RequestRound();
  return store;
}

void RecordStore::Stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->work_mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

Status RecordStore::Put(std::string_view name, std::string content, std::string_view content_type, bool replicate) {
  Impl& n = *impl_;
  const auto start = SteadyClock::now();
  if (auto why = ValidateName(name); !why.empty()) return InvalidArgument(why);
  if (content.size() > kMaxRecordBytes) {
    return InvalidArgument("content of " + std::to_string(content.size()) + " bytes exceeds the " +
                           std::to_string(kMaxRecordBytes) + "-byte record limit");
  }
  if (content_type.size() > 255) return InvalidArgument("content type longer than 255 bytes");
  const std::string sha = Sha(content);
  std::vector<Bytes> chunks;
  std::vector<std::string> keys;
  if (content.size() > kInlineBytes) {
    for (std::size_t off = 0; off < content.size(); off += kChunkBytes) {
      const std::size_t len = std::min(kChunkBytes, content.size() - off);
      Bytes c(content.begin() + static_cast<std::ptrdiff_t>(off),
              content.begin() + static_cast<std::ptrdiff_t>(off + len));
      keys.push_back(p2p::ChunkKey(c.data(), c.size()));
      chunks.push_back(std::move(c));
    }
  }
  p2p::Frame f;
  f.kind = p2p::FrameKind::kRecord;
  f.credential = n.p2p.credential();
  f.seq = n.NextSeq();
  f.sent_at_ns = NowMs() * 1'000'000;
  f.topic = std::string(name);
  const json meta = {{"content_type", content_type}, {"size", content.size()}, {"sha256", sha}, {"chunks", keys}};
  f.messages.push_back({"meta", NowMs() * 1000, 0, meta.dump()});
  if (keys.empty()) f.messages.push_back({"content", NowMs() * 1000, 0, content});
  auto encoded = p2p::EncodeFrame(f, n.p2p.identity());
  if (!encoded.ok()) return encoded.status();
  std::vector<Bytes> blobs{std::move(encoded).value()};
  for (auto& c : chunks) blobs.push_back(std::move(c));
  RawRecord raw;
  if (auto why = Assemble(name, blobs, &raw); !why.empty()) return Internal("record does not verify: " + why);
  Status s = n.PutAll(n.ItemsOf(raw.blobs));
  n.probe.Done(Operation::kPut, Impl::Seconds(start), s.ok() ? "" : Impl::Reason(s));
  if (!s.ok()) return s;
  if (Status h = n.Hold(raw, replicate); !h.ok()) return h;
  (void)n.Announce(name);
  if (replicate) n.RequestRound();  // replicate now rather than at the next refresh
  n.UpdateGauges();
  return Status::Ok();
}

Result<Record> RecordStore::Get(std::string_view name, bool bypass_cache) {
  Impl& n = *impl_;
  const auto start = SteadyClock::now();
  if (auto why = ValidateName(name); !why.empty()) return InvalidArgument(why);
  if (!bypass_cache) {
    if (auto blobs = n.HeldBlobs(name); blobs.ok()) {
      RawRecord raw;
      if (Assemble(name, std::move(blobs).value(), &raw).empty()) {
        raw.record.source = "held";
        n.probe.Done(Operation::kGet, Impl::Seconds(start), "");
        return raw.record;
      }
    }
    auto cached = n.SharedCacheRead(name);
    if (!cached && (cached = n.CacheRead(name)) && n.opts.cache) {
      n.opts.cache->Put(kCacheDomain, name, EncodeBlobs(kCacheMagic, 0, cached->blobs), n.opts.config.cache_ttl,
                        cache::Cache::Scope::kMemoryOnly);
    }
    if (cached) {
      n.probe.Cache(true);
      cached->record.source = "cache";
      n.probe.Done(Operation::kGet, Impl::Seconds(start), "");
      return cached->record;
    }
    n.probe.Cache(false);
  }
  auto raw = n.FetchRaw(name);
  n.probe.Done(Operation::kGet, Impl::Seconds(start), raw.ok() ? "" : Impl::Reason(raw.status()));
  if (!raw.ok()) return raw.status();
  n.CacheWrite(*raw);
  raw->record.source = "dht";
  return raw->record;
}

Result<std::vector<Record>> RecordStore::GetEachWriter(std::string_view name) {
  Impl& n = *impl_;
  const auto start = SteadyClock::now();
  if (auto why = ValidateName(name); !why.empty()) return InvalidArgument(why);
  auto each = n.FetchVerified(name, /*per_writer=*/true);
  n.probe.Done(Operation::kGet, Impl::Seconds(start), each.ok() ? "" : Impl::Reason(each.status()));
  if (!each.ok()) return each.status();
  std::vector<Record> out;
  out.reserve(each->size());
  for (auto& raw : *each) {
    raw.record.source = "dht";
    out.push_back(std::move(raw.record));
  }
  return out;
}

std::string RecordStore::WriterId() const { return impl_->p2p.node_id(); }

Status RecordStore::Announce(std::string_view name) { return impl_->Announce(name); }
Result<std::vector<Provider>> RecordStore::Discover(std::string_view name) {
  if (auto why = ValidateName(name); !why.empty()) return InvalidArgument(why);
  return impl_->Discover(name);
}

Result<Replication> RecordStore::MeasureReplication(std::string_view name) {
  auto providers = Discover(name);
  if (!providers.ok()) return providers.status();
  Replication r;
  r.name = std::string(name);
  r.factor = static_cast<int>(providers->size());
  r.target = impl_->opts.config.replication_factor;
  r.providers = std::move(providers).value();
  return r;
}

Status RecordStore::Release(std::string_view name) {
  Impl& n = *impl_;
  {
    std::lock_guard lock(n.mu);
    auto it = n.held.find(name);
    if (it == n.held.end()) return NotFound("this node does not hold " + std::string(name));
    n.held.erase(it);
  }
  if (n.OnDisk()) {
    std::error_code ec;
    fs::remove(n.HeldPath(name), ec);
  }
  n.UpdateGauges();
  return Status::Ok();
}

std::vector<HeldRecord> RecordStore::Held() const {
  std::lock_guard lock(impl_->mu);
  std::vector<HeldRecord> out;
  for (const auto& [name, h] : impl_->held) out.push_back({name, h.size, h.replication});
  return out;
}

double RecordStore::AverageReplication() const {
  std::lock_guard lock(impl_->mu);
  double sum = 0;
  std::size_t n = 0;
  for (const auto& [name, h] : impl_->held) {
    if (h.replication >= 0) {
      sum += h.replication;
      ++n;
    }
  }
  return n ? sum / static_cast<double>(n) : 0;
}

CacheClearResult RecordStore::ClearCache() {
  Impl& n = *impl_;
  CacheClearResult r;
  if (n.opts.cache) r.memory_entries = n.opts.cache->ClearMemory(kCacheDomain);
  if (!n.OnDisk()) return r;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(n.CacheDir(), ec)) {
    const auto size = e.file_size(ec);
    if (fs::remove(e.path(), ec)) {
      ++r.files;
      r.bytes += size;
    }
  }
  n.cache_bytes = n.ScanCacheBytes();
  n.probe.CacheBytes(n.cache_bytes.load());
  return r;
}

std::size_t RecordStore::CacheBytes() const { return impl_->cache_bytes.load(); }
void RecordStore::ReplicateNow() { impl_->RequestRound(); }

}  // namespace bzzz::dht
