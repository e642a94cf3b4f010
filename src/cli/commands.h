// The bzzz command line (CLI11). Subcommands and exit codes are documented
// in docs/cli.md:
//   0 success, 1 the operation failed (unhealthy, invalid configuration,
//   failed migration), 2 usage error, 3 the node cannot be reached,
//   4 authentication or authorization refused (401/403).
#pragma once

namespace bzzz::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitAuth = 4;

// Parses argv and runs the chosen subcommand; returns the exit code.
int RunCli(int argc, char** argv);

}  // namespace bzzz::cli
