#include "p2p/delivery.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <utility>
#include "base/log.h"
#include "base/threads.h"

namespace bzzz::p2p::internal {

namespace {
constexpr SubsystemLog kLog{"p2p"};
}  // namespace

Dispatcher::Dispatcher(std::size_t threads, std::size_t capacity) : capacity_(capacity) {
  for (std::size_t i = 0; i < threads; ++i) workers_.push_back(NamedThread("p2p-deliver", [this] { Work(); }));
}

bool Dispatcher::Push(const std::shared_ptr<Sink>& sink, Message message) {
  return Push(sink, std::move(message), std::chrono::steady_clock::time_point{});
}

bool Dispatcher::Push(const std::shared_ptr<Sink>& sink, Message message,
                      std::chrono::steady_clock::time_point deadline) {
  std::unique_lock sink_lock(sink->mu);
  while (!sink->closed && sink->queue.size() >= capacity_) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    sink->room.wait_until(sink_lock, deadline);
    std::lock_guard lock(mu_);
    if (stopping_) return false;
  }
  if (sink->closed) return true;
  sink->queue.push_back(std::move(message));
  if (sink->scheduled) return true;
  sink->scheduled = true;
  sink_lock.unlock();
  {
    std::lock_guard lock(mu_);
    ready_.push_back(sink);
  }
  cv_.notify_one();
  return true;
}

std::size_t Dispatcher::PushBatch(const std::shared_ptr<Sink>& sink, std::vector<Message> messages,
                                  std::chrono::steady_clock::time_point deadline) {
  std::size_t dropped = 0;
  bool wake = false;
  {
    std::unique_lock sink_lock(sink->mu);
    for (auto& m : messages) {
      while (!sink->closed && sink->queue.size() >= capacity_ && std::chrono::steady_clock::now() < deadline) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) break;
        }
        sink->room.wait_until(sink_lock, deadline);
      }
      if (sink->closed) return dropped;
      if (sink->queue.size() >= capacity_) {
        ++dropped;
        continue;
      }
      sink->queue.push_back(std::move(m));
      if (!sink->scheduled) {
        // Scheduled at once (not at the end): a full queue waited on above
        // must be draining.
        sink->scheduled = true;
        std::lock_guard lock(mu_);
        ready_.push_back(sink);
        wake = true;
      }
    }
  }
  if (wake) cv_.notify_one();
  return dropped;
}

void Dispatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void Dispatcher::Work() {
  for (;;) {
    std::shared_ptr<Sink> sink;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;
      sink = std::move(ready_.front());
      ready_.pop_front();
    }
    std::deque<Message> batch;
    MessageHandler handler;
    {
      std::lock_guard sink_lock(sink->mu);
      const std::size_t n = std::min<std::size_t>(sink->queue.size(), 256);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(sink->queue.front()));
        sink->queue.pop_front();
      }
      handler = sink->handler;
    }
    sink->room.notify_all();
    for (const auto& m : batch) {
      if (!handler) break;
      try {
        handler(m);
      } catch (const std::exception& e) {
        kLog.warn("p2p: handler '{}' threw: {}", sink->name, e.what());
      }
    }
    bool again = false;
    {
      std::lock_guard sink_lock(sink->mu);
      again = !sink->queue.empty() && !sink->closed;
      sink->scheduled = again;
    }
    if (again) {
      std::lock_guard lock(mu_);
      ready_.push_back(std::move(sink));
    }
  }
}

bool DedupWindow::Seen(const PublicKey& sender, std::uint64_t seq) {
  std::lock_guard lock(mu_);
  auto it = senders_.find(std::string(sender.begin(), sender.end()));
  return it != senders_.end() && it->second.seen.contains(seq);
}

bool DedupWindow::FirstTime(const PublicKey& sender, std::uint64_t seq) {
  std::lock_guard lock(mu_);
  auto& w = senders_[std::string(sender.begin(), sender.end())];
  if (!w.seen.insert(seq).second) return false;
  w.order.push_back(seq);
  if (w.order.size() > per_sender_) {
    w.seen.erase(w.order.front());
    w.order.pop_front();
  }
  if (senders_.size() > kMaxSenders) senders_.erase(senders_.begin());
  return true;
}

}  // namespace bzzz::p2p::internal
