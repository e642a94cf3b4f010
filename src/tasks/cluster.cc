#include "tasks/cluster.h"

#include <spdlog/spdlog.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/threads.h"

namespace bzzz::tasks {

namespace {
constexpr SubsystemLog kLog{"tasks"};
}  // namespace

void SendAll(ClusterTransport& transport, std::vector<Outbound> messages) {
  for (auto& m : messages) {
    const Status s = m.to.empty() ? transport.Broadcast(std::move(m.payload))
                                  : transport.Send(m.to, m.type, std::move(m.payload));
    if (!s.ok()) kLog.debug("tasks: {} to {}: {}", m.type, m.to.empty() ? "all" : m.to, s.ToString());
  }
}

// --- MasterLoop ---

MasterLoop::MasterLoop(ClusterTransport& transport, Strategy strategy, std::chrono::milliseconds interval,
                       std::chrono::milliseconds report_ttl)
    : transport_(transport), interval_(interval), core_(strategy, report_ttl.count()) {}

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
  core_.stats().running = true;
  core_.stats().term = term;
  thread_ = NamedThread("no-master", [this, term] { Run(term); });
  kLog.info("nO master loop: started for term {}", term);
  return Status::Ok();
}

void MasterLoop::Stop(std::uint64_t term) {
  std::unique_lock lock(mu_);
  if (!running_ || *running_ != term) return;
  running_.reset();
  core_.stats().running = false;
  cv_.notify_all();
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  kLog.info("nO master loop: stopped (term {})", term);
}

void MasterLoop::OnReport(LoadReport report) {
  std::lock_guard lock(mu_);
  core_.OnReport(std::move(report), MonotonicMillisNow());
}

MasterLoop::Stats MasterLoop::GetStats() const {
  std::lock_guard lock(mu_);
  return core_.stats();
}

void MasterLoop::Run(std::uint64_t term) {
  std::unique_lock lock(mu_);
  while (running_ && *running_ == term) {
    cv_.wait_for(lock, interval_);
    if (!running_ || *running_ != term) break;
    auto out = core_.Iterate(term, MonotonicMillisNow());
    lock.unlock();
    SendAll(transport_, std::move(out));
    lock.lock();
  }
}

// --- ClusterLink ---

// The link's view of this node's TaskManager.
class ClusterLink::Host final : public LinkHost {
 public:
  explicit Host(TaskManager& m) : m_(m) {}
  std::vector<Assignment> Lend(WorkerSlot slot) override {
    return m_.Lend(slot.node_id, slot.role, slot.capabilities, slot.executors, slot.free);
  }
  Status RemoteComplete(const std::string& task_id, int attempt, const std::string& agent,
                        const AttemptOutcome& outcome) override {
    return m_.RemoteComplete(task_id, attempt, agent, outcome);
  }
  Status RemoteRenew(const std::string& task_id, int attempt, const std::string& agent) override {
    return m_.RemoteRenew(task_id, attempt, agent);
  }
  void AcceptForeign(std::vector<Assignment> jobs) override { m_.AcceptForeign(std::move(jobs)); }
  std::vector<Assignment> ForeignHeld() const override { return m_.ForeignHeld(); }
  std::vector<Assignment> TakeForeignQueued() override { return m_.TakeForeignQueued(); }
  std::size_t ReadyCount() const override { return m_.ReadyCount(); }
  std::size_t StrandedCount() const override { return m_.StrandedCount(); }
  std::size_t InFlight() const override { return m_.InFlight(); }

 private:
  TaskManager& m_;
};

ClusterLink::ClusterLink(Options options, TaskManager& manager, ClusterTransport& transport,
                         std::function<void(int*, int*, double*)> load)
    : manager_(manager),
      transport_(transport),
      load_(std::move(load)),
      host_(std::make_unique<Host>(manager)),
      core_(std::make_unique<LinkCore>(std::move(options), *host_)) {}

ClusterLink::~ClusterLink() { Stop(); }

void ClusterLink::Start() {
  // The manager calls this outside its own lock (lock order: link, then manager).
  manager_.OnForeignDone([this](const Assignment& job, const AttemptOutcome& outcome) {
    std::lock_guard lock(mu_);
    core_->Finished(job, outcome, MonotonicMillisNow());
    cv_.notify_all();
  });
  thread_ = NamedThread("task-borrow", [this] { Loop(); });
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
  std::vector<Outbound> back;
  {
    std::lock_guard lock(mu_);
    back = core_->HandBackQueued();
  }
  SendAll(transport_, std::move(back));
  manager_.OnForeignDone(nullptr);
}

ClusterLink::Stats ClusterLink::GetStats() const {
  std::lock_guard lock(mu_);
  return core_->stats();
}

void ClusterLink::OnMessage(const std::string& from, const std::string& type, const std::string& payload) {
  std::vector<Outbound> out;
  {
    std::lock_guard lock(mu_);
    out = core_->OnMessage(from, type, payload, MonotonicMillisNow());
  }
  SendAll(transport_, std::move(out));
}

void ClusterLink::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (stopping_) break;
    lock.unlock();
    LoadReport load;  // the pool's figures, asked without holding the link's lock
    if (load_) load_(&load.agents, &load.idle, &load.performance);
    load.at_ms = UnixMillisNow();
    lock.lock();
    auto out = core_->Tick(MonotonicMillisNow(), std::move(load));
    lock.unlock();
    SendAll(transport_, std::move(out));
    lock.lock();
  }
}

}  // namespace bzzz::tasks
