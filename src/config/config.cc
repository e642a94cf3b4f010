#include "config/config.h"

namespace bzzz::config {

std::string Config::SqlitePath() const {
  if (!storage.sqlite.path.empty()) return storage.sqlite.path;
  return node.data_dir + "/bzzz.db";
}

}  // namespace bzzz::config
