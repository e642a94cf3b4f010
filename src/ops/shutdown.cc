#include "ops/shutdown.h"

#include "base/log.h"
#include "base/threads.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

namespace bzzz::ops {

namespace {
constexpr SubsystemLog kLog{"ops"};
}  // namespace

std::string_view HandlerStateName(HandlerState state) {
  switch (state) {
    case HandlerState::kPending: return "pending";
    case HandlerState::kRunning: return "running";
    case HandlerState::kDone: return "done";
    case HandlerState::kFailed: return "failed";
    case HandlerState::kTimedOut: return "timed_out";
  }
  return "unknown";
}

class ShutdownCoordinator::Impl : public std::enable_shared_from_this<ShutdownCoordinator::Impl> {
 public:
  // What a step's thread reports; shared with it.
  struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status status;
  };
  struct Handler {
    ShutdownHandlerInfo info;
    std::function<Status()> fn;
    std::size_t order = 0;
    std::shared_ptr<Outcome> outcome;  // set when the step starts
  };

  Status AddHandler(std::string name, int priority, std::chrono::milliseconds timeout, std::function<Status()> fn) {
    std::lock_guard lock(mu_);
    if (status_.requested) return Conflict("shutdown already started");
    Handler h;
    h.info.name = std::move(name);
    h.info.priority = priority;
    h.info.timeout = timeout;
    h.fn = std::move(fn);
    h.order = handlers_.size();
    handlers_.push_back(std::move(h));
    std::stable_sort(handlers_.begin(), handlers_.end(),
                     [](const Handler& a, const Handler& b) { return a.info.priority < b.info.priority; });
    return Status::Ok();
  }

  Status Request(std::string reason) {
    {
      std::lock_guard lock(mu_);
      if (status_.requested) {
        return Conflict("shutdown already in progress (requested by " + status_.reason + ")");
      }
      status_.requested = true;
      status_.reason = std::move(reason);
      status_.requested_at = std::chrono::system_clock::now();
    }
    kLog.info("shutdown: requested by {}", status_.reason);
    runner_ = NamedThread("shutdown", [self = shared_from_this()] { self->RunAll(); });
    return Status::Ok();
  }

  void RunAll() {
    std::size_t count;
    {
      std::lock_guard lock(mu_);
      count = handlers_.size();
    }
    for (std::size_t i = 0; i < count; ++i) {
      std::function<Status()> fn;
      std::chrono::milliseconds timeout;
      std::string name;
      {
        std::lock_guard lock(mu_);
        handlers_[i].info.state = HandlerState::kRunning;
        fn = handlers_[i].fn;
        timeout = handlers_[i].info.timeout;
        name = handlers_[i].info.name;
      }
      kLog.info("shutdown: {} (timeout {} ms)", name, timeout.count());
      const auto started = std::chrono::steady_clock::now();
      // Each step runs on its own thread so that a stuck step cannot hold up
      // the ones after it; a step past its timeout is abandoned.
      auto outcome = std::make_shared<Outcome>();
      {
        std::lock_guard lock(mu_);
        handlers_[i].outcome = outcome;
      }
      threads_.Spawn([fn, outcome] {
        Status s;
        try {
          s = fn();
        } catch (const std::exception& e) {
          s = Internal(e.what());
        }
        std::lock_guard lock(outcome->mu);
        outcome->status = std::move(s);
        outcome->done = true;
        outcome->cv.notify_all();
      });
      HandlerState state;
      std::string error;
      {
        std::unique_lock lock(outcome->mu);
        if (outcome->cv.wait_for(lock, timeout, [&] { return outcome->done; })) {
          state = outcome->status.ok() ? HandlerState::kDone : HandlerState::kFailed;
          error = outcome->status.ok() ? "" : outcome->status.ToString();
        } else {
          state = HandlerState::kTimedOut;
          error = "did not finish within " + std::to_string(timeout.count()) + " ms";
        }
      }
      const auto took =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      if (state != HandlerState::kDone) kLog.warn("shutdown: {} {}: {}", name, HandlerStateName(state), error);
      std::lock_guard lock(mu_);
      handlers_[i].info.state = state;
      handlers_[i].info.duration = took;
      handlers_[i].info.error = std::move(error);
    }
    std::lock_guard lock(mu_);
    status_.finished = true;
    kLog.info("shutdown: complete");
    cv_.notify_all();
  }

  bool WaitFor(std::optional<std::chrono::milliseconds> timeout) {
    std::unique_lock lock(mu_);
    auto done = [&] { return status_.finished; };
    if (timeout) return cv_.wait_for(lock, *timeout, done);
    cv_.wait(lock, done);
    return true;
  }

  ShutdownStatus GetStatus() const {
    std::lock_guard lock(mu_);
    return status_;
  }

  std::vector<ShutdownHandlerInfo> Handlers() const {
    std::lock_guard lock(mu_);
    std::vector<ShutdownHandlerInfo> out;
    for (const auto& h : handlers_) out.push_back(h.info);
    return out;
  }

  std::size_t StepsStillRunning() const {
    std::vector<std::shared_ptr<Outcome>> outcomes;
    {
      std::lock_guard lock(mu_);
      for (const auto& h : handlers_) {
        if (h.outcome) outcomes.push_back(h.outcome);
      }
    }
    std::size_t running = 0;
    for (const auto& o : outcomes) {
      std::lock_guard lock(o->mu);
      running += !o->done;
    }
    return running;
  }

  void Join() {
    if (runner_.joinable() && runner_.get_id() != std::this_thread::get_id()) runner_.join();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Handler> handlers_;
  ShutdownStatus status_;
  std::thread runner_;
  // The steps' threads, last: a step that overran is still joined here,
  // never detached (node.cc exits deliberately instead of waiting).
  OwnedThreads threads_;
};

ShutdownCoordinator::ShutdownCoordinator() : impl_(std::make_shared<Impl>()) {}
ShutdownCoordinator::~ShutdownCoordinator() {
  impl_->Join();
}
Status ShutdownCoordinator::AddHandler(std::string name, int priority, std::chrono::milliseconds timeout,
                                       std::function<Status()> fn) {
  return impl_->AddHandler(std::move(name), priority, timeout, std::move(fn));
}
Status ShutdownCoordinator::Request(std::string reason) { return impl_->Request(std::move(reason)); }
void ShutdownCoordinator::Wait() { impl_->WaitFor(std::nullopt); }
bool ShutdownCoordinator::WaitFor(std::chrono::milliseconds timeout) { return impl_->WaitFor(timeout); }
ShutdownStatus ShutdownCoordinator::GetStatus() const { return impl_->GetStatus(); }
std::vector<ShutdownHandlerInfo> ShutdownCoordinator::Handlers() const { return impl_->Handlers(); }
std::size_t ShutdownCoordinator::StepsStillRunning() const { return impl_->StepsStillRunning(); }

}  // namespace bzzz::ops
