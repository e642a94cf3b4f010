#include "tasks/cluster_core.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/log.h"

namespace bzzz::tasks {

using nlohmann::json;

namespace {

constexpr SubsystemLog kLog{"tasks"};

constexpr std::size_t kMaxBatch = 512;  // attempts per grant / result / renew message

// An attempt as a grant carries it (an Assignment without the owner's
// bookkeeping: the lease expiry stays with the owner, the owner is the sender).
struct WireJob {
  std::string task_id;
  int attempt = 0;
  std::string agent_id;
  std::string executor;
  std::string input;
  std::int64_t timeout_ms = 0;
};
BZZZ_JSON_STRICT(WireJob, task_id, attempt, agent_id, executor, input, timeout_ms)

json JobJson(const Assignment& a) {
  return WireJob{a.task_id, a.attempt, a.agent_id, a.executor, a.input, a.timeout_ms};
}

}  // namespace

BZZZ_JSON_STRICT(LoadReport, node_id, role, capabilities, executors, queued, in_flight, agents, idle, performance, at_ms)

std::string EncodeReport(const LoadReport& r) {
  json j = r;
  if (r.stranded > 0) j["stranded"] = r.stranded;  // optional: older builds neither send nor need it
  return j.dump();
}

Result<LoadReport> DecodeReport(std::string_view text) {
  const json j = ParseJson(text);
  if (!j.is_object()) return InvalidArgument("load report: not a JSON object");
  try {
    auto r = j.get<LoadReport>();
    if (const auto it = j.find("stranded"); it != j.end()) r.stranded = GetInt<std::int64_t>(*it);
    if (r.node_id.empty() || r.stranded < 0 || r.stranded > r.queued || r.queued < 0 || r.in_flight < 0 || r.agents < 0 || r.idle < 0 || r.idle > r.agents) {
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
  // An owner's backlog: what its idle agents cannot take, and at least what
  // none of its agents can run at all.
  const auto backlog_of = [](const LoadReport& r) { return std::max(r.queued - r.idle, r.stranded); };
  for (const auto& r : reports) {
    if (backlog_of(r) > 0) owners.push_back(&r);
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
            [&](const LoadReport* a, const LoadReport* b) { return backlog_of(*a) > backlog_of(*b); });
  std::vector<Offer> out;
  for (const LoadReport* o : owners) {
    std::int64_t backlog = backlog_of(*o);
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

// --- MasterCore ---

MasterCore::MasterCore(Strategy strategy, std::int64_t report_ttl_ms)
    : strategy_(strategy), report_ttl_ms_(report_ttl_ms) {}

void MasterCore::OnReport(LoadReport report, std::int64_t now_ms) {
  std::string id = report.node_id;
  reports_[id] = {std::move(report), now_ms};
}

std::vector<Outbound> MasterCore::Iterate(std::uint64_t term, std::int64_t now_ms) {
  std::vector<LoadReport> fresh;
  Stats view = stats_;
  view.nodes = 0;
  view.cluster_queued = 0;
  view.cluster_agents = 0;
  view.cluster_idle = 0;
  for (auto it = reports_.begin(); it != reports_.end();) {
    if (now_ms - it->second.second > report_ttl_ms_) {
      it = reports_.erase(it);
      continue;
    }
    const LoadReport& r = it->second.first;
    fresh.push_back(r);
    ++view.nodes;
    view.cluster_queued += r.queued;
    view.cluster_agents += r.agents;
    view.cluster_idle += r.idle;
    ++it;
  }
  const auto offers = PlanTransfers(fresh, strategy_, term, cursor_);
  std::vector<Outbound> out;
  for (const auto& o : offers) {
    reports_.erase(o.owner);
    reports_.erase(o.worker);
    // The worker first: it runs what the owner grants only up to this.
    out.push_back({o.worker, "tasks.expect", json{{"term", o.term}, {"owner", o.owner}, {"count", o.count}}.dump()});
    out.push_back({o.owner, "tasks.offer",
                   json{{"term", o.term},
                        {"worker", o.worker},
                        {"count", o.count},
                        {"role", o.role},
                        {"capabilities", o.capabilities},
                        {"executors", o.executors}}
                       .dump()});
  }
  ++view.iterations;
  view.offers += offers.size();
  stats_ = view;
  return out;
}

// --- LinkCore ---

LinkCore::LinkCore(Options options, LinkHost& host) : options_(std::move(options)), host_(host) {}

LinkCore::Stats LinkCore::stats() const {
  Stats s = stats_;
  s.unacknowledged = unacked_.size();
  return s;
}

std::vector<Outbound> LinkCore::OnMessage(const std::string& from, const std::string& type,
                                          const std::string& payload, std::int64_t now_ms) {
  std::vector<Outbound> out;
  if (type == "tasks.offer") {
    OnOffer(from, payload, out);
  } else if (type == "tasks.grant") {
    OnGrant(from, payload, now_ms);
  } else if (type == "tasks.expect") {
    OnExpect(from, payload, now_ms);
  } else if (type == "tasks.result") {
    OnResult(from, payload, out);
  } else if (type == "tasks.ack") {
    OnAck(payload);
  } else if (type == "tasks.renew") {
    OnRenew(from, payload);
  }
  return out;
}

void LinkCore::OnOffer(const std::string& from, const std::string& payload, std::vector<Outbound>& out) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("term") || !j["term"].is_number_unsigned() || !j.contains("worker") ||
      !j["worker"].is_string() || !j.contains("count") || !j["count"].is_number_integer()) {
    kLog.warn("tasks: malformed offer from {}", from);
    return;
  }
  const std::uint64_t term = GetInt<std::uint64_t>(j["term"]);
  if (options_.admin_of && !options_.admin_of(from, term)) {
    // Not the admin of that term as this node knows it: a deposed admin, a
    // node claiming a term it does not lead, or one that is ahead of us.
    ++stats_.offers_refused;
    ++stats_.offers_unauthorized;
    return;
  }
  if (term < newest_term_) {  // a deposed admin
    ++stats_.offers_refused;
    return;
  }
  newest_term_ = term;
  WorkerSlot slot;
  slot.node_id = j["worker"].get<std::string>();
  const int count = std::clamp(GetInt<int>(j["count"]), 0, static_cast<int>(kMaxBatch));
  if (slot.node_id == options_.node_id || count == 0) return;
  slot.agent_id = "remote:" + slot.node_id;
  slot.free = count;
  if (auto r = j.find("role"); r != j.end() && r->is_string()) slot.role = r->get<std::string>();
  for (auto [key, list] : {std::pair{"capabilities", &slot.capabilities}, {"executors", &slot.executors}}) {
    if (auto c = j.find(key); c != j.end() && c->is_array()) {
      for (const auto& x : *c) {
        if (x.is_string()) list->push_back(x.get<std::string>());
      }
    }
  }
  // Only tasks the worker's agents can run (capabilities, role, executor).
  const std::string worker = slot.node_id;
  auto jobs = host_.Lend(std::move(slot));
  if (jobs.empty()) return;
  json list = json::array();
  for (const auto& a : jobs) list.push_back(JobJson(a));
  // Not delivered: the leases expire and the tasks run again.
  out.push_back({worker, "tasks.grant", json{{"jobs", list}}.dump()});
  stats_.lent += jobs.size();
}

void LinkCore::OnGrant(const std::string& from, const std::string& payload, std::int64_t now_ms) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("jobs") || !j["jobs"].is_array() || j["jobs"].size() > kMaxBatch) {
    kLog.warn("tasks: malformed grant from {}", from);
    return;
  }
  std::vector<Assignment> jobs;
  try {
    for (const auto& x : j["jobs"]) {
      auto w = x.get<WireJob>();
      Assignment a;
      a.task_id = std::move(w.task_id);
      a.attempt = w.attempt;
      a.agent_id = std::move(w.agent_id);
      a.executor = std::move(w.executor);
      a.input = std::move(w.input);
      a.timeout_ms = w.timeout_ms;
      a.owner = from;
      if (a.agent_id != "remote:" + options_.node_id) continue;  // not leased to us
      jobs.push_back(std::move(a));
    }
  } catch (const json::exception&) {
    kLog.warn("tasks: malformed grant from {}", from);
    return;
  }
  AcceptGrant(from, std::move(jobs), now_ms);
}

void LinkCore::OnExpect(const std::string& from, const std::string& payload, std::int64_t now_ms) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("term") || !j["term"].is_number_unsigned() || !j.contains("owner") ||
      !j["owner"].is_string() || !j.contains("count") || !j["count"].is_number_integer()) {
    kLog.warn("tasks: malformed expectation from {}", from);
    return;
  }
  const std::uint64_t term = GetInt<std::uint64_t>(j["term"]);
  if (options_.admin_of && !options_.admin_of(from, term)) {
    ++stats_.offers_unauthorized;
    return;
  }
  const std::string owner = j["owner"].get<std::string>();
  const int count = std::clamp(GetInt<int>(j["count"]), 0, static_cast<int>(kMaxBatch));
  auto& e = expected_[owner];
  e.count = std::min<int>(e.count + count, 4 * static_cast<int>(kMaxBatch));
  e.until_ms = now_ms + options_.expectation_ms;
  std::vector<Assignment> ready;
  if (auto early = early_.find(owner); early != early_.end()) {
    for (auto& g : early->second) {
      for (auto& a : g.jobs) ready.push_back(std::move(a));
    }
    early_.erase(early);
  }
  AcceptGrant(owner, std::move(ready), now_ms);
}

void LinkCore::AcceptGrant(const std::string& owner, std::vector<Assignment> jobs, std::int64_t now_ms) {
  if (jobs.empty()) return;
  if (options_.admin_of) {
    auto it = expected_.find(owner);
    if (it == expected_.end() || it->second.until_ms < now_ms || it->second.count <= 0) {
      // Perhaps the expectation is still on its way: wait for it (bounded).
      auto& early = early_[owner];
      if (early.size() < 16) {
        early.push_back({std::move(jobs), now_ms});
      } else {
        stats_.grants_refused += jobs.size();
      }
      return;
    }
    const std::size_t allowed = std::min<std::size_t>(jobs.size(), static_cast<std::size_t>(it->second.count));
    it->second.count -= static_cast<int>(allowed);
    if (allowed < jobs.size()) {
      stats_.grants_refused += jobs.size() - allowed;
      kLog.warn("tasks: {} granted {} more attempt(s) than the admin assigned: refused", owner,
                   jobs.size() - allowed);
      jobs.resize(allowed);
    }
  }
  stats_.borrowed += jobs.size();
  host_.AcceptForeign(std::move(jobs));
}

void LinkCore::Finished(const Assignment& job, const AttemptOutcome& outcome, std::int64_t now_ms) {
  unacked_[{job.task_id, job.attempt}] = Pending{job, outcome, now_ms, -1};
}

void LinkCore::OnResult(const std::string& from, const std::string& payload, std::vector<Outbound>& out) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("results") || !j["results"].is_array() || j["results"].size() > kMaxBatch) {
    kLog.warn("tasks: malformed result from {}", from);
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
    Status s = host_.RemoteComplete(task, attempt, "remote:" + from, o);
    ++stats_.results_received;
    if (!s.ok()) ++stats_.stale_results;
    acks.push_back({{"task_id", task}, {"attempt", attempt}});
  }
  // Acknowledge even stale ones: the sender must stop resending.
  out.push_back({from, "tasks.ack", json{{"acks", acks}}.dump()});
}

void LinkCore::OnAck(const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("acks") || !j["acks"].is_array()) return;
  for (const auto& a : j["acks"]) {
    if (a.is_object() && a.contains("task_id") && a["task_id"].is_string() && a.contains("attempt") &&
        a["attempt"].is_number_integer()) {
      unacked_.erase({a["task_id"].get<std::string>(), GetInt<int>(a["attempt"])});
    }
  }
}

void LinkCore::OnRenew(const std::string& from, const std::string& payload) {
  const json j = ParseJson(payload);
  if (!j.is_object() || !j.contains("leases") || !j["leases"].is_array()) return;
  for (const auto& l : j["leases"]) {
    if (l.is_object() && l.contains("task_id") && l["task_id"].is_string() && l.contains("attempt") &&
        l["attempt"].is_number_integer()) {
      (void)host_.RemoteRenew(l["task_id"].get<std::string>(), GetInt<int>(l["attempt"]), "remote:" + from);
    }
  }
}

std::vector<Outbound> LinkCore::Tick(std::int64_t now_ms, LoadReport load) {
  std::vector<Outbound> out;
  // Grants whose expectation never came are refused (their leases expire
  // at the owner and the tasks run again elsewhere).
  for (auto it = early_.begin(); it != early_.end();) {
    auto& list = it->second;
    for (auto g = list.begin(); g != list.end();) {
      if (now_ms - g->at_ms > options_.early_grant_ms) {
        stats_.grants_refused += g->jobs.size();
        kLog.warn("tasks: a grant of {} attempt(s) from {} that the admin did not assign was refused",
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
    if (now_ms - p.first_ms > options_.give_up_after_ms) {
      kLog.warn("tasks: giving up reporting {} attempt {} to {}", p.job.task_id, p.job.attempt, p.job.owner);
      it = unacked_.erase(it);
      continue;
    }
    if (p.last_sent_ms < 0 || now_ms - p.last_sent_ms >= options_.resend_interval_ms) {
      auto& list = results[p.job.owner];
      if (list.size() < kMaxBatch) {
        list.push_back({{"task_id", p.job.task_id},
                        {"attempt", p.job.attempt},
                        {"agent_id", p.job.agent_id},
                        {"state", AttemptStateName(p.outcome.state)},
                        {"result", p.outcome.result},
                        {"error", p.outcome.error}});
        p.last_sent_ms = now_ms;
        ++stats_.results_sent;
      }
    }
    ++it;
  }
  for (auto& [owner, list] : results) out.push_back({owner, "tasks.result", DumpJson(json{{"results", list}})});
  if (now_ms >= next_renew_ms_) {
    next_renew_ms_ = now_ms + options_.renew_interval_ms;
    std::map<std::string, json> leases;
    for (const auto& a : host_.ForeignHeld()) {
      auto& l = leases[a.owner];
      if (l.size() < 4 * kMaxBatch) l.push_back({{"task_id", a.task_id}, {"attempt", a.attempt}});
    }
    for (auto& [owner, l] : leases) out.push_back({owner, "tasks.renew", json{{"leases", l}}.dump()});
  }
  if (now_ms >= next_report_ms_) {
    next_report_ms_ = now_ms + options_.report_interval_ms;
    load.node_id = options_.node_id;
    load.role = options_.role;
    load.capabilities = options_.capabilities;
    load.executors = options_.executors;
    load.queued = static_cast<std::int64_t>(host_.ReadyCount());
    load.stranded = std::min<std::int64_t>(static_cast<std::int64_t>(host_.StrandedCount()), load.queued);
    load.in_flight = static_cast<std::int64_t>(host_.InFlight());
    // Only a changed load, or a keepalive: idle clusters stay quiet.
    const bool changed = load.queued != last_load_.queued || load.stranded != last_load_.stranded ||
                         load.in_flight != last_load_.in_flight ||
                         load.agents != last_load_.agents || load.idle != last_load_.idle;
    if (changed || last_report_ms_ < 0 || now_ms - last_report_ms_ >= options_.report_keepalive_ms) {
      out.push_back({"", "tasks.load", EncodeReport(load)});
      last_load_ = std::move(load);
      last_report_ms_ = now_ms;
    }
  }
  return out;
}

std::vector<Outbound> LinkCore::HandBackQueued() {
  std::map<std::string, json> back;
  for (const auto& job : host_.TakeForeignQueued()) {
    back[job.owner].push_back({{"task_id", job.task_id},
                               {"attempt", job.attempt},
                               {"agent_id", job.agent_id},
                               {"state", "handed_back"},
                               {"result", ""},
                               {"error", "the borrower stopped"}});
  }
  std::vector<Outbound> out;
  for (auto& [owner, results] : back) out.push_back({owner, "tasks.result", DumpJson(json{{"results", results}})});
  return out;
}

}  // namespace bzzz::tasks
