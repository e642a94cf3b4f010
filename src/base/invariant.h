// BZZZ_INVARIANT: a property the code relies on for correctness (one admin
// per term, a task succeeds at most once), checked where it must hold, in
// every build. A violation is a bug that would otherwise corrupt state
// quietly, so it stops the process at once with the condition, the place
// and the message on stderr (the seeded simulations then fail with a seed
// that replays it).
#pragma once

#include <string>

namespace bzzz {

[[noreturn]] void InvariantFailed(const char* condition, const char* file, int line,
                                  const std::string& message);

}  // namespace bzzz

#define BZZZ_INVARIANT(condition, message)                                                \
  do {                                                                                    \
    if (!(condition)) ::bzzz::InvariantFailed(#condition, __FILE__, __LINE__, (message)); \
  } while (false)
