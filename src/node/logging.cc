#include "node/logging.h"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
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

// The level of a text line in capitals, padded to five columns: what the
// runbooks grep for (ERROR|FATAL, WARN). JSON lines keep spdlog's names.
class UpperLevel final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view name;
    switch (msg.level) {
      case spdlog::level::trace: name = "TRACE"; break;
      case spdlog::level::debug: name = "DEBUG"; break;
      case spdlog::level::info: name = "INFO "; break;
      case spdlog::level::warn: name = "WARN "; break;
      case spdlog::level::err: name = "ERROR"; break;
      case spdlog::level::critical: name = "FATAL"; break;
      default: name = "     "; break;
    }
    dest.append(name);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<UpperLevel>(); }
};

// Formats each line as text or one JSON object, after redacting secrets.
class RedactingFormatter final : public spdlog::formatter {
 public:
  explicit RedactingFormatter(bool json) : json_(json), text_(spdlog::pattern_time_type::utc) {
    text_.add_flag<UpperLevel>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%*%$ [%n] %v");
  }

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string payload = security::Redact(std::string_view(msg.payload.data(), msg.payload.size()), security::RedactionSite::kLog);
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

// Writes log lines to stderr without ever making the caller wait for the
// write. Lines are formatted by the calling thread into a buffer; a writer
// thread does the write() calls. Lines of the access logger are batched
// (handed over when 64 KiB have gathered, or by the periodic flush): at tens
// of thousands of requests a second one write() per line would cost more
// than serving the request. Every other line is handed over at once, after
// what was buffered before it, so order is kept; error lines and explicit
// flushes also wait (bounded) until they are written. If stderr stalls,
// queued batches beyond 8 MiB are dropped, never the caller blocked.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  StderrSink() : writer_([this] { WriterLoop(); }) {}

  ~StderrSink() override {
    {
      std::lock_guard sink_lock(mutex_);
      Handoff();
    }
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    writer_.join();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    buffer_.append(line.data(), line.size());
    const bool batched = std::string_view(msg.logger_name.data(), msg.logger_name.size()) == "access";
    if (batched && buffer_.size() < kBatchBytes) return;
    Handoff();
    if (msg.level >= spdlog::level::err) WaitWritten();
  }

  void flush_() override {
    Handoff();
    WaitWritten();
  }

 private:
  static constexpr std::size_t kBatchBytes = 64 * 1024;
  static constexpr std::size_t kMaxQueuedBytes = 8u << 20;

  // Caller holds the sink mutex.
  void Handoff() {
    if (buffer_.empty()) return;
    {
      std::lock_guard lock(queue_mu_);
      if (queued_bytes_ + buffer_.size() <= kMaxQueuedBytes) {
        queued_bytes_ += buffer_.size();
        queue_.push_back(std::move(buffer_));
      }
    }
    buffer_.clear();
    buffer_.reserve(kBatchBytes + 4096);
    queue_cv_.notify_one();
  }

  void WaitWritten() {
    std::unique_lock lock(queue_mu_);
    written_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return queue_.empty() && !writing_; });
  }

  void WriterLoop() {
    std::unique_lock lock(queue_mu_);
    for (;;) {
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      std::string batch = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      lock.unlock();
      WriteAll(batch);
      lock.lock();
      writing_ = false;
      queued_bytes_ -= batch.size();
      written_cv_.notify_all();
    }
  }

  static void WriteAll(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(2, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // stderr is gone: drop
      done += static_cast<std::size_t>(n);
    }
  }

  std::string buffer_;  // guarded by the sink mutex
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::condition_variable written_cv_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool stopping_ = false;
  std::thread writer_;  // last: starts after the members it uses exist
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
  std::map<std::string, spdlog::level::level_enum, std::less<>> levels;
  for (const auto& item : options.levels) {
    if (std::string problem = CheckLoggerLevel(item); !problem.empty()) {
      return InvalidArgument("log level '" + item + "': " + problem);
    }
    const auto eq = item.find('=');
    levels[item.substr(0, eq)] = spdlog::level::from_str(item.substr(eq + 1));
  }
  const bool json = options.format == "json";
  auto sink = std::make_shared<StderrSink>();
  sink->set_formatter(std::make_unique<RedactingFormatter>(json));

  auto main_logger = std::make_shared<spdlog::logger>("bzzz", sink);
  main_logger->set_level(level);
  main_logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(main_logger);
  SetLoggerLevels(std::move(levels));

  spdlog::drop("access");
  if (options.access_log && level <= spdlog::level::info) {
    // Synchronous on purpose: formatting on the I/O thread is cheaper than a
    // queue per line, and the sink never blocks it.
    auto access = std::make_shared<spdlog::logger>("access", sink);
    access->set_level(spdlog::level::info);
    spdlog::register_logger(access);
  }
  spdlog::flush_every(std::chrono::seconds(1));
  return Status::Ok();
}

void ShutdownLogging() {
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
}

void StopLogging() {
  ShutdownLogging();
  spdlog::shutdown();
}

}  // namespace bzzz::node
