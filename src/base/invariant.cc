#include "base/invariant.h"

#include <cstdio>
#include <cstdlib>

namespace bzzz {

void InvariantFailed(const char* condition, const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "FATAL invariant violated at %s:%d: %s (%s)\n", file, line, message.c_str(), condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace bzzz
