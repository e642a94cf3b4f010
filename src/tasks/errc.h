// The tasks subsystem's error reasons (base/errc.h): what a caller may
// branch on when a task operation is refused. The HTTP status of each is
// what the task routes answer (through http::ErrorFromStatus).
#pragma once

#include <system_error>

#include "base/errc.h"

namespace bzzz::tasks {

enum class Errc {
  kQueueFull = 1,    // 429: tasks.max_queue_depth tasks are open
  kStoreBehind,      // 429: the writer has more unwritten changes than it may hold
  kStaleAttempt,     // 409: the attempt reported is not the task's current one (its lease moved on)
  kAlreadyFinished,  // 409: cancel of a task that has finished
  kNotDead,          // 409: replay or purge of a task that is not in the dead-letter queue
};

const ErrorCategory& Category();
inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), Category()}; }

}  // namespace bzzz::tasks

template <>
struct std::is_error_code_enum<bzzz::tasks::Errc> : std::true_type {};
