// Process-wide logging with spdlog: text or JSON lines on stderr, a level,
// secrets redacted from every line (security/redact.h), and an "access"
// logger for HTTP requests that writes through a bounded asynchronous queue
// (under overload it drops the oldest lines rather than slowing requests).
#pragma once

#include <string>

#include "base/status.h"

namespace bzzz::node {

struct LoggingOptions {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text | json
  bool access_log = true;
};

// Installs the default and "access" loggers. Safe to call again (replaces them).
Status SetupLogging(const LoggingOptions& options);

// Flushes every logger and stops the asynchronous queue.
void ShutdownLogging();

}  // namespace bzzz::node
