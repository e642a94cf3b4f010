// Named loggers, one per subsystem: a line says which subsystem wrote it
// ("[tasks]" in text lines, "logger":"tasks" in JSON lines), and an
// operator can turn one subsystem up or down (node.log_levels, e.g.
// "p2p=debug") without flooding the log with every other one.
//
// A subsystem's .cc files declare its logger once and log through it:
//
//   namespace { constexpr SubsystemLog kLog{"tasks"}; }
//   kLog.warn("tasks: writing {} tasks failed", n);
//
// A logger is made on first use from the default logger (its sinks and
// formatter: stderr, redaction, text or JSON, see node/logging.h), at the
// level node.log_levels gives its name, else the default logger's level.
// Include from .cc files (spdlog).
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/logger.h>

namespace bzzz {

// The subsystems with loggers of their own: the names node.log_levels accepts.
std::span<const std::string_view> LoggerNames();

// The logger named `name` (made on first use, registered with spdlog).
std::shared_ptr<spdlog::logger> NamedLogger(std::string_view name);

// Per-subsystem levels; drops the named loggers made so far, so that they
// are made again from the current default logger. SetupLogging calls it
// after installing the default logger.
void SetLoggerLevels(std::map<std::string, spdlog::level::level_enum, std::less<>> levels);

// Parses node.log_levels items ("p2p=debug"): the subsystem must be one of
// LoggerNames() and the level one of spdlog's. Returns "" or the problem.
std::string CheckLoggerLevel(std::string_view item);

class SubsystemLog {
 public:
  explicit constexpr SubsystemLog(std::string_view name) : name_(name) {}
  std::shared_ptr<spdlog::logger> get() const { return NamedLogger(name_); }

  template <typename... Args>
  void trace(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    get()->trace(fmt, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void debug(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    get()->debug(fmt, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    get()->info(fmt, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    get()->warn(fmt, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    get()->error(fmt, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void critical(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
    get()->critical(fmt, std::forward<Args>(args)...);
  }
  template <typename T>
  void warn(const T& msg) const {
    get()->warn(msg);
  }
  template <typename T>
  void info(const T& msg) const {
    get()->info(msg);
  }
  template <typename T>
  void error(const T& msg) const {
    get()->error(msg);
  }
  template <typename T>
  void debug(const T& msg) const {
    get()->debug(msg);
  }

 private:
  std::string_view name_;
};

}  // namespace bzzz
