#include "slurp/service.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "base/threads.h"
#include "http/router.h"
#include "security/authenticator.h"
#include "slurp/probe.h"
#include "ucxl/address.h"
#include "ucxl/context_store.h"

namespace bzzz::slurp {
namespace {

using nlohmann::json;

constexpr SubsystemLog kLog{"slurp"};
constexpr std::size_t kIntakeCapacity = 4096;  // hook events waiting to be written
constexpr std::size_t kBatch = 32;             // events per processing round
constexpr std::int64_t kStaleMs = 60000;       // the oldest event waiting longer: degraded
constexpr std::size_t kMaxKey = 200;

bool ValidKey(const std::string& k) {
  if (k.empty() || k.size() > kMaxKey) return false;
  for (unsigned char c : k) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

struct SlurpService::Impl {
  Options o;
  SlurpProbe probe;
  mutable std::mutex mu;
  std::condition_variable cv;  // the processor's wake-ups
  bool stopping = false;
  // Processing (admin only).
  std::thread worker;
  std::uint64_t running_term = 0;  // 0: not processing
  bool fenced = false;
  std::string start_error;
  std::int64_t last_seq = 0, last_ms = 0;
  std::string last_address;
  // Intake of hook events.
  std::deque<EventRow> intake;
  QueueStats stats;               // under mu: the last read (RefreshGauges)
  std::int64_t stats_ms = 0;      // when; 0: never
  std::uint64_t dropped = 0;      // under mu
  std::uint64_t failed_adds = 0;  // the intake thread's
  std::condition_variable intake_cv;
  std::thread intake_thread;

  explicit Impl(Options opts) : o(std::move(opts)), probe(o.metrics) {}

  std::int64_t Now() const { return o.now ? o.now() : UnixMillisNow(); }

  std::string AdminNode(std::uint64_t* term) const { return o.admin ? o.admin(term) : std::string(); }
  bool IsAdmin() const {
    std::uint64_t term = 0;
    return AdminNode(&term) == o.node_id;
  }

  // Reads the queue's counts into the gauges and `stats` (what the status
  // section shows: it is rendered on an HTTP I/O thread, which must not
  // wait for the store).
  void RefreshGauges() {
    auto s = o.store->Stats();
    if (!s.ok()) return;
    probe.Queue(static_cast<double>(s->queued), static_cast<double>(s->dead));
    std::lock_guard lock(mu);
    stats = *s;
    stats_ms = Now();
  }

  Result<std::pair<EventRow, bool>> Add(EventRow e) {
    e.accepted_ms = Now();
    e.accepted_by = o.node_id;
    if (e.payload_sha256.empty()) e.payload_sha256 = security::Sha256Hex(e.payload);
    auto added = o.store->AddEvent(e, static_cast<std::int64_t>(o.config.slurp.queue_capacity));
    if (!added.ok()) {
      probe.Event(e.source, added.status().code() == StatusCode::kResourceExhausted ? "refused" : "dropped");
      return added.status();
    }
    probe.Event(e.source, added->second ? "accepted" : "duplicate");
    if (added->second) cv.notify_all();
    return added;
  }

  void IntakeLoop() {
    std::unique_lock lock(mu);
    while (true) {
      // Also the queue's counts, once a second, on every node.
      if (!intake_cv.wait_for(lock, std::chrono::seconds(1), [this] { return stopping || !intake.empty(); })) {
        lock.unlock();
        RefreshGauges();
        lock.lock();
        continue;
      }
      if (intake.empty() && stopping) return;
      EventRow e = std::move(intake.front());
      intake.pop_front();
      lock.unlock();
      auto added = Add(e);
      if (!added.ok() && failed_adds++ % 1000 == 0) {
        kLog.warn("slurp: event {} not queued: {} ({} so far)", e.key, added.status().message(), failed_adds);
      }
      lock.lock();
    }
  }

  void Enqueue(EventRow e) {
    std::lock_guard lock(mu);
    if (stopping) return;
    if (intake.size() >= kIntakeCapacity) {
      probe.Event(e.source, "dropped");
      // The first drop and every 1000th after it: a flood of outcomes must
      // not become a flood of log lines.
      if (dropped++ % 1000 == 0) {
        kLog.warn("slurp: intake full ({} events waiting for the store): event {} dropped ({} so far)",
                  kIntakeCapacity, e.key, dropped);
      }
      return;
    }
    intake.push_back(std::move(e));
    intake_cv.notify_all();
  }

  void Work(std::uint64_t term) {
    ProcessorOptions po;
    po.store = o.store;
    po.context = o.context;
    po.sources = o.sources;
    po.default_role = o.config.slurp.default_role;
    po.max_retries = o.config.slurp.max_retries;
    po.retry_base = o.retry_base;
    po.now = o.now;
    po.probe = &probe;
    Processor p(std::move(po), term);
    Status begun = p.Begin();
    {
      std::lock_guard lock(mu);
      if (!begun.ok()) {
        fenced = begun.code() == StatusCode::kFailedPrecondition;
        start_error = begun.message();
      }
    }
    if (!begun.ok()) {
      kLog.warn("slurp: not processing for term {}: {}", term, begun.message());
      return;
    }
    kLog.info("slurp: processing events for term {}", term);
    auto last_gauges = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    while (true) {
      {
        std::lock_guard lock(mu);
        if (stopping || running_term != term) break;
      }
      if (o.context == nullptr) {
        std::unique_lock lock(mu);
        start_error = "no context store (ucxi.enabled is false): records cannot be written";
        cv.wait_for(lock, std::chrono::seconds(1));
        continue;
      }
      auto n = p.RunOnce(kBatch);
      {
        std::lock_guard lock(mu);
        if (p.last_seq() > last_seq) {
          last_seq = p.last_seq();
          last_ms = p.last_ms();
          last_address = p.last_address();
        }
      }
      if (!n.ok()) {
        if (n.status().code() == StatusCode::kFailedPrecondition) {
          std::lock_guard lock(mu);
          fenced = true;
          start_error = n.status().message();
          kLog.warn("slurp: term {} stops: {}", term, n.status().message());
          break;
        }
        kLog.warn("slurp: reading the queue: {}", n.status().message());
      }
      if (std::chrono::steady_clock::now() - last_gauges > std::chrono::seconds(1)) {
        RefreshGauges();
        last_gauges = std::chrono::steady_clock::now();
      }
      if (n.ok() && *n == kBatch) continue;
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping || running_term != term; });
    }
    kLog.info("slurp: stopped processing for term {}", term);
  }
};

Result<std::shared_ptr<SlurpService>> SlurpService::Start(Options options) {
  if (!options.store) return InvalidArgument("slurp: a store is required");
  auto svc = std::shared_ptr<SlurpService>(new SlurpService());
  svc->impl_ = std::make_shared<Impl>(std::move(options));
  svc->impl_->RefreshGauges();
  svc->impl_->intake_thread = NamedThread("slurp-intake", [impl = svc->impl_.get()] { impl->IntakeLoop(); });
  return svc;
}

SlurpService::~SlurpService() { Stop(); }

void SlurpService::Stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    impl_->running_term = 0;
  }
  impl_->cv.notify_all();
  impl_->intake_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
  if (impl_->intake_thread.joinable()) impl_->intake_thread.join();
}

Status SlurpService::StartTerm(std::uint64_t term) {
  Impl& n = *impl_;
  std::thread old;
  {
    std::lock_guard lock(n.mu);
    if (n.stopping) return Unavailable("slurp is stopping");
    n.running_term = 0;
    old = std::move(n.worker);
  }
  n.cv.notify_all();
  if (old.joinable()) old.join();
  std::lock_guard lock(n.mu);
  n.running_term = term;
  n.fenced = false;
  n.start_error.clear();
  n.worker = NamedThread("slurp-worker", [impl = impl_.get(), term] { impl->Work(term); });
  return Status::Ok();
}

void SlurpService::StopTerm(std::uint64_t term) {
  Impl& n = *impl_;
  std::thread old;
  {
    std::lock_guard lock(n.mu);
    if (n.running_term != term && n.running_term != 0) return;
    n.running_term = 0;
    old = std::move(n.worker);
  }
  n.cv.notify_all();
  if (old.joinable()) old.join();
}

Result<std::pair<EventRow, bool>> SlurpService::Submit(const std::string& key, const std::string& body,
                                                        const std::string& by) {
  Impl& n = *impl_;
  CheckMayBlock("slurp: accepting an event");
  if (!key.empty() && !ValidKey(key)) {
    return InvalidArgument("Idempotency-Key: 1 to 200 printable ASCII characters without spaces");
  }
  auto event = ParseApiEvent(body);
  if (!event.ok()) return event.status();
  if (!n.o.store->Shared()) {
    std::uint64_t term = 0;
    const std::string admin = n.AdminNode(&term);
    if (admin != n.o.node_id) {
      return Unavailable(admin.empty() ? std::string("no admin is elected: SLURP takes events on the admin")
                                       : "this node's store is its own (SQLite): post events to the admin, node " + admin);
    }
  }
  EventRow e;
  e.key = key.empty() ? "api-" + RandomHex(12) : key;
  e.source = "api";
  e.project = event->project;
  e.task_id = event->task_id;
  // The payload names who posted it; the comparison of a repeated key is
  // of what the caller sent, whoever sent it.
  const std::string sent = ApiEventJson(*event);
  event->submitted_by = by;
  e.payload = ApiEventJson(*event);
  e.payload_sha256 = security::Sha256Hex(sent);
  auto added = n.Add(e);
  if (!added.ok()) return added.status();
  if (!added->second && added->first.payload_sha256 != e.payload_sha256) {
    return Conflict("Idempotency-Key " + e.key + " was used for another event (seq " +
                    std::to_string(added->first.seq) + ")");
  }
  return added;
}

Status SlurpService::Replay(std::int64_t seq) {
  Status s = impl_->o.store->Replay(seq, impl_->Now());
  if (s.ok()) impl_->cv.notify_all();
  return s;
}

SlurpRepository& SlurpService::store() const { return *impl_->o.store; }
ucxl::ContextStore* SlurpService::context() const { return impl_->o.context; }

void SlurpService::TaskFinished(const TaskFacts& t) {
  EventRow e;
  e.key = "task:" + t.id + ":" + t.state + ":" + std::to_string(t.attempts);
  e.source = "task";
  e.project = ValidName(t.project) ? t.project : "tasks";
  e.task_id = t.id;
  e.payload = DumpJson(json{{"task_id", t.id}, {"state", t.state}, {"attempts", t.attempts}});
  impl_->Enqueue(std::move(e));
}

void SlurpService::RoomDecided(const std::string& room, const std::string& decision_id, const std::string& project,
                               const std::string& task_id) {
  EventRow e;
  e.key = "hmmm:" + room + ":" + decision_id;
  e.source = "hmmm";
  e.project = ValidName(project) ? project : "hmmm";
  e.task_id = ValidName(task_id) ? task_id : "";
  e.payload = DumpJson(json{{"room", room}, {"decision", decision_id}});
  impl_->Enqueue(std::move(e));
}

std::vector<ops::HealthCheckSpec> SlurpService::HealthChecks(const config::OperationsConfig& ops) {
  ops::HealthCheckSpec spec;
  spec.name = "slurp-health";
  spec.interval = ops.health_check_interval;
  spec.timeout = ops.health_check_timeout;
  spec.critical = false;
  spec.description = "on the admin, SLURP processes its queue; not applicable on other nodes";
  spec.fn = [weak = std::weak_ptr<Impl>(impl_)] {
    auto n = weak.lock();
    if (!n) return ops::CheckOutcome::Healthy("stopped");
    std::uint64_t term = 0;
    const std::string admin = n->AdminNode(&term);
    std::uint64_t running;
    bool fenced;
    std::string error;
    {
      std::lock_guard lock(n->mu);
      running = n->running_term;
      fenced = n->fenced;
      error = n->start_error;
    }
    auto stats = n->o.store->Stats();
    json details = {{"admin", admin}, {"term", term}, {"running_term", running}};
    if (stats.ok()) {
      details["queued"] = stats->queued;
      details["dead"] = stats->dead;
      details["fence"] = stats->newest_term;
    }
    if (admin != n->o.node_id) {
      return ops::CheckOutcome::Healthy(
          "not applicable: SLURP runs on the admin" + (admin.empty() ? std::string() : " (node " + admin + ")"),
          DumpJson(details));
    }
    if (running == 0 || fenced) {
      return ops::CheckOutcome::Unhealthy("SLURP does not run on this admin" + (error.empty() ? "" : ": " + error),
                                          DumpJson(details));
    }
    if (!error.empty()) return ops::CheckOutcome::Unhealthy(error, DumpJson(details));
    if (!stats.ok()) return ops::CheckOutcome::Unhealthy("queue: " + stats.status().message(), DumpJson(details));
    const std::int64_t waiting = stats->oldest_queued_ms > 0 ? n->Now() - stats->oldest_queued_ms : 0;
    details["oldest_wait_ms"] = waiting;
    if (waiting > kStaleMs) {
      return ops::CheckOutcome::Degraded("the oldest event waits " + std::to_string(waiting / 1000) + " s",
                                         DumpJson(details));
    }
    return ops::CheckOutcome::Healthy("processing for term " + std::to_string(running), DumpJson(details));
  };
  return {spec};
}

std::string SlurpService::StatusJson(std::string_view section) const {
  if (section != "slurp") return "{}";
  const Impl& n = *impl_;
  std::uint64_t term = 0;
  const std::string admin = n.AdminNode(&term);
  json out = {{"admin", admin.empty() ? json(nullptr) : json(admin)}, {"is_admin", admin == n.o.node_id},
              {"term", term}, {"shared_store", n.o.store->Shared()}};
  {
    std::lock_guard lock(n.mu);
    out["running_term"] = n.running_term;
    out["fenced"] = n.fenced;
    out["error"] = n.start_error.empty() ? json(nullptr) : json(n.start_error);
    out["last_processed"] = n.last_seq == 0 ? json(nullptr)
                                            : json{{"seq", n.last_seq}, {"at_ms", n.last_ms}, {"address", n.last_address}};
    out["intake"] = n.intake.size();
    if (n.stats_ms > 0) {
      const QueueStats& s = n.stats;
      out["queue"] = {{"queued", s.queued},
                      {"dead", s.dead},
                      {"done", s.done},
                      {"oldest_queued_ms", s.oldest_queued_ms},
                      {"capacity", n.o.config.slurp.queue_capacity},
                      {"as_of_ms", n.stats_ms}};
      out["fence"] = s.newest_term;
    }
  }
  return DumpJson(out);
}

std::vector<ops::ShutdownStep> SlurpService::ShutdownSteps(const config::Config&) {
  std::weak_ptr<ops::Component> weak = weak_from_this();
  return {{"slurp.stop", ops::kPriorityStopServices, std::chrono::milliseconds(2000), [weak] {
             if (auto self = weak.lock()) static_cast<SlurpService*>(self.get())->Stop();
             return Status::Ok();
           }}};
}

}  // namespace bzzz::slurp
