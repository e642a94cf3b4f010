// `bzzz bench`: the nO KPI table measured against a running node. An
// open-loop load generator (requests due at a fixed rate, latency counted
// from when each was due, so a stalled server cannot hide its queue) over
// keep-alive connections, one route after another, then the table of
// requests/s, p50/p90/p95/p99/max and errors with the nO runbook's targets
// (p50 < 100 ms, p90 < 300 ms, p95 < 500 ms, p99 < 1 s, >= 1000 req/s with
// 500 concurrent users, errors < 0.1%). Exit 0 when every target holds, 1
// when one does not, 3 when the node cannot be reached.
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class BenchCommand {
 public:
  explicit BenchCommand(CLI::App& app);
  ~BenchCommand();
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
