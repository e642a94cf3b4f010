#include "node/logging.h"

#include <spdlog/async.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "base/clock.h"
#include "security/redact.h"

namespace bzzz::node {

namespace {

void AppendJsonString(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"': dest.append(std::string_view("\\\"")); break;
      case '\\': dest.append(std::string_view("\\\\")); break;
      case '\n': dest.append(std::string_view("\\n")); break;
      case '\r': dest.append(std::string_view("\\r")); break;
      case '\t': dest.append(std::string_view("\\t")); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          dest.append(std::string_view(buf));
        } else {
          dest.push_back(c);
        }
    }
  }
  dest.push_back('"');
}

// Formats each line as text or one JSON object, after redacting secrets.
class RedactingFormatter final : public spdlog::formatter {
 public:
  explicit RedactingFormatter(bool json) : json_(json), text_("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ [%n] %v", spdlog::pattern_time_type::utc) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string payload = security::RedactSecrets(std::string_view(msg.payload.data(), msg.payload.size()));
    if (!json_) {
      spdlog::details::log_msg copy = msg;
      copy.payload = payload;
      text_.format(copy, dest);
      return;
    }
    dest.append(std::string_view("{\"ts\":\""));
    dest.append(FormatIso8601(msg.time));
    dest.append(std::string_view("\",\"level\":\""));
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(std::string_view(level.data(), level.size()));
    dest.append(std::string_view("\",\"logger\":"));
    AppendJsonString(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    dest.append(std::string_view(",\"msg\":"));
    AppendJsonString(dest, payload);
    dest.append(std::string_view("}\n"));
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<RedactingFormatter>(json_); }

 private:
  bool json_;
  spdlog::pattern_formatter text_;
};

// Writes lines to stderr through a buffer. Lines of the access logger are
// batched (written when 64 KiB have gathered, or by the periodic flush):
// at tens of thousands of requests a second one write() per line would cost
// more than serving the request. Every other line is written at once,
// together with whatever was buffered before it, so order is kept.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~StderrSink() override { WriteOut(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    buffer_.append(line.data(), line.size());
    const bool batched = std::string_view(msg.logger_name.data(), msg.logger_name.size()) == "access";
    if (!batched || buffer_.size() >= kBatchBytes) WriteOut();
  }
  void flush_() override { WriteOut(); }

 private:
  static constexpr std::size_t kBatchBytes = 64 * 1024;

  void WriteOut() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n = ::write(2, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // stderr is gone; drop rather than block the node
      done += static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

  std::string buffer_;
};

}  // namespace

Status SetupLogging(const LoggingOptions& options) {
  const auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return InvalidArgument("unknown log level '" + options.level + "'");
  }
  if (options.format != "text" && options.format != "json") {
    return InvalidArgument("unknown log format '" + options.format + "' (text or json)");
  }
  const bool json = options.format == "json";
  auto sink = std::make_shared<StderrSink>();
  sink->set_formatter(std::make_unique<RedactingFormatter>(json));

  auto main_logger = std::make_shared<spdlog::logger>("bzzz", sink);
  main_logger->set_level(level);
  main_logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(main_logger);

  spdlog::drop("access");
  if (options.access_log && level <= spdlog::level::info) {
    if (!spdlog::thread_pool()) spdlog::init_thread_pool(8192, 1);
    auto access = std::make_shared<spdlog::async_logger>("access", sink, spdlog::thread_pool(),
                                                         spdlog::async_overflow_policy::overrun_oldest);
    access->set_level(spdlog::level::info);
    spdlog::register_logger(access);
  }
  spdlog::flush_every(std::chrono::seconds(1));
  return Status::Ok();
}

void ShutdownLogging() {
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
}

}  // namespace bzzz::node
