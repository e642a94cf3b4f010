#include "config/config.h"

#include "base/hex.h"

#include <algorithm>

namespace bzzz::config {

std::string Config::SqlitePath() const {
  if (!storage.sqlite.path.empty()) return storage.sqlite.path;
  return node.data_dir + "/bzzz.db";
}

std::string TokenHashProblem(std::string_view token_hash) {
  constexpr std::size_t kSaltHex = 2 * kTokenSaltBytes, kDigestHex = 64;
  const std::string_view rest = token_hash.substr(std::min(token_hash.size(), kTokenHashScheme.size()));
  if (token_hash.substr(0, kTokenHashScheme.size()) != kTokenHashScheme || rest.size() != kSaltHex + 1 + kDigestHex ||
      rest[kSaltHex] != ':' || !IsLowerHex(rest.substr(0, kSaltHex)) || !IsLowerHex(rest.substr(kSaltHex + 1))) {
    return "expected \"hmac-sha256:\" + 32 lower-case hex digits of salt + \":\" + 64 of digest "
           "(bzzz token hash prints one)";
  }
  return "";
}

}  // namespace bzzz::config
