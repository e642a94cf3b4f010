// The election's durable state (term, vote, electorate) in
// <data_dir>/election/state.json, replaced atomically (write, fsync, rename,
// fsync the directory) on every change.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "election/election.h"

namespace bzzz::election {

std::string HardStateToJson(const HardState& state);
// InvalidArgument naming the field for anything HardStateToJson would not write.
Result<HardState> HardStateFromJson(std::string_view json);

class FileStateStore : public StateStore {
 public:
  explicit FileStateStore(std::string path) : path_(std::move(path)) {}
  Status Save(const HardState& state) override;
  // NotFound when there is no file (a fresh node); InvalidArgument naming
  // the file when it is damaged.
  static Result<HardState> Load(const std::string& path);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace bzzz::election
