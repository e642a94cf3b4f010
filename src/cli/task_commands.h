// `bzzz task submit|get|list|cancel|watch|stats`, `bzzz dlq list|replay|purge`
// and `bzzz agents list|scale`: clients of the tasks API (tasks/api.h).
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class TaskCommands {
 public:
  explicit TaskCommands(CLI::App& app);
  ~TaskCommands();
  // The exit code of the task command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
