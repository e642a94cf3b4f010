// SecretStore: secrets a task names instead of carrying (`secret://NAME`
// as the value of a command's `env` entry or an http task's header), so
// the stored task, the API and the P2P grant hold only the reference. The
// value is looked up when the attempt runs, on the node that runs it:
// first the environment variable BZZZ_SECRET_<NAME>, then the JSON object
// file agents.secrets_file ({"NAME": "value", ...}), which must not be
// readable by group or others. The file is read at each lookup, so a
// rotated secret is used by the next attempt without a restart.
#pragma once

#include <string>

#include "base/status.h"

namespace bzzz::executors {

inline constexpr std::string_view kSecretScheme = "secret://";

class SecretStore {
 public:
  explicit SecretStore(std::string file = "") : file_(std::move(file)) {}

  // `value` itself when it is not a reference. For "secret://NAME": the
  // secret, InvalidArgument for a bad NAME ([A-Za-z0-9_], 1..64), NotFound
  // when no source defines it, FailedPrecondition for a file others may read.
  Result<std::string> Resolve(const std::string& value) const;

 private:
  std::string file_;
};

}  // namespace bzzz::executors
