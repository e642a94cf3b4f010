// `bzzz trigger-election`, `election status` and `election electorate
// add|remove`: clients of the election routes (election/api.h).
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class ElectionCommands {
 public:
  explicit ElectionCommands(CLI::App& app);
  ~ElectionCommands();
  // The exit code of the command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
