#include "base/threads.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace bzzz {

void NameThisThread(const char* name) {
  char cut[16];  // 15 bytes and the terminator: more is ERANGE
  std::snprintf(cut, sizeof cut, "%s", name);
  (void)pthread_setname_np(pthread_self(), cut);
}

SerialQueue::SerialQueue(const char* name) : thread_(NamedThread(name, [this] { Run(); })) {}

void SerialQueue::Post(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void SerialQueue::PostAll(std::vector<std::function<void()>> fns) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    for (auto& fn : fns) queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void SerialQueue::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SerialQueue::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and nothing left
    std::deque<std::function<void()>> run;
    run.swap(queue_);
    lock.unlock();
    for (auto& fn : run) fn();
    lock.lock();
  }
}

void OwnedThreads::Spawn(std::function<void()> fn) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(mu_);
  ReapLocked();
  slots_.push_back({std::thread([fn = std::move(fn), done]() mutable {
                      fn();
                      fn = nullptr;  // what it holds goes before the thread counts as done
                      done->store(true, std::memory_order_release);
                    }),
                    done});
}

void OwnedThreads::ReapLocked() {
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (it->done->load(std::memory_order_acquire)) {
      it->thread.join();  // returning or returned: does not block
      it = slots_.erase(it);
    } else {
      ++it;
    }
  }
}

void OwnedThreads::JoinAll() {
  std::list<Slot> slots;
  {
    std::lock_guard lock(mu_);
    slots.swap(slots_);
  }
  const auto self = std::this_thread::get_id();
  for (auto& slot : slots) {
    if (slot.thread.get_id() == self) {
      slot.thread.detach();
    } else if (slot.thread.joinable()) {
      slot.thread.join();
    }
  }
}

std::size_t OwnedThreads::Running() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& slot : slots_) n += !slot.done->load(std::memory_order_acquire);
  return n;
}

namespace {
thread_local bool no_blocking = false;
std::atomic<std::uint64_t> violations{0};
}  // namespace

void MarkNoBlockingThread() { no_blocking = true; }
bool OnNoBlockingThread() { return no_blocking; }

void CheckMayBlock(const char* what) {
  if (!no_blocking) return;
  const std::uint64_t n = violations.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n <= 10) std::fprintf(stderr, "bzzz: %s called on an I/O thread (a route must be declared blocking)\n", what);
  static const bool abort_on_violation = [] {
    const char* v = std::getenv("BZZZ_ABORT_ON_IO_BLOCKING");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  if (abort_on_violation) std::abort();
}

std::uint64_t BlockingViolations() { return violations.load(std::memory_order_relaxed); }

}  // namespace bzzz
