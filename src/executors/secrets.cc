#include "executors/secrets.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/json.h"

namespace bzzz::executors {

Result<std::string> SecretStore::Resolve(const std::string& value) const {
  if (value.rfind(kSecretScheme, 0) != 0) return value;
  const std::string name = value.substr(kSecretScheme.size());
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; })) {
    return InvalidArgument("secret reference \"" + value + "\": the name must be 1..64 of [A-Za-z0-9_]");
  }
  if (const char* env = std::getenv(("BZZZ_SECRET_" + name).c_str()); env != nullptr) return std::string(env);
  if (!file_.empty()) {
    struct stat st{};
    if (stat(file_.c_str(), &st) == 0) {
      if (st.st_mode & 077) {
        return FailedPrecondition("agents.secrets_file " + file_ + " may be read by group or others (chmod 600)");
      }
      std::ifstream in(file_);
      std::stringstream text;
      text << in.rdbuf();
      const auto j = ParseJson(text.str());
      if (!j.is_object()) return FailedPrecondition("agents.secrets_file " + file_ + " is not a JSON object");
      if (auto it = j.find(name); it != j.end() && it->is_string()) return it->get<std::string>();
    }
  }
  return NotFound("secret " + name + " is not defined on this node (BZZZ_SECRET_" + name +
                  " or agents.secrets_file)");
}

}  // namespace bzzz::executors
