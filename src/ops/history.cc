#include "ops/history.h"

#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "base/threads.h"
#include "ops/process_metrics.h"

namespace bzzz::ops {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// How often the admin is looked at between samples: an election's change
// of admin is recorded within this, not only at the next sample.
constexpr std::chrono::milliseconds kAdminTick{250};

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The counters and gauges the samples are made of, summed over their
// labels (a label filter keeps only the series with that label value).
struct Totals {
  std::optional<double> peers, links, agents, agents_busy, queue_depth, succeeded, failed, requests, pubsub;
};

bool HasLabel(const prometheus::ClientMetric& m, std::string_view name, std::string_view value) {
  for (const auto& l : m.label) {
    if (l.name == name && l.value == value) return true;
  }
  return false;
}

// Where each figure comes from: a family, summed (over the series whose
// `label` is one of `values`, when a label is named).
struct Source {
  std::string_view family;
  std::optional<double> Totals::*into;
  bool counter;
  std::string_view label;
  std::array<std::string_view, 2> values;  // "" unused
};
const Source kSources[] = {
    {"bzzz_p2p_connected_peers", &Totals::peers, false, {}, {}},
    {"bzzz_p2p_member_links", &Totals::links, false, {}, {}},
    {"no_agent_pool_size", &Totals::agents, false, {}, {}},
    {"no_agent_pool_active", &Totals::agents_busy, false, {}, {}},
    {"no_task_queue_depth", &Totals::queue_depth, false, {}, {}},
    {"no_tasks_total", &Totals::succeeded, true, "state", {"succeeded"}},
    {"no_tasks_total", &Totals::failed, true, "state", {"retried", "dead"}},
    {"no_http_requests_total", &Totals::requests, true, {}, {}},
    {"bzzz_pubsub_messages_received_total", &Totals::pubsub, true, {}, {}},
};

Totals ReadTotals(const prometheus::Registry& registry) {
  Totals t;
  for (const auto& family : registry.Collect()) {
    for (const Source& source : kSources) {
      if (family.name != source.family) continue;
      double total = 0;
      for (const auto& m : family.metric) {
        bool keep = source.label.empty();
        for (auto v : source.values) keep = keep || (!v.empty() && HasLabel(m, source.label, v));
        if (keep) total += source.counter ? m.counter.value : m.gauge.value;
      }
      t.*source.into = (t.*source.into).value_or(0) + total;
    }
  }
  return t;
}

std::optional<double> Rate(std::optional<double> now, std::optional<double> before, double seconds) {
  if (!now || !before || seconds <= 0) return std::nullopt;
  return std::max(0.0, (*now - *before) / seconds);
}

json Number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

class History::Impl {
 public:
  HistorySources sources;
  HistoryOptions options;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::deque<HistorySample> samples;
  std::deque<json> health_changes, leadership, scaling;
  struct Waiter {
    std::uint64_t after;
    Clock::time_point deadline;
    std::function<void(std::string)> done;
  };
  std::vector<Waiter> waiters;
  std::thread thread;

  // Sampler state (sampler thread only).
  std::uint64_t seq = 0;
  std::map<std::string, HealthStatus> last_checks;
  std::optional<std::pair<std::string, std::uint64_t>> last_admin;
  Totals last_totals;
  double last_cpu = -1;
  std::optional<double> last_agents;
  Clock::time_point last_sample_at;

  void Push(std::deque<json>& list, json entry) {
    list.push_back(std::move(entry));
    while (list.size() > options.changes) list.pop_front();
  }

  // Records a change of admin (under mu).
  void LookAtAdmin(std::int64_t t_ms) {
    if (!sources.admin) return;
    std::uint64_t term = 0;
    const std::string admin = sources.admin(&term);
    std::lock_guard lock(mu);
    if (last_admin && last_admin->first == admin && (admin.empty() || last_admin->second == term)) return;
    last_admin = std::make_pair(admin, term);
    Push(leadership,
         {{"t_ms", t_ms}, {"admin_id", admin.empty() ? json(nullptr) : json(admin)}, {"term", term}});
  }

  HistorySample TakeSample() {
    HistorySample s;
    s.t_ms = NowMs();
    const auto now = Clock::now();
    const double seconds = last_sample_at == Clock::time_point{}
                               ? 0
                               : std::chrono::duration<double>(now - last_sample_at).count();
    last_sample_at = now;

    const HealthStatus rollup = sources.health->Overall();
    s.health = std::string(HealthStatusName(rollup));
    s.score = HealthScore(rollup);
    std::vector<json> changes;
    for (const auto& c : sources.health->Snapshot()) {
      const auto it = last_checks.find(c.name);
      const HealthStatus before = it == last_checks.end() ? HealthStatus::kUnknown : it->second;
      if (c.status != before) {
        changes.push_back({{"t_ms", s.t_ms},
                           {"check", c.name},
                           {"from", HealthStatusName(before)},
                           {"to", HealthStatusName(c.status)},
                           {"message", c.message}});
      }
      last_checks[c.name] = c.status;
    }
    if (sources.admin) s.admin_id = sources.admin(&s.term);

    if (sources.metrics) {
      const Totals t = ReadTotals(*sources.metrics);
      s.peers = t.peers;
      s.links = t.links;
      s.queue_depth = t.queue_depth;
      s.agents = t.agents;
      s.in_flight = t.agents_busy;
      s.succeeded_per_s = Rate(t.succeeded, last_totals.succeeded, seconds);
      s.failed_per_s = Rate(t.failed, last_totals.failed, seconds);
      s.requests_per_s = Rate(t.requests, last_totals.requests, seconds);
      s.pubsub_per_s = Rate(t.pubsub, last_totals.pubsub, seconds);
      last_totals = t;
    }
    const ProcessStats process = ReadProcessStats();
    if (process.resident_bytes > 0) s.resident_bytes = static_cast<double>(process.resident_bytes);
    if (last_cpu >= 0 && seconds > 0)
      s.cpu_percent = std::max(0.0, (process.cpu_seconds - last_cpu) / seconds * 100);
    last_cpu = process.cpu_seconds;

    {
      std::lock_guard lock(mu);
      s.seq = ++seq;
      samples.push_back(s);
      while (samples.size() > options.samples) samples.pop_front();
      for (auto& c : changes) Push(health_changes, std::move(c));
      if (s.agents && last_agents && *s.agents != *last_agents) {
        Push(scaling, {{"t_ms", s.t_ms}, {"from", *last_agents}, {"to", *s.agents}});
      }
    }
    if (s.agents) last_agents = s.agents;
    if (sources.on_sample) sources.on_sample(s);
    return s;
  }

  std::string JsonLocked(std::uint64_t after) const {
    json list = json::array();
    // A number from before a restart (above the newest) or older than the
    // oldest kept gets everything there is.
    const bool all = after == 0 || after > seq || samples.empty() || after + 1 < samples.front().seq;
    for (const auto& s : samples) {
      if (!all && s.seq <= after) continue;
      list.push_back({{"seq", s.seq},
                      {"t_ms", s.t_ms},
                      {"health", s.health},
                      {"score", s.score},
                      {"admin_id", s.admin_id.empty() ? json(nullptr) : json(s.admin_id)},
                      {"term", s.term},
                      {"peers", Number(s.peers)},
                      {"links", Number(s.links)},
                      {"agents", Number(s.agents)},
                      {"queue_depth", Number(s.queue_depth)},
                      {"in_flight", Number(s.in_flight)},
                      {"succeeded_per_s", Number(s.succeeded_per_s)},
                      {"failed_per_s", Number(s.failed_per_s)},
                      {"requests_per_s", Number(s.requests_per_s)},
                      {"pubsub_per_s", Number(s.pubsub_per_s)},
                      {"resident_bytes", Number(s.resident_bytes)},
                      {"cpu_percent", Number(s.cpu_percent)}});
    }
    const auto started_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(sources.started_at.time_since_epoch()).count();
    return json{{"node_id", sources.node_id},
                {"started_ms", started_ms},
                {"interval_ms", options.interval.count()},
                {"seq", seq},
                {"samples", std::move(list)},
                {"health_changes", json(health_changes)},
                {"leadership", json(leadership)},
                {"scaling", json(scaling)}}
        .dump();
  }

  // Answers the waiters that have a newer sample or whose time is up
  // (`all`: every one); returns the earliest deadline left.
  Clock::time_point AnswerWaiters(bool all) {
    std::vector<std::pair<std::function<void(std::string)>, std::string>> answers;
    Clock::time_point earliest = Clock::time_point::max();
    {
      std::lock_guard lock(mu);
      const auto now = Clock::now();
      for (auto it = waiters.begin(); it != waiters.end();) {
        if (all || seq > it->after || it->deadline <= now) {
          answers.emplace_back(std::move(it->done), JsonLocked(it->after));
          it = waiters.erase(it);
        } else {
          earliest = std::min(earliest, it->deadline);
          ++it;
        }
      }
    }
    for (auto& [done, body] : answers) done(std::move(body));
    return earliest;
  }

  void Run() {
    // The first sample after one interval: the checks have run by then.
    auto next_sample = Clock::now() + options.interval;
    while (true) {
      const auto now = Clock::now();
      if (now >= next_sample) {
        TakeSample();
        next_sample = now + options.interval;
      }
      LookAtAdmin(NowMs());
      const auto earliest = AnswerWaiters(false);
      std::unique_lock lock(mu);
      const auto wake = std::min({next_sample, Clock::now() + kAdminTick, earliest});
      cv.wait_until(lock, wake, [&] { return stopping; });
      if (stopping) break;
    }
    AnswerWaiters(true);
  }
};

std::shared_ptr<History> History::Start(HistorySources sources, HistoryOptions options) {
  std::shared_ptr<History> h(new History());
  h->impl_ = std::make_shared<Impl>();
  h->impl_->sources = std::move(sources);
  h->impl_->options = options;
  h->impl_->options.samples = std::max<std::size_t>(options.samples, 1);
  h->impl_->thread = NamedThread("history", [impl = h->impl_] { impl->Run(); });
  return h;
}

History::~History() { Stop(); }

std::string History::Json(std::uint64_t after) const {
  std::lock_guard lock(impl_->mu);
  return impl_->JsonLocked(after);
}

std::uint64_t History::Latest() const {
  std::lock_guard lock(impl_->mu);
  return impl_->seq;
}

void History::Watch(std::uint64_t after, std::chrono::milliseconds wait,
                    std::function<void(std::string)> done) {
  std::string now;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->seq == after && wait.count() > 0 && !impl_->stopping) {
      impl_->waiters.push_back({after, Clock::now() + wait, std::move(done)});
      impl_->cv.notify_all();
      return;
    }
    now = impl_->JsonLocked(after);
  }
  done(std::move(now));
}

void History::Stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace bzzz::ops
