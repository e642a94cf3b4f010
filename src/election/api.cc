#include "election/api.h"

#include "base/log.h"
#include "base/machine.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "base/clock.h"
#include "election/score.h"
#include "election/service.h"
#include "election/wire.h"
#include "http/blocking.h"
#include "p2p/topics.h"

namespace bzzz::election {

using nlohmann::json;
namespace el = ::bzzz::election;

namespace {

constexpr SubsystemLog kLog{"election"};

http::Response JsonOk(int status, const json& body) { return http::Response::Json(status, body.dump()); }

// Sends every election message straight to the members' links (no DHT put:
// the election keeps working while the DHT's routing recovers from a
// partition); receivers drop what is addressed to another node.
class P2pTransport : public el::Transport {
 public:
  explicit P2pTransport(p2p::P2pNode& p2p) : p2p_(p2p) {}
  void Send(const el::Message& m) override {
    if (auto s = p2p_.PublishToMembers(p2p::kElectionTopic, el::kMessageType, el::EncodeMessage(m)); !s.ok()) {
      kLog.debug("election: {} not sent: {}", el::MessageTypeName(m.type), s.ToString());
    }
  }

 private:
  p2p::P2pNode& p2p_;
};

// Free CPU and memory in [0, 1], against what this node may use (cgroup
// limits included, base/machine.h). CPU from the one-minute load average,
// which smooths the score the election compares.
double FreeResources() {
  double cpu = 0.5;
  double load[1];
  if (getloadavg(load, 1) == 1) cpu = 1.0 - std::min(1.0, load[0] / AvailableCores());
  const double mem = 1.0 - MemoryUsedRatio();
  return (cpu + mem) / 2;
}

}  // namespace

class ElectionNode::Impl {
 public:
  Impl(p2p::P2pNode& p, const config::Config& c) : p2p(p), config(c), transport(p) {}

  p2p::P2pNode& p2p;
  config::Config config;
  P2pTransport transport;
  el::AdminServices services;
  std::unique_ptr<el::ElectionService> service;
  http::BlockingRuns runs{8};
  SteadyTime started = std::chrono::steady_clock::now();

  // An election message of a kind the sender's credential does not allow.
  prometheus::Counter* violations = nullptr;
  std::atomic<std::uint64_t> refused{0};
  void Refused(const std::string& from, el::MessageType type) {
    if (violations) violations->Increment();
    if (refused++ % 100 == 0) {
      kLog.warn("election: refused a {} from {}: not an admin-capable member", el::MessageTypeName(type), from);
    }
  }

  // Task attempts this node's agents finished successfully (set once the
  // task services run; 0 before).
  mutable std::mutex experience_mu;
  std::function<std::uint64_t()> experience;  // guarded by experience_mu

  double Score(std::size_t members) const {
    ScoreInputs in;
    in.uptime_hours = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() / 3600;
    in.capabilities = config.node.capabilities.size();
    in.free_resources = FreeResources();
    in.connected_peers = p2p.ConnectedPeers();
    in.electorate = members;
    {
      std::lock_guard lock(experience_mu);
      if (experience) in.succeeded_attempts = experience();
    }
    return CandidateScore(in);
  }

  json StatusJson() const {
    const el::Snapshot s = service->GetSnapshot();
    const auto now_steady = std::chrono::steady_clock::now();
    const auto since = std::chrono::system_clock::now() -
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(now_steady - s.since);
    json candidates = json::array();
    for (const auto& c : s.candidates) {
      candidates.push_back({{"node_id", c.node_id},
                            {"score", std::round(c.score * 1000) / 1000},
                            {"admin_capable", c.admin_capable},
                            {"member", c.member}});
    }
    json services_json = json::array();
    for (const auto& st : services.States()) {
      services_json.push_back({{"name", st.name},
                               {"running", st.running},
                               {"term", st.term},
                               {"last_error", st.last_error.empty() ? json(nullptr) : json(st.last_error)}});
    }
    json j = {{"state", el::RoleName(s.role)},
              {"node_id", s.node_id},
              {"admin_id", s.admin.empty() ? json(nullptr) : json(s.admin)},
              {"term", s.term},
              {"since", FormatIso8601(since)},
              {"heartbeat_age_ms", s.heartbeat_age ? json(s.heartbeat_age->count()) : json(nullptr)},
              {"candidates", candidates},
              {"leadership_changes", s.leadership_changes},
              {"cluster", s.cluster},
              {"member", s.member},
              {"electorate",
               {{"members", s.electorate.members},
                {"version", json::array({s.electorate.id.term, s.electorate.id.version})},
                {"committed", s.role == el::Role::kAdmin ? json(s.electorate_committed) : json(nullptr)}}},
              {"admin_services", services_json},
              {"problem", s.problem.empty() ? json(nullptr) : json(s.problem)},
              {"foreign_messages", s.foreign_messages},
              {"autopilot", s.autopilot.empty() ? json(nullptr) : json(s.autopilot)},
              {"refused_messages", s.refused_messages}};
    if (!s.admin.empty() && s.admin != s.node_id) {
      if (auto peer = p2p.FindPeer(s.admin)) j["admin_url"] = peer->presence.http_endpoint;
    }
    return j;
  }

  ops::CheckOutcome Health() const {
    const el::Snapshot s = service->GetSnapshot();
    const json details = {{"state", el::RoleName(s.role)},
                          {"admin_id", s.admin},
                          {"term", s.term},
                          {"heartbeat_age_ms", s.heartbeat_age ? s.heartbeat_age->count() : -1},
                          {"members", s.electorate.members.size()},
                          {"problem", s.problem}};
    const auto timeout = config.election.election_timeout;
    if (s.role == el::Role::kAdmin) {
      if (!s.problem.empty())
        return ops::CheckOutcome::Degraded("admin of term " + std::to_string(s.term) + "; " + s.problem,
                                           details.dump());
      return ops::CheckOutcome::Healthy("this node is the admin (term " + std::to_string(s.term) + ")",
                                        details.dump());
    }
    if (!s.admin.empty() && s.heartbeat_age && *s.heartbeat_age < 2 * timeout) {
      const std::string msg = "admin " + s.admin + " (term " + std::to_string(s.term) + "), heartbeat " +
                              std::to_string(s.heartbeat_age->count()) + " ms ago";
      if (!s.problem.empty()) return ops::CheckOutcome::Degraded(msg + "; " + s.problem, details.dump());
      if (config.election.admin_capable && !s.member) {
        return ops::CheckOutcome::Degraded(msg +
                                               "; admin-capable but not in the electorate yet (the admin's "
                                               "autopilot adds it after election.autopilot.stabilization_time; "
                                               "or bzzz election electorate add " +
                                               s.node_id + ")",
                                           details.dump());
      }
      return ops::CheckOutcome::Healthy(msg, details.dump());
    }
    // No admin: fine for a moment while electing, unhealthy once it lasts.
    const bool starting = std::chrono::steady_clock::now() - started < 4 * timeout;
    const std::string why = s.problem.empty() ? "no admin elected" : "no admin elected: " + s.problem;
    return starting || s.role == el::Role::kCandidate ? ops::CheckOutcome::Degraded(why, details.dump())
                                                      : ops::CheckOutcome::Unhealthy(why, details.dump());
  }
};

Result<std::shared_ptr<ElectionNode>> ElectionNode::Start(p2p::P2pNode& p2p, const config::Config& config,
                                                          prometheus::Registry* metrics) {
  auto node = std::shared_ptr<ElectionNode>(new ElectionNode());
  node->impl_ = std::make_shared<Impl>(p2p, config);
  Impl* impl = node->impl_.get();
  el::ServiceOptions options;
  options.election.node_id = p2p.node_id();
  options.election.admin_capable = config.election.admin_capable;
  options.election.bootstrap_expect = config.election.bootstrap_expect;
  options.election.heartbeat_interval = config.election.heartbeat_interval;
  options.election.election_timeout = config.election.election_timeout;
  options.election.stability_window = config.election.stability_window;
  options.election.autopilot_stabilization = config.election.autopilot.stabilization_time;
  options.election.autopilot_dead_after = config.election.autopilot.dead_member_removal;
  options.election.hello_interval =
      std::max(std::chrono::milliseconds(1000), 4 * config.election.heartbeat_interval);
  options.state_path = config.node.data_dir.empty() ? "" : config.node.data_dir + "/election/state.json";
  options.score = [impl](std::size_t members) { return impl->Score(members); };
  auto service = el::ElectionService::Start(std::move(options), &impl->transport, metrics, &impl->services);
  if (!service.ok()) return service.status();
  impl->service = std::move(service).value();
  if (metrics) {
    impl->violations = &prometheus::BuildCounter()
                            .Name("no_security_violations_total")
                            .Help("Detected security violations (forged messages, tampering, policy breaches)")
                            .Register(*metrics)
                            .Add({{"kind", "election_unauthorized"}});
  }
  std::weak_ptr<Impl> weak = node->impl_;
  if (auto s = p2p.Subscribe(p2p::kElectionTopic, "election",
                             [weak](const p2p::Message& m) {
                               auto self = weak.lock();
                               if (!self) return;
                               auto decoded = el::DecodeMessage(m.envelope.data);
                               if (!decoded.ok()) {
                                 kLog.debug("election: message from {} dropped: {}", m.envelope.from,
                                               decoded.status().message());
                                 return;
                               }
                               decoded->from = m.envelope.from;  // the frame's verified signer
                               // Only admin-capable members stand, vote and lead; others
                               // may only say hello (as observers) or ask for a handover.
                               if (m.sender_role != cluster::NodeRole::kAdminCapable) {
                                 if (decoded->type != el::MessageType::kHello &&
                                     decoded->type != el::MessageType::kTransferRequest) {
                                   self->Refused(m.envelope.from, decoded->type);
                                   return;
                                 }
                                 decoded->admin_capable = false;
                               }
                               self->service->Deliver(*decoded);
                             });
      !s.ok()) {
    return s;
  }
  return node;
}

ElectionNode::~ElectionNode() {
  impl_->p2p.Unsubscribe(p2p::kElectionTopic, "election");
  // Start may have failed before the service existed (a damaged state file).
  if (impl_->service) impl_->service->Stop();
}

election::AdminServices& ElectionNode::admin_services() { return impl_->services; }

std::vector<ops::ShutdownStep> ElectionNode::ShutdownSteps(const config::Config& config) {
  const auto budget = 4 * config.election.heartbeat_interval + std::chrono::milliseconds(1200);
  return {{"election.leave", ops::kPriorityLeaveElection, std::chrono::duration_cast<std::chrono::milliseconds>(budget),
           [this] {
             const auto wait = 4 * impl_->config.election.heartbeat_interval + std::chrono::milliseconds(200);
             const std::string next = impl_->service->Resign(wait);
             if (!next.empty()) kLog.info("election: left; {} is the admin now", next);
             return Status::Ok();
           }}};
}

std::string ElectionNode::StatusJson(std::string_view) const { return impl_->StatusJson().dump(); }

std::string ElectionNode::Admin(std::uint64_t* term) const {
  const el::Snapshot s = impl_->service->GetSnapshot();
  if (term) *term = s.term;
  return s.admin;
}

void ElectionNode::SetExperienceSource(std::function<std::uint64_t()> succeeded_attempts) {
  std::lock_guard lock(impl_->experience_mu);
  impl_->experience = std::move(succeeded_attempts);
}

bool ElectionNode::AdminOf(const std::string& node_id, std::uint64_t term) const {
  const el::Snapshot s = impl_->service->GetSnapshot();
  return !node_id.empty() && s.term == term && s.admin == node_id;
}

Status ElectionNode::RegisterRoutes(http::Router& router) {
  std::shared_ptr<Impl> impl = impl_;
  http::RouteTable routes(router, "election");
  routes.Add(http::Method::kGet, "/api/election/status", "election:read",
             "this node's election state, the admin, the term and the candidates",
             [impl](http::Request&) { return JsonOk(200, impl->StatusJson()); });
  routes.Add(http::Method::kPost, "/api/election/trigger", "election:admin",
             "start an election: the admin hands over, an admin-capable member stands; answers with old and "
             "new admin",
             nullptr, [impl](http::Request& req, http::Responder respond) {
               bool force = false;
               if (!req.body.empty()) {
                 const json j = ParseJson(req.body);
                 if (!j.is_object() || (j.contains("force") && !j["force"].is_boolean())) {
                   respond(http::ErrorResponse(
                       400, "bad_request", "body must be {\"force\": true|false} or empty", req.request_id));
                   return;
                 }
                 force = j.value("force", false);
               }
               const std::string id = req.request_id;
               impl->runs.Run("trigger:" + id, id, std::move(respond), [impl, force, id] {
                 const el::Snapshot before = impl->service->GetSnapshot();
                 if (auto s = impl->service->Trigger(force); !s.ok()) {
                   return http::ErrorResponse(http::HttpStatusOf(s), StatusCodeName(s.code()), s.message(), id);
                 }
                 const auto wait =
                     3 * impl->config.election.election_timeout + std::chrono::milliseconds(1000);
                 const el::Snapshot after = impl->service->WaitForChange(before.admin, before.term, wait);
                 const bool changed =
                     !after.admin.empty() && (after.admin != before.admin || after.term != before.term);
                 return JsonOk(changed ? 200 : 504,
                               {{"changed", changed},
                                {"previous", {{"admin_id", before.admin}, {"term", before.term}}},
                                {"current", {{"admin_id", after.admin}, {"term", after.term}}}});
               });
             });
  routes.Add(
      http::Method::kPost, "/api/election/electorate", "election:admin",
      "change the electorate by one member: {\"add\": node_id} or {\"remove\": node_id} (on the admin)",
      [impl](http::Request& req) {
        const json j = ParseJson(req.body);
        const bool add_one = j.is_object() && j.contains("add") && j["add"].is_string();
        const bool remove_one = j.is_object() && j.contains("remove") && j["remove"].is_string();
        if (add_one == remove_one || j.size() != 1) {
          return http::ErrorResponse(400, "bad_request",
                                     "body must be {\"add\": \"<node id>\"} or "
                                     "{\"remove\": \"<node id>\"}",
                                     req.request_id);
        }
        const Status s = add_one ? impl->service->AddMember(j["add"].get<std::string>())
                                 : impl->service->RemoveMember(j["remove"].get<std::string>());
        if (!s.ok()) {
          json body = {{"error",
                        {{"code", StatusCodeName(s.code())},
                         {"message", s.message()},
                         {"request_id", req.request_id}}}};
          const json status = impl->StatusJson();
          body["admin_id"] = status["admin_id"];
          if (status.contains("admin_url")) body["admin_url"] = status["admin_url"];
          return JsonOk(http::HttpStatusOf(s), body);
        }
        return JsonOk(200, impl->StatusJson()["electorate"]);
      });
  return routes.Done();
}

std::vector<ops::HealthCheckSpec> ElectionNode::HealthChecks(const config::OperationsConfig& ops) {
  std::weak_ptr<Impl> weak = impl_;
  ops::HealthCheckSpec spec;
  spec.name = "election-health";
  spec.interval = std::min(ops.health_check_interval, std::chrono::milliseconds(5000));
  spec.timeout = ops.health_check_timeout;
  spec.critical = false;
  spec.description = "an admin is known and its heartbeats arrive (or this node is the admin)";
  spec.fn = [weak] {
    auto impl = weak.lock();
    return impl ? impl->Health() : ops::CheckOutcome::Unhealthy("election stopped");
  };
  return {spec};
}

}  // namespace bzzz::election
