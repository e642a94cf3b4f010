#include "ops/request_log.h"

#include <algorithm>

#include "security/redact.h"

namespace bzzz::ops {

RequestLog::RequestLog(std::size_t capacity) : ring_(std::max<std::size_t>(capacity, 1)) {}

void RequestLog::Record(const http::RequestRecord& r) {
  std::lock_guard lock(mu_);
  // Assign into the slot in place: its strings keep their capacity, so the
  // ring stops allocating once it has wrapped.
  RequestEntry& e = ring_[next_ % ring_.size()];
  e.time = r.time;
  e.method.assign(r.method);
  e.route.assign(r.route);
  e.path.assign(r.path);
  e.status = r.status;
  e.duration_ms = std::chrono::duration<double, std::milli>(r.duration).count();
  e.request_id.assign(r.request_id);
  e.principal.assign(r.principal);
  e.remote_address.assign(r.remote_address);
  e.response_bytes = r.response_bytes;
  ++next_;
}

std::vector<RequestEntry> RequestLog::Recent(std::size_t limit) const {
  std::lock_guard lock(mu_);
  const std::size_t n = std::min<std::uint64_t>({limit, ring_.size(), next_});
  std::vector<RequestEntry> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(ring_[(next_ - 1 - i) % ring_.size()]);
  // Paths may carry secrets (a token in a URL): masked when shown, which is
  // rare, rather than on every request.
  for (RequestEntry& e : out) e.path = security::Redact(e.path, security::RedactionSite::kLog);
  return out;
}

std::uint64_t RequestLog::total() const {
  std::lock_guard lock(mu_);
  return next_;
}

}  // namespace bzzz::ops
