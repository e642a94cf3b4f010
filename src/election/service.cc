#include "election/service.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "base/log.h"
#include "base/threads.h"
#include "election/probe.h"
#include "election/state.h"

namespace bzzz::election {

namespace {

constexpr SubsystemLog kLog{"election"};

// A StateStore that keeps the state in memory (no data directory).
class MemoryStore : public StateStore {
 public:
  Status Save(const HardState&) override { return Status::Ok(); }
};

int StateValue(Role role) {
  switch (role) {
    case Role::kCandidate:
      return 1;
    case Role::kAdmin:
      return 2;
    case Role::kFollower:
    case Role::kObserver:
      return 0;
  }
  return 0;
}

}  // namespace

class ElectionService::Impl : public Observer {
 public:
  Impl(ServiceOptions options, Transport* transport, AdminServices* services)
      : options_(std::move(options)), transport_(transport), services_(services) {}

  void OnTransition(const Transition& t) override {
    // Inside the election's lock: queue it for the callback thread.
    {
      std::lock_guard lock(events_mu_);
      events_.push_back(t);
    }
    events_cv_.notify_one();
    changed_.notify_all();
  }

  void TimerLoop() {
    std::unique_lock lock(mu_);
    auto next_score = std::chrono::steady_clock::now();
    while (!stopping_) {
      const auto now = std::chrono::steady_clock::now();
      if (options_.score && now >= next_score) {
        const std::size_t members = election_->hard_state().electorate.members.size();
        lock.unlock();
        const double score = std::clamp(options_.score(members), 0.0, 1.0);
        lock.lock();
        election_->SetScore(score);
        next_score = now + options_.election.hello_interval;
      }
      election_->Tick(std::chrono::steady_clock::now());
      UpdateMetrics(std::chrono::steady_clock::now());
      const auto deadline = std::min(election_->NextDeadline(), now + std::chrono::milliseconds(250));
      cv_.wait_until(lock, deadline);
    }
  }

  void CallbackLoop() {
    for (;;) {
      Transition t;
      {
        std::unique_lock lock(events_mu_);
        events_cv_.wait(lock, [&] { return !events_.empty() || callbacks_done_; });
        if (events_.empty()) return;
        t = events_.front();
        events_.pop_front();
      }
      Apply(t);
    }
  }

  void Apply(const Transition& t) {
    if (t.role == Role::kAdmin && t.previous != Role::kAdmin) {
      kLog.info("election: admin of term {} ({})", t.term, t.reason);
      if (services_) services_->BecameAdmin(t.term);
    } else if (t.previous == Role::kAdmin && t.role != Role::kAdmin) {
      kLog.info("election: no longer admin in term {} ({})", t.term, t.reason);
      if (services_) services_->StoppedBeingAdmin();
    } else if (!t.admin.empty()) {
      kLog.info("election: {} in term {}, admin {} ({})", RoleName(t.role), t.term, t.admin, t.reason);
    } else {
      kLog.info("election: {} in term {}, no admin ({})", RoleName(t.role), t.term, t.reason);
    }
  }

  void UpdateMetrics(SteadyTime now) {
    if (!probe_) return;
    const Snapshot s = election_->GetSnapshot(now);
    // Without a current admin the age keeps growing from the last heartbeat
    // heard (or from the start), so that an alert on it fires.
    if (s.heartbeat_age) last_heartbeat_ = now - *s.heartbeat_age;
    probe_->Observe(StateValue(s.role), s.term, s.leadership_changes,
                    std::chrono::duration<double>(now - last_heartbeat_).count());
  }

  ServiceOptions options_;
  Transport* transport_;
  AdminServices* services_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Election> election_;
  SteadyTime last_heartbeat_ = std::chrono::steady_clock::now();  // metrics only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  mutable std::condition_variable changed_;  // with mu_: any transition
  bool stopping_ = false;
  std::thread timer_;

  std::mutex events_mu_;
  std::condition_variable events_cv_;
  std::deque<Transition> events_;
  bool callbacks_done_ = false;
  std::thread callbacks_;

  std::unique_ptr<ElectionProbe> probe_;  // null without metrics
};

Result<std::unique_ptr<ElectionService>> ElectionService::Start(ServiceOptions options, Transport* transport,
                                                                prometheus::Registry* metrics,
                                                                AdminServices* services) {
  if (options.election.node_id.empty()) return InvalidArgument("election: node id is empty");
  if (options.election.election_timeout <= options.election.heartbeat_interval) {
    return InvalidArgument("election: the election timeout must exceed the heartbeat interval");
  }
  HardState state;
  std::unique_ptr<StateStore> store;
  if (options.state_path.empty()) {
    store = std::make_unique<MemoryStore>();
  } else {
    auto loaded = FileStateStore::Load(options.state_path);
    if (loaded.ok()) {
      state = std::move(loaded).value();
    } else if (!loaded.status().IsNotFound()) {
      return loaded.status();
    }
    store = std::make_unique<FileStateStore>(options.state_path);
  }
  if (options.election.seed == 0) options.election.seed = std::random_device{}();
  auto impl = std::make_unique<Impl>(std::move(options), transport, services);
  impl->store_ = std::move(store);
  if (metrics) impl->probe_ = std::make_unique<ElectionProbe>(metrics, impl->options_.election.node_id);
  const auto now = std::chrono::steady_clock::now();
  impl->election_ = std::make_unique<Election>(impl->options_.election, state, transport, impl->store_.get(),
                                               impl.get(), now);
  // The first tick now: a lone member is admin before Start returns (and
  // before the first health check runs).
  impl->election_->Tick(now);
  Impl* raw = impl.get();
  impl->callbacks_ = NamedThread("elect-callback", [raw] { raw->CallbackLoop(); });
  impl->timer_ = NamedThread("elect-timer", [raw] { raw->TimerLoop(); });
  return std::unique_ptr<ElectionService>(new ElectionService(std::move(impl)));
}

ElectionService::ElectionService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ElectionService::~ElectionService() { Stop(); }

void ElectionService::Stop() {
  {
    std::lock_guard lock(impl_->mu_);
    if (impl_->stopping_ && !impl_->timer_.joinable()) return;
    impl_->stopping_ = true;
  }
  impl_->cv_.notify_all();
  if (impl_->timer_.joinable()) impl_->timer_.join();
  {
    std::lock_guard lock(impl_->events_mu_);
    impl_->callbacks_done_ = true;
  }
  impl_->events_cv_.notify_all();
  if (impl_->callbacks_.joinable()) impl_->callbacks_.join();
  // Whatever happened last, admin-only services do not outlive the election.
  if (impl_->services_) impl_->services_->StoppedBeingAdmin();
}

void ElectionService::Deliver(const Message& message) {
  {
    std::lock_guard lock(impl_->mu_);
    if (impl_->stopping_) return;
    impl_->election_->Receive(message, std::chrono::steady_clock::now());
  }
  impl_->cv_.notify_all();
}

Snapshot ElectionService::GetSnapshot() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->election_->GetSnapshot(std::chrono::steady_clock::now());
}

Status ElectionService::Trigger(bool force) {
  Status s;
  {
    std::lock_guard lock(impl_->mu_);
    s = impl_->election_->Trigger(std::chrono::steady_clock::now(), force);
  }
  impl_->cv_.notify_all();
  return s;
}

Snapshot ElectionService::WaitForChange(const std::string& admin, std::uint64_t term,
                                        std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu_);
  impl_->changed_.wait_for(lock, timeout, [&] {
    const auto& e = *impl_->election_;
    return !e.admin().empty() && (e.admin() != admin || e.term() != term);
  });
  return impl_->election_->GetSnapshot(std::chrono::steady_clock::now());
}

std::string ElectionService::Resign(std::chrono::milliseconds wait) {
  std::string next;
  {
    std::lock_guard lock(impl_->mu_);
    next = impl_->election_->Resign(std::chrono::steady_clock::now());
  }
  impl_->cv_.notify_all();
  if (next.empty()) return next;
  std::unique_lock lock(impl_->mu_);
  const bool handed = impl_->changed_.wait_for(lock, wait, [&] { return impl_->election_->admin() == next; });
  if (handed) {
    kLog.info("election: handed over to {} (term {})", next, impl_->election_->term());
  } else {
    kLog.warn("election: {} did not take over within {} ms; the others will elect after their timeout",
                 next, wait.count());
  }
  return next;
}

Status ElectionService::AddMember(const std::string& node_id) {
  std::lock_guard lock(impl_->mu_);
  return impl_->election_->AddMember(node_id, std::chrono::steady_clock::now());
}

Status ElectionService::RemoveMember(const std::string& node_id) {
  std::lock_guard lock(impl_->mu_);
  return impl_->election_->RemoveMember(node_id, std::chrono::steady_clock::now());
}

const Options& ElectionService::options() const { return impl_->options_.election; }

}  // namespace bzzz::election
