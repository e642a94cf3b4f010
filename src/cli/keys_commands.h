// `bzzz keys list|rotate|retire|grant|ungrant`: the role keys that seal
// stored context (keys/, docs/keys.md), as clients of a running node's
// /api/v1/keys routes. Changes go to the admin (another node answers 409
// naming it).
#pragma once

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace bzzz::cli {

class KeysCommands {
 public:
  explicit KeysCommands(CLI::App& app);
  ~KeysCommands();
  // The exit code of the keys command that was given, or nullopt.
  std::optional<int> Run();

  struct Args;

 private:
  std::unique_ptr<Args> args_;
};

}  // namespace bzzz::cli
