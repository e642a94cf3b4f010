#include "tasks/errc.h"

#include <string>

namespace bzzz::tasks {
namespace {

class TasksCategory final : public ErrorCategory {
 public:
  const char* name() const noexcept override { return "tasks"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kQueueFull: return "queue_full";
      case Errc::kStoreBehind: return "store_behind";
      case Errc::kStaleAttempt: return "stale_attempt";
      case Errc::kAlreadyFinished: return "already_finished";
      case Errc::kNotDead: return "not_dead";
    }
    return "unknown";
  }
  StatusCode Generic(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kQueueFull:
      case Errc::kStoreBehind:
        return StatusCode::kResourceExhausted;
      case Errc::kStaleAttempt:
        return StatusCode::kFailedPrecondition;
      case Errc::kAlreadyFinished:
      case Errc::kNotDead:
        return StatusCode::kConflict;
    }
    return StatusCode::kInternal;
  }
  int HttpStatus(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kQueueFull:
      case Errc::kStoreBehind:
        return 429;
      case Errc::kStaleAttempt:
      case Errc::kAlreadyFinished:
      case Errc::kNotDead:
        return 409;
    }
    return 500;
  }
};

}  // namespace

const ErrorCategory& Category() {
  static const TasksCategory kCategory;
  return kCategory;
}

}  // namespace bzzz::tasks
