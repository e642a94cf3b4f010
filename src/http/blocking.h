// BlockingRuns: runs blocking work for asynchronous routes (live health
// checks, P2P probes, DHT operations) on its own thread, off the I/O threads.
// Concurrent requests with the same key share one run, so a burst of
// identical requests costs one thread; give distinct keys for work that
// must not be shared. At most `max_runs` runs exist at once: past that a
// request gets 429 at once instead of queueing without bound. The run
// threads are owned (base/threads.h): destroying a BlockingRuns waits for
// the runs in progress, so none outlives what it uses.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/threads.h"
#include "http/router.h"

namespace bzzz::http {

class BlockingRuns {
 public:
  // `busy` builds the 429 answer past max_runs (Retry-After: 1 is added);
  // null: the node's ordinary {"error": "too_many_requests"}.
  using BusyResponse = std::function<Response(std::string_view message, std::string_view request_id)>;
  explicit BlockingRuns(std::size_t max_runs = 64, BusyResponse busy = nullptr)
      : max_runs_(max_runs), busy_(std::move(busy)) {}

  void Run(const std::string& key, const std::string& request_id, Responder responder,
           std::function<Response()> work);

 private:
  struct Waiter {
    Responder respond;
    std::string request_id;
  };
  const std::size_t max_runs_;
  const BusyResponse busy_;
  std::mutex mu_;
  std::map<std::string, std::vector<Waiter>> waiting_;
  OwnedThreads threads_;  // last: joined before the members above go
};

}  // namespace bzzz::http
