// `bzzz cluster init|status|members|token create|revoke`: cluster membership
// (p2p/cluster_services.h, docs/security.md). `init` and `token create
// --data-dir` work offline on a data directory (with its cluster key);
// the others are clients of a running node's /api/v1/cluster routes.
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class ClusterCommands {
 public:
  explicit ClusterCommands(CLI::App& app);
  ~ClusterCommands();
  // The exit code of the cluster command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
