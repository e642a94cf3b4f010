#include "tasks/cluster.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/clock.h"

namespace bzzz::tasks {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxBatch = 512;  // attempts per grant / result / renew message

json JobJson(const Assignment& a) {
  return {{"task_id", a.task_id}, {"attempt", a.attempt}, {"agent_id", a.agent_id}, {"executor", a.executor},
          {"input", a.input},     {"timeout_ms", a.timeout_ms}};
}

}  // namespace

std::string EncodeReport(const LoadReport& r) {
  return json{{"node_id", r.node_id}, {"role", r.role},     {"capabilities", r.capabilities}, {"executors", r.executors},
              {"queued", r.queued},   {"in_flight", r.in_flight}, {"agents", r.agents},
              {"idle", r.idle},       {"performance", r.performance}, {"at_ms", r.at_ms}}
      .dump();
}

Result<LoadReport> DecodeReport(std::string_view text) {
  const json j = ParseJson(text);
  if (!j.is_object()) return InvalidArgument("load report: not a JSON object");
  try {
    LoadReport r;
    r.node_id = j.at("node_id").get<std::string>();
    r.role = j.at("role").get<std::string>();
    r.capabilities = j.at("capabilities").get<std::vector<std::string>>();
    r.executors = j.at("executors").get<std::vector<std::string>>();
    r.queued = GetInt<std::int64_t>(j.at("queued"));
    r.in_flight = GetInt<std::int64_t>(j.at("in_flight"));
    r.agents = GetInt<int>(j.at("agents"));
    r.idle = GetInt<int>(j.at("idle"));
    r.performance = j.at("performance").get<double>();
    r.at_ms = GetInt<std::int64_t>(j.at("at_ms"));
    if (r.node_id.empty() || r.queued < 0 || r.in_flight < 0 || r.agents < 0 || r.idle < 0 || r.idle > r.agents) {
      return InvalidArgument("load report: out of range");
    }
    return r;
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("load report: ") + e.what());
  }
}

std::vector<Offer> PlanTransfers(const std::vector<LoadReport>& reports, Strategy strategy, std::uint64_t term,
                                 std::size_t& cursor, int max_per_offer, int per_idle_agent) {
  std::vector<const LoadReport*> owners;
  std::vector<WorkerSlot> spare;
  for (const auto& r : reports) {
    if (r.queued > r.idle) owners.push_back(&r);
    if (r.queued == 0 && r.idle > 0) {
      WorkerSlot s;
      s.agent_id = r.node_id;
      s.node_id = r.node_id;
      s.role = r.role;
      s.capabilities = r.capabilities;
      s.executors = r.executors;
      s.free = r.idle * per_idle_agent;
      s.load = static_cast<int>(r.in_flight);
      s.performance = r.performance;
      spare.push_back(std::move(s));
    }
  }
  std::sort(owners.begin(), owners.end(),
            [](const LoadReport* a, const LoadReport* b) { return a->queued - a->idle > b->queued - b->idle; });
  std::vector<Offer> out;
  for (const LoadReport* o : owners) {
    std::int64_t backlog = o->queued - o->idle;
    while (backlog > 0) {
      const int pick = PickWorker(strategy, spare, Requirements{}, cursor);
      if (pick < 0) return out;
      WorkerSlot& w = spare[static_cast<std::size_t>(pick)];
      const int count = static_cast<int>(std::min<std::int64_t>({backlog, w.free, max_per_offer}));
      out.push_back(Offer{term, o->node_id, w.node_id, count, w.role, w.capabilities, w.executors});
      w.free -= count;
      w.load += count;
      backlog -= count;
    }
  }
  return out;
}

// --- MasterLoop ---

MasterLoop::MasterLoop(ClusterTransport& transport, Strategy strategy, std::chrono::milliseconds interval,
                       std::chrono::milliseconds report_ttl)
    : transport_(transport), strategy_(strategy), interval_(interval), report_ttl_(report_ttl) {}

MasterLoop::~MasterLoop() {
  std::unique_lock lock(mu_);
  running_.reset();
  cv_.notify_all();
  lock.unlock();
  if (thread_.joinable()) thread_.join();
}

Status MasterLoop::Start(std::uint64_t term) {
  std::unique_lock lock(mu_);
  running_.reset();
  cv_.notify_all();
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  lock.lock();
  running_ = term;
  stats_.running = true;
  stats_.term = term;
  thread_ = std::thread([this, term] { Run(term); });
  spdlog::info("nO master loop: started for term {}", term);
  return Status::Ok();
}

void MasterLoop::Stop(std::uint64_t term) {
  std::unique_lock lock(mu_);
  if (!running_ || *running_ != term) return;
  running_.reset();
  stats_.running = false;
  cv_.notify_all();
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  spdlog::info("nO master loop: stopped (term {})", term);
}

void MasterLoop::OnReport(LoadReport report) {
  std::lock_guard lock(mu_);
  std::string id = report.node_id;
  reports_[id] = {std::move(report), SteadyClock::now()};
}

MasterLoop::Stats MasterLoop::GetStats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void MasterLoop::Run(std::uint64_t term) {
  std::size_t cursor = 0;
  std::unique_lock lock(mu_);
  while (running_ && *running_ == term) {
    cv_.wait_for(lock, interval_);
    if (!running_ || *running_ != term) break;
    const auto now = SteadyClock::now();
    std::vector<LoadReport> fresh;
    Stats view = stats_;
    view.nodes = 0;
    view.cluster_queued = 0;
    view.cluster_agents = 0;
    view.cluster_idle = 0;
    for (auto it = reports_.begin(); it != reports_.end();) {
      if (now - it->second.second > report_ttl_) {
        it = reports_.erase(it);
        continue;
      }
      fresh.push_back(it->second.first);
      ++view.nodes;
      view.cluster_queued += it->second.first.queued;
      view.cluster_agents += it->second.first.agents;
      view.cluster_idle += it->second.first.idle;
      ++it;
    }
    auto offers = PlanTransfers(fresh, strategy_, term, cursor);
    // An offer changes the picture: forget both sides' reports until they report again.
    for (const auto& o : offers) {
      reports_.erase(o.owner);
      reports_.erase(o.worker);
    }
    ++view.iterations;
    view.offers += offers.size();
    stats_ = view;
    lock.unlock();
    for (const auto& o : offers) {
      // The worker first: it runs what the owner grants only up to this.
      (void)transport_.Send(o.worker, "tasks.expect",
                            json{{"term", o.term}, {"owner", o.owner}, {"count", o.count}}.dump());
      json j = {{"term", o.term},          {"worker", o.worker},      {"count", o.count},
                {"role", o.role},          {"capabilities", o.capabilities}, {"executors", o.executors}};
      if (Status s = transport_.Send(o.owner, "tasks.offer", j.dump()); !s.ok()) {
        spdlog::debug("nO master loop: offer to {}: {}", o.owner, s.ToString());
      }
    }
    lock.lock();
  }
}

// --- ClusterLink ---

ClusterLink::ClusterLink(Options options, TaskManager& manager, ClusterTransport& transport,
                         std::function<void(int*, int*, double*)> load)
    : options_(std::move(options)), manager_(manager), transport_(transport), load_(std::move(load)) {}

ClusterLink::~ClusterLink() { Stop(); }

void ClusterLink::Start() {
  manager_.OnForeignDone([this](const Assignment& job, const AttemptOutcome& outcome) { Finished(job, outcome); });
  thread_ = std::thread([this] { Loop(); });
}

void ClusterLink::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Borrowed work nobody started goes back to its owners at once.
  std::map<std::string, json> back;
  for (const auto& job : manager_.TakeForeignQueued()) {
    back[job.owner].push_back({{"task_id", job.task_id}, {"attempt", job.attempt}, {"agent_id", job.agent_id},
                               {"state", "handed_back"}, {"result", ""}, {"error", "the borrower stopped"}});
  }
  for (auto& [owner, results] : back) (void)transport_.Send(owner, "tasks.result", DumpJson(json{{"results", results}}));
  manager_.OnForeignDone(nullptr);
}

ClusterLink::Stats ClusterLink::GetStats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.unacknowledged = unacked_.size();
  return s;
}

void ClusterLink::OnMessage(const std::string& from, const std::string& type, const std::string& payload) {
  if (type == "tasks.offer") return OnOffer(from, payload);
  if (type == "tasks.grant") return OnGrant(from, payload);
  if (type == "tasks.expect") return OnExpect(from, payload);
  if (type == "tasks.result") return OnResult(from, payload);
  if (type == "tasks.ack") return OnAck(payload);
  if (type == "tasks.renew") return OnRenew(from, payload);
}

void ClusterLink::OnOffer(const std::string& from, const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("term") || !j["term"].is_number_unsigned() || !j.contains("worker") ||
      !j["worker"].is_string() || !j.contains("count") || !j["count"].is_number_integer()) {
    spdlog::warn("tasks: malformed offer from {}", from);
    return;
  }
  const std::uint64_t term = GetInt<std::uint64_t>(j["term"]);
  if (options_.admin_of && !options_.admin_of(from, term)) {
    // Not the admin of that term as this node knows it: a deposed admin, a
    // node claiming a term it does not lead, or one that is ahead of us.
    std::lock_guard lock(mu_);
    ++stats_.offers_refused;
    ++stats_.offers_unauthorized;
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (term < newest_term_) {  // a deposed admin
      ++stats_.offers_refused;
      return;
    }
    newest_term_ = term;
  }
  const std::string worker = j["worker"].get<std::string>();
  const int count = std::clamp(GetInt<int>(j["count"]), 0, static_cast<int>(kMaxBatch));
  if (worker == options_.node_id || count == 0) return;
  std::string role;
  std::vector<std::string> caps, kinds;
  if (auto r = j.find("role"); r != j.end() && r->is_string()) role = r->get<std::string>();
  for (auto [key, out] : {std::pair{"capabilities", &caps}, {"executors", &kinds}}) {
    if (auto c = j.find(key); c != j.end() && c->is_array()) {
      for (const auto& x : *c) {
        if (x.is_string()) out->push_back(x.get<std::string>());
      }
    }
  }
  // Only tasks the worker's agents can run (capabilities, role, executor).
  auto jobs = manager_.Lend(worker, role, caps, kinds, count);
  if (jobs.empty()) return;
  json list = json::array();
  for (const auto& a : jobs) list.push_back(JobJson(a));
  if (Status s = transport_.Send(worker, "tasks.grant", json{{"jobs", list}}.dump()); !s.ok()) {
    // Not delivered: the leases expire and the tasks run again.
    spdlog::debug("tasks: grant to {}: {}", worker, s.ToString());
  }
  std::lock_guard lock(mu_);
  stats_.lent += jobs.size();
}

void ClusterLink::OnGrant(const std::string& from, const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("jobs") || !j["jobs"].is_array() || j["jobs"].size() > kMaxBatch) {
    spdlog::warn("tasks: malformed grant from {}", from);
    return;
  }
  std::vector<Assignment> jobs;
  try {
    for (const auto& x : j["jobs"]) {
      Assignment a;
      a.task_id = x.at("task_id").get<std::string>();
      a.attempt = GetInt<int>(x.at("attempt"));
      a.agent_id = x.at("agent_id").get<std::string>();
      a.executor = x.at("executor").get<std::string>();
      a.input = x.at("input").get<std::string>();
      a.timeout_ms = GetInt<std::int64_t>(x.at("timeout_ms"));
      a.owner = from;
      if (a.agent_id != "remote:" + options_.node_id) continue;  // not leased to us
      jobs.push_back(std::move(a));
    }
  } catch (const json::exception&) {
    spdlog::warn("tasks: malformed grant from {}", from);
    return;
  }
  AcceptGrant(from, std::move(jobs));
}

void ClusterLink::OnExpect(const std::string& from, const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("term") || !j["term"].is_number_unsigned() || !j.contains("owner") ||
      !j["owner"].is_string() || !j.contains("count") || !j["count"].is_number_integer()) {
    spdlog::warn("tasks: malformed expectation from {}", from);
    return;
  }
  const std::uint64_t term = GetInt<std::uint64_t>(j["term"]);
  if (options_.admin_of && !options_.admin_of(from, term)) {
    std::lock_guard lock(mu_);
    ++stats_.offers_unauthorized;
    return;
  }
  const std::string owner = j["owner"].get<std::string>();
  const int count = std::clamp(GetInt<int>(j["count"]), 0, static_cast<int>(kMaxBatch));
  std::vector<Assignment> ready;
  {
    std::lock_guard lock(mu_);
    auto& e = expected_[owner];
    e.count = std::min<int>(e.count + count, 4 * static_cast<int>(kMaxBatch));
    e.until = SteadyClock::now() + std::chrono::seconds(10);
    auto early = early_.find(owner);
    if (early != early_.end()) {
      for (auto& g : early->second) {
        for (auto& a : g.jobs) ready.push_back(std::move(a));
      }
      early_.erase(early);
    }
  }
  if (!ready.empty()) AcceptGrant(owner, std::move(ready));
}

void ClusterLink::AcceptGrant(const std::string& owner, std::vector<Assignment> jobs) {
  if (jobs.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (options_.admin_of) {
      const auto now = SteadyClock::now();
      auto it = expected_.find(owner);
      if (it == expected_.end() || it->second.until < now || it->second.count <= 0) {
        // Perhaps the expectation is still on its way: wait for it (bounded).
        auto& early = early_[owner];
        if (early.size() < 16) {
          early.push_back({std::move(jobs), now});
        } else {
          stats_.grants_refused += jobs.size();
        }
        return;
      }
      const std::size_t allowed = std::min<std::size_t>(jobs.size(), static_cast<std::size_t>(it->second.count));
      it->second.count -= static_cast<int>(allowed);
      if (allowed < jobs.size()) {
        stats_.grants_refused += jobs.size() - allowed;
        spdlog::warn("tasks: {} granted {} more attempt(s) than the admin assigned: refused", owner,
                     jobs.size() - allowed);
        jobs.resize(allowed);
      }
    }
    stats_.borrowed += jobs.size();
  }
  manager_.AcceptForeign(std::move(jobs));
}

void ClusterLink::Finished(const Assignment& job, const AttemptOutcome& outcome) {
  std::lock_guard lock(mu_);
  const auto now = SteadyClock::now();
  unacked_[{job.task_id, job.attempt}] = Pending{job, outcome, now, SteadyClock::time_point{}};
  cv_.notify_all();
}

void ClusterLink::OnResult(const std::string& from, const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("results") || !j["results"].is_array() || j["results"].size() > kMaxBatch) {
    spdlog::warn("tasks: malformed result from {}", from);
    return;
  }
  json acks = json::array();
  for (const auto& r : j["results"]) {
    if (!r.is_object() || !r.contains("task_id") || !r["task_id"].is_string() || !r.contains("attempt") ||
        !r["attempt"].is_number_integer() || !r.contains("state") || !r["state"].is_string()) {
      continue;
    }
    auto state = ParseAttemptState(r["state"].get<std::string>());
    if (!state) continue;
    AttemptOutcome o;
    o.state = *state;
    o.result = r.value("result", "");
    o.error = r.value("error", "");
    const std::string task = r["task_id"];
    const int attempt = r["attempt"];
    // Only the lease holder ("remote:<sender>") can end the attempt.
    Status s = manager_.RemoteComplete(task, attempt, "remote:" + from, o);
    {
      std::lock_guard lock(mu_);
      ++stats_.results_received;
      if (!s.ok()) ++stats_.stale_results;
    }
    acks.push_back({{"task_id", task}, {"attempt", attempt}});
  }
  // Acknowledge even stale ones: the sender must stop resending.
  (void)transport_.Send(from, "tasks.ack", json{{"acks", acks}}.dump());
}

void ClusterLink::OnAck(const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("acks") || !j["acks"].is_array()) return;
  std::lock_guard lock(mu_);
  for (const auto& a : j["acks"]) {
    if (a.is_object() && a.contains("task_id") && a["task_id"].is_string() && a.contains("attempt") &&
        a["attempt"].is_number_integer()) {
      unacked_.erase({a["task_id"].get<std::string>(), GetInt<int>(a["attempt"])});
    }
  }
}

void ClusterLink::OnRenew(const std::string& from, const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("leases") || !j["leases"].is_array()) return;
  for (const auto& l : j["leases"]) {
    if (l.is_object() && l.contains("task_id") && l["task_id"].is_string() && l.contains("attempt") &&
        l["attempt"].is_number_integer()) {
      (void)manager_.RemoteRenew(l["task_id"].get<std::string>(), GetInt<int>(l["attempt"]), "remote:" + from);
    }
  }
}

void ClusterLink::Loop() {
  auto next_report = SteadyClock::now();
  auto last_report = SteadyClock::time_point{};
  LoadReport last_load;  // the last report sent (its load figures)
  auto next_renew = SteadyClock::now();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (stopping_) break;
    const auto now = SteadyClock::now();
    // Grants whose expectation never came are refused (their leases expire
    // at the owner and the tasks run again elsewhere).
    for (auto it = early_.begin(); it != early_.end();) {
      auto& list = it->second;
      for (auto g = list.begin(); g != list.end();) {
        if (now - g->at > std::chrono::seconds(2)) {
          stats_.grants_refused += g->jobs.size();
          spdlog::warn("tasks: a grant of {} attempt(s) from {} that the admin did not assign was refused",
                       g->jobs.size(), it->first);
          g = list.erase(g);
        } else {
          ++g;
        }
      }
      it = list.empty() ? early_.erase(it) : std::next(it);
    }
    // Results: new ones at once, unacknowledged ones again every resend interval.
    std::map<std::string, json> results;
    for (auto it = unacked_.begin(); it != unacked_.end();) {
      Pending& p = it->second;
      if (now - p.first > options_.give_up_after) {
        spdlog::warn("tasks: giving up reporting {} attempt {} to {}", p.job.task_id, p.job.attempt, p.job.owner);
        it = unacked_.erase(it);
        continue;
      }
      if (p.last_sent == SteadyClock::time_point{} || now - p.last_sent >= options_.resend_interval) {
        auto& list = results[p.job.owner];
        if (list.size() < kMaxBatch) {
          list.push_back({{"task_id", p.job.task_id},
                          {"attempt", p.job.attempt},
                          {"agent_id", p.job.agent_id},
                          {"state", AttemptStateName(p.outcome.state)},
                          {"result", p.outcome.result},
                          {"error", p.outcome.error}});
          p.last_sent = now;
        }
      }
      ++it;
    }
    const bool report_due = now >= next_report;
    const bool renew_due = now >= next_renew;
    if (report_due) next_report = now + options_.report_interval;
    if (renew_due) next_renew = now + std::chrono::milliseconds(1000);
    std::uint64_t sent = 0;
    for (const auto& [owner, list] : results) sent += list.size();
    stats_.results_sent += sent;
    lock.unlock();
    for (auto& [owner, list] : results) (void)transport_.Send(owner, "tasks.result", DumpJson(json{{"results", list}}));
    if (renew_due) {
      std::map<std::string, json> leases;
      for (const auto& a : manager_.ForeignHeld()) {
        auto& l = leases[a.owner];
        if (l.size() < 4 * kMaxBatch) l.push_back({{"task_id", a.task_id}, {"attempt", a.attempt}});
      }
      for (auto& [owner, l] : leases) (void)transport_.Send(owner, "tasks.renew", json{{"leases", l}}.dump());
    }
    if (report_due) {
      LoadReport r;
      r.node_id = options_.node_id;
      r.role = options_.role;
      r.capabilities = options_.capabilities;
      r.executors = options_.executors;
      r.queued = static_cast<std::int64_t>(manager_.ReadyCount());
      r.in_flight = static_cast<std::int64_t>(manager_.InFlight());
      if (load_) load_(&r.agents, &r.idle, &r.performance);
      r.at_ms = UnixMillisNow();
      // Only a changed load, or a keepalive: idle clusters stay quiet.
      const bool changed = r.queued != last_load.queued || r.in_flight != last_load.in_flight ||
                           r.agents != last_load.agents || r.idle != last_load.idle;
      if (changed || now - last_report >= options_.report_keepalive) {
        (void)transport_.Broadcast(EncodeReport(r));
        last_load = r;
        last_report = now;
      }
    }
    lock.lock();
  }
}

}  // namespace bzzz::tasks
