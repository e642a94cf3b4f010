// `bzzz peers`, `p2p peers clear`, `dht cache clear`, `test-p2p-message` and
// `test-dht-operations`: clients of the P2P and DHT routes (p2p/services.h,
// dht/services.h); the clear commands also work offline on a data directory.
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class P2pCommands {
 public:
  explicit P2pCommands(CLI::App& app);
  ~P2pCommands();
  // The exit code of the command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
