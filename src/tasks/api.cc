#include "tasks/api.h"

#include <algorithm>
#include <optional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/json.h"
#include "base/log.h"
#include "election/admin_services.h"
#include "executors/executors.h"
#include "executors/secrets.h"
#include "p2p/p2p.h"
#include "p2p/topics.h"
#include "tasks/cluster.h"
#include "tasks/codec.h"
#include "tasks/manager.h"
#include "tasks/pool.h"

namespace bzzz::tasks {

using nlohmann::json;

namespace {

constexpr SubsystemLog kLog{"tasks"};

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, DumpJson(body)); }

http::Response BadRequest(const std::string& message, const std::string& request_id) {
  return http::ErrorResponse(400, "bad_request", message, request_id);
}

// A non-negative integer query parameter; InvalidArgument when malformed.
Strategy mo_strategy(const config::Config& config) {
  return ParseStrategy(config.tasks.strategy).value_or(Strategy::kLeastLoaded);
}

json AgentJson(const AgentInfo& a) {
  return {{"id", a.id},
          {"role", a.role},
          {"capabilities", a.capabilities},
          {"model", a.model},
          {"state", AgentStateName(a.state)},
          {"last_heartbeat_ms", a.last_heartbeat_ms},
          {"current_task", a.current_task.empty() ? json(nullptr) : json(a.current_task)},
          {"stats",
           {{"completed", a.completed},
            {"succeeded", a.succeeded},
            {"failed", a.failed},
            {"restarts", a.restarts},
            {"mean_seconds", a.completed ? a.total_seconds / static_cast<double>(a.completed) : 0.0},
            {"performance_score", a.performance}}},
          {"last_error", a.last_error}};
}

json SummaryJson(const PoolSummary& s) {
  return {{"size", s.size},         {"active", s.active},           {"idle", s.idle},
          {"failed", s.failed},     {"draining", s.draining},       {"healthy_ratio", s.healthy_ratio},
          {"last_decision", s.last_decision}, {"last_decision_ms", s.last_decision_ms}};
}

constexpr const char* kClusterTypes[] = {"tasks.offer", "tasks.expect", "tasks.grant", "tasks.result", "tasks.ack",
                                         "tasks.renew"};

// Cluster messages over the P2P layer: direct (sealed) messages between
// nodes, load reports on the coordination topic.
class P2pTransport final : public ClusterTransport {
 public:
  // `local` takes messages this node sends to itself (the admin's offers to
  // its own tasks), which the P2P layer does not deliver.
  P2pTransport(p2p::P2pNode& p2p, std::function<void(const std::string&, const std::string&)> local)
      : p2p_(p2p), local_(std::move(local)) {}
  Status Send(const std::string& node_id, const std::string& type, std::string payload) override {
    if (node_id == p2p_.node_id()) {
      local_(type, payload);
      return Status::Ok();
    }
    return p2p_.SendDirect(node_id, type, std::move(payload));
  }
  Status Broadcast(std::string payload) override {
    return p2p_.Publish(p2p::kCoordinationTopic, "tasks.load", std::move(payload));
  }

 private:
  p2p::P2pNode& p2p_;
  std::function<void(const std::string&, const std::string&)> local_;
};

}  // namespace

namespace {

// Principals own the tasks they submit: another principal needs tasks:admin
// to read a task's input, or to cancel, replay or purge it.
struct Viewer {
  std::string principal;
  bool admin = false;  // holds tasks:admin
};

Viewer ViewerOf(const http::Request& req) { return {req.identity.principal, req.Allowed("tasks:admin")}; }

bool Owns(const Task& t, const Viewer& v) { return v.admin || (!t.submitter.empty() && t.submitter == v.principal); }

// What another principal's task shows of a progress line (an executor's
// output): that there was one, not what it said.
constexpr char kHiddenDetail[] = "(hidden: another principal's task)";

// The task as this caller may see it: without its input and the text of
// its progress lines when another principal submitted it.
json View(const Task& t, const Viewer& v) {
  json j = TaskToApiJson(t);
  if (!Owns(t, v)) {
    j.erase("input");
    j["input_hidden"] = true;
    for (auto& e : j["events"]) {
      if (e.value("type", "") == "progress") e["detail"] = kHiddenDetail;
    }
  }
  return j;
}

// One task as an answer: View, written directly (TaskDocument) when the
// view is the whole document (the owner, nothing to mask), which is the
// common case of a submit's 201.
http::Response TaskAnswer(int status, const Task& t, const Viewer& v) {
  if (Owns(t, v) && !InputMayCarrySecrets(t.input)) return http::Response::Json(status, TaskDocument(t));
  return JsonOk(status, View(t, v));
}

// 403 unless the caller owns task `id` (NotFound and other failures as they are).
std::optional<http::Response> RefuseUnlessOwner(TaskManager& manager, const http::Request& req, const char* what) {
  auto t = manager.Get(std::string(req.Param("id")));
  if (!t.ok()) return http::ErrorFromStatus(t.status(), req.request_id);
  if (Owns(*t, ViewerOf(req))) return std::nullopt;
  return http::ErrorResponse(403, "forbidden",
                             std::string(what) + " a task another principal submitted (" +
                                 (t->submitter.empty() ? std::string("unknown") : t->submitter) +
                                 ") needs the permission tasks:admin",
                             req.request_id);
}

}  // namespace

class TaskServices::Impl {
 public:
  config::Config config;
  std::string node_id;
  std::unique_ptr<executors::ExecutorRegistry> executors;
  std::unique_ptr<TaskManager> manager;
  std::unique_ptr<AgentPool> pool;
  p2p::P2pNode* p2p = nullptr;
  std::unique_ptr<P2pTransport> transport;
  std::unique_ptr<ClusterLink> link;
  std::unique_ptr<MasterLoop> master;
  std::mutex help_mu;
  HelpDesk help_desk;  // under help_mu
  std::function<void(const Task&)> finished;  // under help_mu
  // Whether bubblewrap runs here, probed at most once a minute by the check.
  std::mutex sandbox_mu;
  Status sandbox_status;
  std::chrono::steady_clock::time_point sandbox_probed{};

  Status SandboxStatus() {
    std::lock_guard lock(sandbox_mu);
    const auto now = std::chrono::steady_clock::now();
    if (sandbox_probed == std::chrono::steady_clock::time_point{} || now - sandbox_probed > std::chrono::minutes(1)) {
      sandbox_status = executors::Sandbox(config.agents.sandbox, config.node.data_dir).Probe();
      sandbox_probed = now;
    }
    return sandbox_status;
  }

  // Stops the cluster protocol (before the pool and manager).
  void StopCluster() {
    if (p2p) {
      p2p->Unsubscribe(p2p::kCoordinationTopic, "tasks");
      for (const char* type : kClusterTypes) p2p->OnDirect(type, [](const p2p::Message&) {});
    }
    if (link) link->Stop();
  }

  http::Response Page(std::vector<Task> list, std::size_t limit, const http::Request& req) {
    json items = json::array();
    const Viewer viewer = ViewerOf(req);
    for (const auto& t : list) items.push_back(View(t, viewer));
    json out = {{"tasks", std::move(items)}, {"count", list.size()}};
    out["next_before"] = list.size() == limit && !list.empty() ? json(list.back().seq) : json(nullptr);
    return JsonOk(200, out);
  }

  // A page of every node's tasks: the cursor is the last task's id.
  http::Response ClusterPage(std::vector<Task> list, std::size_t limit, const http::Request& req) {
    json items = json::array();
    const Viewer viewer = ViewerOf(req);
    for (const auto& t : list) items.push_back(View(t, viewer));
    json out = {{"tasks", std::move(items)}, {"count", list.size()}};
    out["next_before_id"] = list.size() == limit && !list.empty() ? json(list.back().id) : json(nullptr);
    return JsonOk(200, out);
  }
};

Result<std::shared_ptr<TaskServices>> TaskServices::Start(std::shared_ptr<TaskRepository> store,
                                                          const config::Config& config, const std::string& node_id,
                                                          prometheus::Registry* metrics, p2p::P2pNode* p2p,
                                                          election::AdminServices* admin,
                                                          std::function<bool(const std::string&, std::uint64_t)> admin_of,
                                                          std::shared_ptr<const executors::SecretSealer> sealer,
                                                          std::shared_ptr<cache::Cache> cache) {
  auto svc = std::shared_ptr<TaskServices>(new TaskServices());
  svc->impl_ = std::make_shared<Impl>();
  Impl& s = *svc->impl_;
  s.config = config;
  s.node_id = node_id;
  s.executors = executors::MakeRegistry(config);
  ManagerOptions mo;
  mo.core.node_id = node_id;
  mo.core.default_max_attempts = config.tasks.default_max_attempts;
  mo.core.default_timeout_ms = config.tasks.default_timeout.count();
  mo.core.lease_ms = config.tasks.lease_duration.count();
  mo.owner_lease = config.tasks.owner_lease;
  mo.core.max_open_tasks = config.tasks.max_queue_depth;
  mo.core.backoff_base_ms = config.tasks.retry_backoff_base.count();
  mo.core.backoff_max_ms = config.tasks.retry_backoff_max.count();
  mo.core.strategy = mo_strategy(config);
  mo.store = std::move(store);
  mo.executors = s.executors.get();
  mo.sealer = std::move(sealer);
  mo.cache = std::move(cache);
  mo.on_final = [weak = std::weak_ptr<Impl>(svc->impl_)](const Task& t) {
    auto impl = weak.lock();
    if (!impl) return;
    std::function<void(const Task&)> listener;
    {
      std::lock_guard lock(impl->help_mu);
      listener = impl->finished;
    }
    if (listener) listener(t);
  };
  auto manager = TaskManager::Start(std::move(mo), metrics);
  if (!manager.ok()) return manager.status();
  s.manager = std::move(manager).value();
  PoolOptions po;
  po.node_id = node_id;
  po.role = config.node.role;
  po.capabilities = config.node.capabilities;
  po.model = config.agents.llm.models.empty() ? "" : config.agents.llm.models.front();
  po.initial_agents = config.agents.initial_agents;
  po.autoscaling = config.agents.autoscaling;
  po.heartbeat = config.agents.heartbeat_interval;
  po.executors = s.executors.get();
  po.manager = s.manager.get();
  po.ask_help = [weak = std::weak_ptr<Impl>(svc->impl_)](const Assignment& job, const executors::HelpRequest& request)
      -> Result<std::vector<executors::HelpAnswer>> {
    auto impl = weak.lock();
    if (!impl) return Unavailable("the task services are stopped");
    HelpDesk desk;
    {
      std::lock_guard lock(impl->help_mu);
      desk = impl->help_desk;
    }
    if (!desk) return Unavailable("no one to ask: HMMM does not run on this node");
    auto task = impl->manager->Get(job.task_id);
    if (!task.ok()) return task.status();
    return desk(*task, job.agent_id, request);
  };
  auto pool = AgentPool::Start(std::move(po), metrics);
  if (!pool.ok()) return pool.status();
  s.pool = std::move(pool).value();
  if (p2p) {
    s.p2p = p2p;
    std::weak_ptr<Impl> self = svc->impl_;
    s.transport = std::make_unique<P2pTransport>(*p2p, [self, node_id](const std::string& type, const std::string& payload) {
      if (auto impl = self.lock(); impl && impl->link) impl->link->OnMessage(node_id, type, payload);
    });
    ClusterLink::Options lo;
    lo.node_id = node_id;
    lo.role = config.node.role;
    lo.capabilities = config.node.capabilities;
    lo.executors = s.executors->Kinds();
    lo.admin_of = std::move(admin_of);
    AgentPool* pool_ptr = s.pool.get();
    s.link = std::make_unique<ClusterLink>(lo, *s.manager, *s.transport,
                                                  [pool_ptr](int* agents, int* idle, double* performance) {
                                                    const auto sum = pool_ptr->Summary();
                                                    *agents = sum.size;
                                                    *idle = sum.idle;
                                                    double total = 0;
                                                    const auto list = pool_ptr->Agents();
                                                    for (const auto& a : list) total += a.performance;
                                                    *performance = list.empty() ? 0.5 : total / static_cast<double>(list.size());
                                                  });
    s.master = std::make_unique<MasterLoop>(*s.transport, mo_strategy(config), std::chrono::milliseconds(200),
                                                   std::chrono::milliseconds(5000));
    std::weak_ptr<Impl> weak = svc->impl_;
    for (const char* type : kClusterTypes) {
      p2p->OnDirect(type, [weak, t = std::string(type)](const p2p::Message& m) {
        if (auto impl = weak.lock(); impl && impl->link) impl->link->OnMessage(m.envelope.from, t, m.envelope.data);
      });
    }
    if (auto st = p2p->Subscribe(p2p::kCoordinationTopic, "tasks",
                                 [weak](const p2p::Message& m) {
                                   if (m.envelope.type != "tasks.load") return;
                                   auto impl = weak.lock();
                                   if (!impl || !impl->master) return;
                                   auto report = DecodeReport(m.envelope.data);
                                   if (report.ok() && report->node_id == m.envelope.from) impl->master->OnReport(std::move(*report));
                                 },
                                 p2p::SubscribeOptions{true, false});
        !st.ok()) {
      return st;
    }
    s.link->Start();
    if (admin) {
      admin->Register({"no-master-loop",
                       [weak](std::uint64_t term) {
                         auto impl = weak.lock();
                         return impl && impl->master ? impl->master->Start(term) : Unavailable("tasks stopped");
                       },
                       [weak](std::uint64_t term) {
                         if (auto impl = weak.lock(); impl && impl->master) impl->master->Stop(term);
                       }});
    }
  }
  // Say at once, not only in agent-pool, when tasks that need the sandbox
  // cannot run here (typically: no unprivileged user namespaces).
  const auto kinds = s.executors->Kinds();
  if (std::find(kinds.begin(), kinds.end(), "command") != kinds.end()) {
    if (Status sandbox = s.SandboxStatus(); !sandbox.ok()) {
      kLog.warn("tasks: the command sandbox cannot start here, so command and llm tasks will fail until it can: "
                   "{} (bubblewrap needs unprivileged user namespaces; see docs/tasks.md)",
                   sandbox.message());
    }
  }
  return svc;
}

TaskServices::~TaskServices() {
  if (impl_) {
    Drain(std::chrono::milliseconds(0));
    Stop();
  }
}

void TaskServices::Drain(std::chrono::milliseconds grace) {
  // Agents first, so that borrowed attempts they hand back are reported to
  // their owners before the cluster link stops (briefly waiting for acks).
  if (impl_->pool) impl_->pool->Drain(grace);
  if (impl_->link) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (impl_->link->GetStats().unacknowledged > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  impl_->StopCluster();
}

void TaskServices::Stop() {
  impl_->StopCluster();
  if (impl_->master) impl_->master->Stop(impl_->master->GetStats().term);
  if (impl_->manager) impl_->manager->Stop();
}

void TaskServices::Load(int* running, int* capacity) const {
  const auto s = impl_->pool->Summary();
  *running = s.active;
  *capacity = s.size;
}

Status TaskServices::CheckOwned(const std::string& id) const {
  auto t = impl_->manager->Get(id);
  if (!t.ok()) return t.status();
  if (t->owner_node != impl_->node_id) {
    return FailedPrecondition("task " + id + " belongs to node " + t->owner_node + ": open its room there");
  }
  return Status::Ok();
}

void TaskServices::SetFinishedListener(std::function<void(const Task&)> listener) {
  std::lock_guard lock(impl_->help_mu);
  impl_->finished = std::move(listener);
}

Result<Task> TaskServices::Get(const std::string& id) const { return impl_->manager->Get(id); }

void TaskServices::SetHelpDesk(HelpDesk desk) {
  std::lock_guard lock(impl_->help_mu);
  impl_->help_desk = std::move(desk);
}

Status TaskServices::Escalate(const std::string& id, const std::string& reason) {
  return impl_->manager->Escalate(id, reason).status();
}

Status TaskServices::CheckResume(const std::string& id, const std::string& input) const {
  if (Status s = CheckOwned(id); !s.ok()) return s;
  auto t = impl_->manager->Get(id);
  if (!t.ok()) return t.status();
  if (t->state != TaskState::kEscalated) {
    if (input.empty()) return Status::Ok();
    return FailedPrecondition("task " + id + " is " + std::string(TaskStateName(t->state)) +
                              ": a new input applies only to an escalated task");
  }
  if (!input.empty()) return impl_->executors->Validate(t->executor, input);
  return Status::Ok();
}

Status TaskServices::Resume(const std::string& id, const std::string& note, const std::string& input) {
  if (Status s = CheckResume(id, input); !s.ok()) return s;
  auto t = impl_->manager->Get(id);
  if (!t.ok()) return t.status();
  if (t->state != TaskState::kEscalated) return Status::Ok();  // nothing to resume
  return impl_->manager->Resume(id, note, input).status();
}

std::uint64_t TaskServices::SucceededAttempts() const {
  std::uint64_t total = 0;
  for (const auto& agent : impl_->pool->Agents()) total += agent.succeeded;
  return total;
}

std::vector<ops::ShutdownStep> TaskServices::ShutdownSteps(const config::Config& config) {
  // Agents stop taking work; running tasks get a grace period, then are
  // handed back (queued again durably) so that nothing is lost.
  const auto grace = std::chrono::milliseconds(std::min<long long>(2000, config.operations.drain_timeout.count()));
  return {{"agents.drain", ops::kPriorityStopAgents, grace + std::chrono::seconds(3),
           [this, grace] {
             Drain(grace);
             return Status::Ok();
           }},
          {"tasks.flush", ops::kPriorityFlushStores - 1, std::chrono::seconds(10), [this] {
             Stop();
             return Status::Ok();
           }}};
}

std::string TaskServices::StatusJson(std::string_view) const {
  json out = {{"agents", SummaryJson(impl_->pool->Summary())},
              {"executors", impl_->executors->Kinds()},
              {"strategy", impl_->config.tasks.strategy}};
  if (impl_->master) {
    const auto m = impl_->master->GetStats();
    out["master_loop"] = {{"running", m.running},          {"term", m.term},
                          {"iterations", m.iterations},    {"offers", m.offers},
                          {"nodes", m.nodes},              {"cluster_queued", m.cluster_queued},
                          {"cluster_agents", m.cluster_agents}, {"cluster_idle", m.cluster_idle}};
  }
  if (impl_->link) {
    const auto l = impl_->link->GetStats();
    out["cluster"] = {{"lent", l.lent},
                      {"borrowed", l.borrowed},
                      {"results_sent", l.results_sent},
                      {"results_received", l.results_received},
                      {"stale_results", l.stale_results},
                      {"offers_refused", l.offers_refused},
                      {"offers_unauthorized", l.offers_unauthorized},
                      {"grants_refused", l.grants_refused},
                      {"unacknowledged", l.unacknowledged}};
  }
  if (auto st = impl_->manager->Stats(); st.ok()) {
    json by_state = json::object();
    for (const auto& [k, v] : st->by_state) by_state[k] = v;
    out["tasks"] = {{"by_state", by_state}, {"queue_depth", st->queue_depth}, {"in_flight", st->in_flight}};
  }
  return out.dump();
}

std::vector<ops::HealthCheckSpec> TaskServices::HealthChecks(const config::OperationsConfig& ops) {
  std::weak_ptr<Impl> weak = impl_;
  ops::HealthCheckSpec spec;
  spec.name = "agent-pool";
  spec.interval = std::min(ops.health_check_interval, std::chrono::milliseconds(5000));
  spec.timeout = ops.health_check_timeout;
  spec.critical = false;
  spec.description = "agents are healthy and able to take the queued work";
  spec.fn = [weak] {
    auto impl = weak.lock();
    if (!impl) return ops::CheckOutcome::Unhealthy("agent pool stopped");
    const auto s = impl->pool->Summary();
    const std::size_t depth = impl->manager->QueueDepth();
    const executors::Sandbox sandbox_of(impl->config.agents.sandbox, impl->config.node.data_dir);
    const json details = {{"size", s.size},
                          {"active", s.active},
                          {"idle", s.idle},
                          {"failed", s.failed},
                          {"healthy_ratio", s.healthy_ratio},
                          {"queue_depth", depth},
                          {"sandbox_isolation", sandbox_of.PerTaskUids() ? "uid-per-task" : "node-uid"},
                          {"sandbox_uids_in_use", executors::Sandbox::UidsInUse()}};
    if (s.size - s.failed <= 0 && depth > 0) {
      return ops::CheckOutcome::Unhealthy(std::to_string(depth) + " tasks wait and no agent can take them",
                                          details.dump());
    }
    if (Status sandbox = impl->SandboxStatus(); !sandbox.ok()) {
      json d = details;
      d["sandbox"] = sandbox.message();
      return ops::CheckOutcome::Degraded("command and llm tasks cannot run: " + sandbox.message(), d.dump());
    }
    if (s.healthy_ratio < 0.5) {
      return ops::CheckOutcome::Degraded(std::to_string(s.failed) + " of " + std::to_string(s.size) +
                                             " agents are failing",
                                         details.dump());
    }
    return ops::CheckOutcome::Healthy(std::to_string(s.size) + " agents, " + std::to_string(s.active) + " busy",
                                      details.dump());
  };
  return {spec};
}

Status TaskServices::RegisterRoutes(http::Router& router) {
  std::shared_ptr<Impl> impl = impl_;
  http::RouteTable routes(router, "tasks");
  using http::Method;
  routes.AddBlocking(Method::kPost, "/api/v1/tasks", "tasks:write", "submit a task", nullptr,
             [impl](http::Request& req, http::Responder respond) {
               const std::string* header = req.headers.Find("Idempotency-Key");
               auto parsed = ParseSubmitBody(req.body, header ? *header : std::string_view{});
               if (!parsed.ok()) {
                 respond(BadRequest(parsed.status().message(), req.request_id));
                 return;
               }
               parsed->submitter = req.identity.principal;
               impl->manager->Submit(std::move(*parsed), [respond, id = req.request_id, viewer = ViewerOf(req)](
                                                             Result<SubmitOutcome> r) {
                 if (!r.ok()) {
                   respond(http::ErrorFromStatus(r.status(), id));
                   return;
                 }
                 const int status = r->created ? 201 : 200;
                 // The document as written, when the caller may see all of it.
                 http::Response res = !r->document.empty() && Owns(r->task, viewer)
                                           ? http::Response::Json(status, std::move(r->document))
                                           : TaskAnswer(status, r->task, viewer);
                 res.headers.Set("Location", "/api/v1/tasks/" + r->task.id);
                 respond(std::move(res));
               });
             });
  routes.AddBlocking(Method::kGet, "/api/v1/tasks", "tasks:read",
             "list tasks (state, executor, project, limit, before; node=all|ID with before_id in a shared store)",
             [impl](http::Request& req) {
               TaskQuery q;
               q.state = req.QueryParam("state").value_or("");
               q.executor = req.QueryParam("executor").value_or("");
               q.project = req.QueryParam("project").value_or("");
               if (!q.state.empty() && !ParseTaskState(q.state)) {
                 return BadRequest("state: unknown task state \"" + q.state + "\"", req.request_id);
               }
               auto limit = req.IntParam("limit", 100, 1, 1000);
               if (!limit.ok()) return BadRequest(limit.status().message(), req.request_id);
               if (auto node = req.QueryParam("node")) {
                 // Every node's tasks (or one node's) in a shared store, newest id first.
                 ClusterTaskQuery cq;
                 cq.state = q.state;
                 cq.executor = q.executor;
                 cq.project = q.project;
                 cq.node = *node == "all" ? "" : std::string(*node);
                 cq.before_id = req.QueryParam("before_id").value_or("");
                 cq.limit = static_cast<std::size_t>(*limit);
                 if (cq.before_id.size() > 64) return BadRequest("before_id: longer than 64 bytes", req.request_id);
                 auto list = impl->manager->ListCluster(cq);
                 if (!list.ok()) return http::ErrorFromStatus(list.status(), req.request_id);
                 return impl->ClusterPage(std::move(*list), cq.limit, req);
               }
               auto before = req.IntParam("before", 0, 0, INT64_MAX);
               if (!before.ok()) return BadRequest(before.status().message(), req.request_id);
               q.limit = static_cast<std::size_t>(*limit);
               q.before_seq = *before;
               auto list = impl->manager->List(q);
               if (!list.ok()) return http::ErrorFromStatus(list.status(), req.request_id);
               return impl->Page(std::move(*list), q.limit, req);
             });
  routes.AddBlocking(Method::kGet, "/api/v1/tasks/stats", "tasks:read", "task counts by state", [impl](http::Request& req) {
    auto st = impl->manager->Stats();
    if (!st.ok()) return http::ErrorFromStatus(st.status(), req.request_id);
    json by_state = json::object();
    for (const auto& [k, v] : st->by_state) by_state[k] = v;
    return JsonOk(200, {{"by_state", by_state},
                        {"queue_depth", st->queue_depth},
                        {"in_flight", st->in_flight},
                        {"waiting_agents", st->waiting_agents},
                        {"committed_batches", st->committed_batches},
                        {"write_failures", st->write_failures}});
  });
  routes.AddBlocking(Method::kGet, "/api/v1/tasks/:id", "tasks:read", "one task with its attempts and events",
             [impl](http::Request& req) {
               auto t = impl->manager->Get(std::string(req.Param("id")));
               if (!t.ok()) return http::ErrorFromStatus(t.status(), req.request_id);
               return TaskAnswer(200, *t, ViewerOf(req));
             });
  routes.AddBlocking(Method::kGet, "/api/v1/tasks/:id/events", "tasks:read",
             "events after the N-th (?after=N), waiting up to wait_ms for new ones", nullptr,
             [impl](http::Request& req, http::Responder respond) {
               auto after = req.IntParam("after", 0, 0, INT64_MAX);
               auto wait = req.IntParam("wait_ms", 0, 0, 30000);
               if (!after.ok() || !wait.ok()) {
                 respond(BadRequest((!after.ok() ? after : wait).status().message(), req.request_id));
                 return;
               }
               const std::size_t from = static_cast<std::size_t>(*after);
               impl->manager->Watch(std::string(req.Param("id")), from, std::chrono::milliseconds(*wait),
                                    [respond, from, rid = req.request_id, viewer = ViewerOf(req)](Result<Task> t) {
                                      if (!t.ok()) {
                                        respond(http::ErrorFromStatus(t.status(), rid));
                                        return;
                                      }
                                      const bool owner = Owns(*t, viewer);
                                      json events = json::array();
                                      const std::int64_t first = t->event_count - static_cast<std::int64_t>(t->events.size());
                                      for (std::size_t i = 0; i < t->events.size(); ++i) {
                                        const std::int64_t n = first + static_cast<std::int64_t>(i);
                                        if (n < static_cast<std::int64_t>(from)) continue;
                                        const auto& e = t->events[i];
                                        const bool hidden = !owner && e.type == "progress";
                                        events.push_back({{"n", n}, {"at_ms", e.at_ms}, {"type", e.type},
                                                          {"detail", hidden ? std::string(kHiddenDetail) : e.detail},
                                                          {"attempt", e.attempt}});
                                      }
                                      respond(JsonOk(200, {{"task_id", t->id},
                                                           {"state", TaskStateName(t->state)},
                                                           {"finished", IsTerminal(t->state)},
                                                           {"events", std::move(events)},
                                                           {"next", t->event_count}}));
                                    });
             });
  routes.AddBlocking(Method::kPost, "/api/v1/tasks/:id/cancel", "tasks:write", "cancel a task", [impl](http::Request& req) {
    if (auto refused = RefuseUnlessOwner(*impl->manager, req, "cancelling")) return std::move(*refused);
    auto t = impl->manager->Cancel(std::string(req.Param("id")));
    if (!t.ok()) return http::ErrorFromStatus(t.status(), req.request_id);
    return JsonOk(200, View(*t, ViewerOf(req)));
  });
  routes.AddBlocking(Method::kGet, "/api/v1/dlq", "dlq:read", "dead-letter queue (limit, before)", [impl](http::Request& req) {
    auto limit = req.IntParam("limit", 100, 1, 1000);
    if (!limit.ok()) return BadRequest(limit.status().message(), req.request_id);
    auto before = req.IntParam("before", 0, 0, INT64_MAX);
    if (!before.ok()) return BadRequest(before.status().message(), req.request_id);
    auto list = impl->manager->DeadLetters(static_cast<std::size_t>(*limit), *before);
    if (!list.ok()) return http::ErrorFromStatus(list.status(), req.request_id);
    return impl->Page(std::move(*list), static_cast<std::size_t>(*limit), req);
  });
  routes.AddBlocking(Method::kPost, "/api/v1/dlq/:id/replay", "dlq:write", "queue a dead task again", [impl](http::Request& req) {
    if (auto refused = RefuseUnlessOwner(*impl->manager, req, "replaying")) return std::move(*refused);
    auto t = impl->manager->Replay(std::string(req.Param("id")));
    if (!t.ok()) return http::ErrorFromStatus(t.status(), req.request_id);
    return JsonOk(200, View(*t, ViewerOf(req)));
  });
  routes.AddBlocking(Method::kDelete, "/api/v1/dlq/:id", "dlq:write", "purge a dead task", [impl](http::Request& req) {
    if (auto refused = RefuseUnlessOwner(*impl->manager, req, "purging")) return std::move(*refused);
    if (Status s = impl->manager->Purge(std::string(req.Param("id"))); !s.ok()) {
      return http::ErrorFromStatus(s, req.request_id);
    }
    return http::Response::Text(204, "");
  });
  routes.Add(Method::kGet, "/api/v1/agents", "agents:read", "the agent pool", [impl](http::Request&) {
    json agents = json::array();
    for (const auto& a : impl->pool->Agents()) agents.push_back(AgentJson(a));
    const auto& as = impl->config.agents.autoscaling;
    return JsonOk(200, {{"node_id", impl->node_id},
                        {"summary", SummaryJson(impl->pool->Summary())},
                        {"autoscaling",
                         {{"enabled", as.enabled},
                          {"minAgents", as.min_agents},
                          {"maxAgents", as.max_agents},
                          {"targetCpu", as.target_cpu},
                          {"targetMemory", as.target_memory},
                          {"scaleUpCooldown", as.scale_up_cooldown.count()},
                          {"scaleDownCooldown", as.scale_down_cooldown.count()},
                          {"step", as.step}}},
                        {"agents", std::move(agents)}});
  });
  routes.Add(Method::kPost, "/api/v1/agents/scale", "agents:write", "set the pool size ({agents} or {delta})",
             [impl](http::Request& req) {
               const json j = ParseJson(req.body);
               if (!j.is_object()) return BadRequest("body: must be a JSON object {\"agents\": N} or {\"delta\": k}", req.request_id);
               const bool has_n = j.contains("agents"), has_d = j.contains("delta");
               if (has_n == has_d) return BadRequest("body: exactly one of \"agents\" and \"delta\"", req.request_id);
               const json& v = has_n ? j["agents"] : j["delta"];
               if (!v.is_number_integer()) return BadRequest(std::string("body.") + (has_n ? "agents" : "delta") + ": must be an integer", req.request_id);
               long long target = v.get<long long>();
               if (has_d) target += impl->pool->Summary().size;
               if (target < 0 || target > 1000000) return BadRequest("agents: out of range", req.request_id);
               auto s = impl->pool->Scale(static_cast<int>(target), "POST /api/v1/agents/scale by " + req.identity.principal);
               if (!s.ok()) return http::ErrorFromStatus(s.status(), req.request_id);
               return JsonOk(200, {{"summary", SummaryJson(*s)}});
             });
  return routes.Done();
}

}  // namespace bzzz::tasks
