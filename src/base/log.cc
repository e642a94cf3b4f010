#include "base/log.h"

#include <array>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

namespace bzzz {
namespace {

constexpr std::array<std::string_view, 12> kNames = {"cluster", "dht",  "election", "executors", "http",  "node",
                                                     "ops",     "p2p",  "security", "storage",   "tasks", "ucxl"};

struct Levels {
  std::mutex mu;
  std::map<std::string, spdlog::level::level_enum, std::less<>> levels;
  std::set<std::string, std::less<>> made;
};

Levels& State() {
  static Levels* state = new Levels;  // never destroyed: loggers may log during exit
  return *state;
}

}  // namespace

std::span<const std::string_view> LoggerNames() { return kNames; }

std::shared_ptr<spdlog::logger> NamedLogger(std::string_view name) {
  const std::string key(name);
  if (auto logger = spdlog::get(key)) return logger;
  Levels& s = State();
  std::lock_guard lock(s.mu);
  if (auto logger = spdlog::get(key)) return logger;  // made meanwhile
  auto logger = spdlog::default_logger()->clone(key);
  if (auto it = s.levels.find(name); it != s.levels.end()) logger->set_level(it->second);
  spdlog::register_logger(logger);
  s.made.insert(key);
  return logger;
}

void SetLoggerLevels(std::map<std::string, spdlog::level::level_enum, std::less<>> levels) {
  Levels& s = State();
  std::lock_guard lock(s.mu);
  for (const auto& name : s.made) spdlog::drop(name);
  s.made.clear();
  s.levels = std::move(levels);
}

std::string CheckLoggerLevel(std::string_view item) {
  const auto eq = item.find('=');
  if (eq == std::string_view::npos) return "expected <subsystem>=<level>, e.g. p2p=debug";
  const std::string_view name = item.substr(0, eq), level = item.substr(eq + 1);
  bool known = false;
  for (auto n : kNames) known = known || n == name;
  if (!known) {
    std::string list;
    for (auto n : kNames) list += (list.empty() ? "" : "|") + std::string(n);
    return "unknown subsystem '" + std::string(name) + "' (one of " + list + ")";
  }
  const std::string l(level);
  if (spdlog::level::from_str(l) == spdlog::level::off && l != "off") {
    return "unknown level '" + l + "' (trace|debug|info|warn|error|critical|off)";
  }
  return "";
}

}  // namespace bzzz
