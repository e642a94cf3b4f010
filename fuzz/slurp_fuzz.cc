// Fuzzes SLURP's API event parser (slurp/record.h ParseApiEvent): the body
// of POST /api/v1/slurp/events, from any caller with slurp:write.
// Properties: no crash; an accepted event keeps within its limits, its
// stored form parses back to the same event, and its record address is a
// valid one.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "slurp/record.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto event = bzzz::slurp::ParseApiEvent(body);
  if (!event.ok()) {
    Check(event.status().code() == bzzz::StatusCode::kInvalidArgument);
    return 0;
  }
  Check(bzzz::slurp::ValidName(event->project));
  Check(event->task_id.empty() || bzzz::slurp::ValidName(event->task_id));
  Check(event->role.empty() || bzzz::slurp::ValidName(event->role));
  Check(!event->summary.empty() && event->summary.size() <= 1024);
  Check(!event->decision.empty() && event->decision.size() <= (16u << 10));
  Check(event->authors.size() <= 32 && event->citations.size() <= 64);
  const std::string stored = bzzz::slurp::ApiEventJson(*event);
  auto again = bzzz::slurp::ApiEventFromJson(stored);
  Check(again.ok());
  Check(again->summary == event->summary && again->decision == event->decision &&
        again->citations.size() == event->citations.size() && again->authors == event->authors);
  Check(bzzz::slurp::ApiEventJson(*again) == stored);
  return 0;
}
