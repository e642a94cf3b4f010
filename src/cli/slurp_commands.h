// `bzzz slurp status|events|event|post|records|dlq list|replay|purge`:
// clients of the SLURP routes (slurp/service.h, docs/slurp.md).
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class SlurpCommands {
 public:
  explicit SlurpCommands(CLI::App& app);
  ~SlurpCommands();
  // The exit code of the command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
