// OwnedThreads: the threads one object starts for work of its own (a
// shutdown step, a health check run, a blocking request), kept instead of
// detached. Finished threads are joined as new ones start; the rest are
// joined by JoinAll() or the destructor, so nothing the threads use can be
// destroyed under them by their owner. A thread that never returns blocks
// JoinAll: owners that cannot wait check Running() and exit the process
// deliberately instead (node.cc after a shutdown overrun).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bzzz {

class OwnedThreads {
 public:
  OwnedThreads() = default;
  ~OwnedThreads() { JoinAll(); }
  OwnedThreads(const OwnedThreads&) = delete;
  OwnedThreads& operator=(const OwnedThreads&) = delete;

  void Spawn(std::function<void()> fn);
  // Joins every thread. Called from one of its own threads (the owner was
  // destroyed by its last reference, held by that thread), that thread is
  // let go: it is returning and touches nothing of the owner any more.
  void JoinAll();
  // Threads started and not yet returned.
  std::size_t Running() const;

 private:
  struct Slot {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void ReapLocked();

  mutable std::mutex mu_;
  std::list<Slot> slots_;
};

// Names the calling thread as `top -H`, `ps -L`, perf and gdb show it.
// Linux keeps at most 15 bytes: a longer name is cut. The node's threads
// and their names are listed in docs/architecture.md ("Threads").
void NameThisThread(const char* name);

// A thread named `name` (as above) that runs `fn`.
template <typename F>
std::thread NamedThread(const char* name, F fn) {
  return std::thread([name = std::string(name), fn = std::move(fn)]() mutable {
    NameThisThread(name.c_str());
    fn();
  });
}

// SerialQueue: one owned thread, named `name`, that runs the functions
// posted to it, in the order they were posted (the task writer's
// acknowledgements, so that the writer goes on writing while answers are
// built). Stop() runs what was posted before it, then joins; posts after
// Stop() are dropped.
class SerialQueue {
 public:
  explicit SerialQueue(const char* name);
  ~SerialQueue() { Stop(); }
  SerialQueue(const SerialQueue&) = delete;
  SerialQueue& operator=(const SerialQueue&) = delete;

  void Post(std::function<void()> fn);
  void PostAll(std::vector<std::function<void()>> fns);
  void Stop();

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// Threads that must never block on disk or the network (the HTTP I/O
// threads) mark themselves; code that blocks (the store) calls
// CheckMayBlock first. A call on a marked thread is counted and reported
// on stderr (the first ten), and aborts the process when the environment
// has BZZZ_ABORT_ON_IO_BLOCKING=1 (the end-to-end tests set it), so a
// route that blocks its I/O thread fails the suite instead of slowing a
// node down unnoticed.
void MarkNoBlockingThread();
bool OnNoBlockingThread();
void CheckMayBlock(const char* what);
std::uint64_t BlockingViolations();

}  // namespace bzzz
