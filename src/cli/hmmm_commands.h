// `bzzz hmmm rooms|show|open|post|join|leave|resolve|watch`: clients of the
// HMMM routes (hmmm/service.h, docs/hmmm.md).
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class HmmmCommands {
 public:
  explicit HmmmCommands(CLI::App& app);
  ~HmmmCommands();
  // The exit code of the command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
