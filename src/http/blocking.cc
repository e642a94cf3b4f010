#include "http/blocking.h"

#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include "base/log.h"

namespace bzzz::http {

namespace {
constexpr SubsystemLog kLog{"http"};
}  // namespace

void BlockingRuns::Run(const std::string& key, const std::string& request_id, Responder responder,
                       std::function<Response()> work) {
  {
    std::lock_guard lock(mu_);
    auto it = waiting_.find(key);
    if (it != waiting_.end()) {
      it->second.push_back({std::move(responder), request_id});
      return;
    }
    if (waiting_.size() >= max_runs_) {
      constexpr std::string_view kBusy = "too many operations in progress; retry shortly";
      Response busy = busy_ ? busy_(kBusy, request_id) : ErrorResponse(429, "too_many_requests", kBusy, request_id);
      busy.headers.Set("Retry-After", "1");
      responder(std::move(busy));
      return;
    }
    waiting_[key].push_back({std::move(responder), request_id});
  }
  threads_.Spawn([this, key, work = std::move(work)] {
    std::optional<Response> response;
    try {
      response = work();
    } catch (const std::exception& e) {
      kLog.error("http: {} failed: {}", key, e.what());
    }
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(mu_);
      waiters = std::move(waiting_[key]);
      waiting_.erase(key);
    }
    for (auto& w : waiters) {
      w.respond(response ? *response : ErrorResponse(500, "internal", "internal error", w.request_id));
    }
  });
}

}  // namespace bzzz::http
