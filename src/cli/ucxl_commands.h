// `bzzz ucxl get|put|delete|navigate|search|announce|discover`: clients of
// the UCXI API (ucxl/ucxi_api.h); addresses are validated before sending.
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class UcxlCommands {
 public:
  explicit UcxlCommands(CLI::App& app);
  ~UcxlCommands();
  // The exit code of the command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
