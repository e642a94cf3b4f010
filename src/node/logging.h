// Process-wide logging with spdlog: text or JSON lines on stderr, a level,
// secrets redacted from every line (security/redact.h), and an "access"
// logger for HTTP requests. Lines are written by a writer thread, access
// lines in 64 KiB batches; callers never wait for stderr (if it stalls,
// batches beyond 8 MiB are dropped), except error lines and flushes, which
// wait up to a second for their line to be written.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace bzzz::node {

struct LoggingOptions {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text | json
  bool access_log = true;
  // Per-subsystem levels, "p2p=debug" (base/log.h; node.log_levels).
  std::vector<std::string> levels;
};

// Installs the default and "access" loggers, and the levels of the
// subsystems' named loggers (base/log.h). Safe to call again (replaces them).
Status SetupLogging(const LoggingOptions& options);

// Flushes every logger (waits, bounded, until the lines are written).
void ShutdownLogging();

// Flushes and then drops every logger and stops spdlog's flusher thread;
// call once, at the very end of main.
void StopLogging();

}  // namespace bzzz::node
