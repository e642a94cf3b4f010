#include "ucxl/rewrap.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/clock.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/threads.h"
#include "ucxl/context_store.h"

namespace bzzz::ucxl {

namespace {
constexpr SubsystemLog kLog{"ucxl"};
using nlohmann::json;
constexpr std::size_t kBatch = 32;
}  // namespace

class RewrapJob::Impl {
 public:
  ContextStore& store;
  std::function<std::uint64_t()> target;
  RewrapOptions options;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;
  std::mutex run_mu;  // one pass at a time

  // The persisted state.
  std::uint64_t revision = 0;  // the key generation the last complete pass reached (or this pass aims at)
  bool done = true;
  std::string cursor_key;
  std::uint64_t cursor_number = 0;
  std::uint64_t scanned = 0, rewrapped = 0, failed = 0, total = 0;
  std::int64_t started_ms = 0, finished_ms = 0;
  std::string last_error;

  prometheus::Gauge* pending = nullptr;
  prometheus::Counter* ok_count = nullptr;
  prometheus::Counter* current_count = nullptr;
  prometheus::Counter* failed_count = nullptr;

  Impl(ContextStore& s, std::function<std::uint64_t()> t, RewrapOptions o)
      : store(s), target(std::move(t)), options(std::move(o)) {}

  json StateLocked() const {
    return {{"target_generation", revision}, {"done", done},           {"cursor_key", cursor_key},
            {"cursor_number", cursor_number}, {"scanned", scanned},   {"rewrapped", rewrapped},
            {"failed", failed},               {"total", total},       {"started_ms", started_ms},
            {"finished_ms", finished_ms}};
  }

  void Load() {
    if (options.state_file.empty()) return;
    std::ifstream in(options.state_file);
    if (!in) return;
    std::stringstream text;
    text << in.rdbuf();
    const json j = ParseJson(text.str());
    if (!j.is_object()) {
      kLog.warn("ucxl: {} is damaged; the re-wrap starts over", options.state_file);
      return;
    }
    try {
      revision = j.at("target_generation").get<std::uint64_t>();
      done = j.at("done").get<bool>();
      cursor_key = j.at("cursor_key").get<std::string>();
      cursor_number = j.at("cursor_number").get<std::uint64_t>();
      scanned = j.at("scanned").get<std::uint64_t>();
      rewrapped = j.at("rewrapped").get<std::uint64_t>();
      failed = j.at("failed").get<std::uint64_t>();
      total = j.at("total").get<std::uint64_t>();
      started_ms = j.at("started_ms").get<std::int64_t>();
      finished_ms = j.at("finished_ms").get<std::int64_t>();
    } catch (const json::exception&) {
      kLog.warn("ucxl: {} is damaged; the re-wrap starts over", options.state_file);
      revision = 0;
      done = true;
    }
  }

  void SaveLocked() {
    if (options.state_file.empty()) return;
    if (auto s = WriteFileAtomic(options.state_file, DumpJson(StateLocked()), 0600); !s.ok()) {
      last_error = s.message();
    }
  }

  // Passes until one reaches the end towards the newest generation (or the
  // job stops): a rotation in the middle of a pass supersedes it at once.
  Status Pass() {
    std::lock_guard run(run_mu);
    while (true) {
      bool superseded = false;
      if (auto s = PassTowards(target(), &superseded); !s.ok() || !superseded) return s;
    }
  }

  // One pass from the cursor to the end (or until stopped, or until the key
  // generation moves past `want`: then *superseded is set).
  Status PassTowards(std::uint64_t want, bool* superseded) {
    {
      std::lock_guard lock(mu);
      if (done && want == revision) return Status::Ok();
      if (want != revision) {
        // A newer ring: start over towards it (a pass in progress for an
        // older one is superseded: everything gets the newest keys).
        revision = want;
        done = false;
        cursor_key.clear();
        cursor_number = 0;
        scanned = rewrapped = failed = 0;
        started_ms = UnixMillisNow();
        finished_ms = 0;
        if (auto t = store.repository().ContextStats(); t.ok()) total = t->versions;
        SaveLocked();
        kLog.info("ucxl: re-wrapping this node's context to key generation {} ({} version(s))", revision, total);
      }
    }
    const auto pause = std::chrono::duration<double>(options.per_second > 0 ? 1.0 / options.per_second : 0);
    while (true) {
      std::string key;
      std::uint64_t number = 0;
      {
        std::lock_guard lock(mu);
        if (stopping) return Status::Ok();
        key = cursor_key;
        number = cursor_number;
      }
      auto batch = store.repository().ContextVersionsAfter(key, number, kBatch);
      if (!batch.ok()) {
        std::lock_guard lock(mu);
        last_error = batch.status().message();
        return batch.status();
      }
      if (batch->empty()) break;
      for (auto& [version, stored] : *batch) {
        const auto begin = std::chrono::steady_clock::now();
        auto result = store.Rewrap(version, stored);
        std::lock_guard lock(mu);
        ++scanned;
        if (!result.ok()) {
          ++failed;
          last_error = version.key + " v" + std::to_string(version.number) + ": " + result.status().message();
          if (failed_count) failed_count->Increment();
        } else if (*result) {
          ++rewrapped;
          if (ok_count) ok_count->Increment();
        } else if (current_count) {
          current_count->Increment();
        }
        cursor_key = version.key;
        cursor_number = version.number;
        if (pending) pending->Set(static_cast<double>(total > scanned ? total - scanned : 0));
        // Throttle (bounded wait, woken by Stop).
        std::unique_lock wait(mu, std::adopt_lock);
        cv.wait_until(wait, begin + std::chrono::duration_cast<std::chrono::steady_clock::duration>(pause),
                      [this] { return stopping; });
        wait.release();
        if (stopping) break;
        // A rotation during the pass: start over towards the newest keys
        // (what was scanned got the keys of then). Looked at after every
        // version, not every batch: at a slow rate a batch lasts minutes.
        if (target() != want) {
          SaveLocked();
          *superseded = true;
          return Status::Ok();
        }
      }
      std::lock_guard lock(mu);
      SaveLocked();
    }
    std::lock_guard lock(mu);
    done = true;
    finished_ms = UnixMillisNow();
    if (pending) pending->Set(0);
    SaveLocked();
    kLog.info("ucxl: re-wrap to key generation {} done: {} scanned, {} re-wrapped, {} failed", revision, scanned,
              rewrapped, failed);
    return Status::Ok();
  }

  void Run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      if (auto s = Pass(); !s.ok()) kLog.warn("ucxl: re-wrap: {}", s.ToString());
      lock.lock();
      cv.wait_for(lock, options.poll_interval, [this] { return stopping; });
    }
  }
};

RewrapJob::RewrapJob(ContextStore& store, std::function<std::uint64_t()> target, RewrapOptions options,
                     prometheus::Registry* metrics)
    : impl_(std::make_shared<Impl>(store, std::move(target), std::move(options))) {
  if (metrics != nullptr) {
    impl_->pending = &prometheus::BuildGauge()
                          .Name("bzzz_ucxl_rewrap_pending")
                          .Help("Versions the re-wrap job has still to look at in its current pass")
                          .Register(*metrics)
                          .Add({});
    auto& versions = prometheus::BuildCounter()
                         .Name("bzzz_ucxl_rewrap_versions_total")
                         .Help("Versions the re-wrap job looked at, by result (rewrapped, current, failed)")
                         .Register(*metrics);
    impl_->ok_count = &versions.Add({{"result", "rewrapped"}});
    impl_->current_count = &versions.Add({{"result", "current"}});
    impl_->failed_count = &versions.Add({{"result", "failed"}});
  }
  impl_->Load();
}

RewrapJob::~RewrapJob() { Stop(); }

Status RewrapJob::Start() {
  auto impl = impl_;
  impl->thread = NamedThread("ucxl-rewrap", [impl] { impl->Run(); });
  return Status::Ok();
}

void RewrapJob::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Status RewrapJob::RunOnce() { return impl_->Pass(); }

std::string RewrapJob::ProgressJson() const {
  std::lock_guard lock(impl_->mu);
  json j = impl_->StateLocked();
  j["last_error"] = impl_->last_error;
  j["per_second"] = impl_->options.per_second;
  return DumpJson(j);
}

}  // namespace bzzz::ucxl
