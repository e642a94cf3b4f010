#include "node/logging.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "node/node.h"
#include "support/support.h"

namespace bzzz::node {
namespace {

// Redirects fd 2 into a file for the lifetime of the object.
class CapturedStderr {
 public:
  explicit CapturedStderr(const std::string& path) : path_(path) {
    saved_ = dup(2);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
  }
  ~CapturedStderr() {
    dup2(saved_, 2);
    close(saved_);
  }
  std::string Text() const {
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string path_;
  int saved_;
};

TEST(LoggingTest, RejectsUnknownLevelAndFormat) {
  EXPECT_EQ(SetupLogging({"loud", "text", true, {}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SetupLogging({"info", "xml", true, {}}).code(), StatusCode::kInvalidArgument);
}

TEST(LoggingTest, JsonLinesWithSecretsRedacted) {
  testing::TempDir dir;
  CapturedStderr capture(dir.File("err.log"));
  ASSERT_TRUE(SetupLogging({"info", "json", true, {}}).ok());
  spdlog::info("connecting with password=hunter2 and Authorization: Bearer abc.def");
  spdlog::debug("not shown at info");
  spdlog::get("access")->info("127.0.0.1:1 \"GET /health\" 200 10 0.1ms");
  ShutdownLogging();
  const std::string text = capture.Text();
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_EQ(text.find("abc.def"), std::string::npos);
  EXPECT_EQ(text.find("not shown"), std::string::npos);
  std::istringstream lines(text);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("logger") && j.contains("msg")) << line;
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(LoggingTest, SubsystemLinesCarryTheirNameAndLevelsCanBeSetPerSubsystem) {
  testing::TempDir dir;
  CapturedStderr capture(dir.File("err.log"));
  ASSERT_TRUE(SetupLogging({"info", "json", false, {"p2p=debug", "dht=error"}}).ok());
  constexpr SubsystemLog p2p{"p2p"}, dht{"dht"}, tasks{"tasks"};
  p2p.debug("p2p detail shown");
  dht.warn("dht warning hidden");
  dht.error("dht error shown");
  tasks.info("tasks info shown with token=s3cr3t");
  tasks.debug("tasks detail hidden");
  ShutdownLogging();
  const std::string text = capture.Text();
  std::map<std::string, std::string> by_logger;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    by_logger[j["logger"].get<std::string>()] += j["msg"].get<std::string>() + "\n";
  }
  EXPECT_EQ(by_logger["p2p"], "p2p detail shown\n") << text;
  EXPECT_EQ(by_logger["dht"], "dht error shown\n") << text;
  EXPECT_NE(by_logger["tasks"].find("tasks info shown"), std::string::npos) << text;
  EXPECT_EQ(text.find("s3cr3t"), std::string::npos) << "named loggers share the redacting formatter";
  EXPECT_EQ(text.find("hidden"), std::string::npos) << text;

  // Set up again: the named loggers follow the new format and levels.
  CapturedStderr again(dir.File("again.log"));
  ASSERT_TRUE(SetupLogging({"warn", "text", false, {}}).ok());
  p2p.debug("p2p detail now hidden");
  p2p.warn("p2p warning");
  ShutdownLogging();
  const std::string text2 = again.Text();
  EXPECT_EQ(text2.find("hidden"), std::string::npos) << text2;
  EXPECT_NE(text2.find("WARN  [p2p] p2p warning"), std::string::npos) << text2;
}

TEST(LoggingTest, PerSubsystemLevelsAreChecked) {
  EXPECT_EQ(CheckLoggerLevel("p2p=debug"), "");
  EXPECT_NE(CheckLoggerLevel("p2p"), "");
  EXPECT_NE(CheckLoggerLevel("warp=debug"), "");
  EXPECT_NE(CheckLoggerLevel("p2p=loud"), "");
  EXPECT_EQ(SetupLogging({"info", "text", false, {"p2p=loud"}}).code(), StatusCode::kInvalidArgument);
}

TEST(LoggingTest, AccessLinesAreBatchedButNeverLostOnFlushAndKeepOrder) {
  testing::TempDir dir;
  CapturedStderr capture(dir.File("err.log"));
  ASSERT_TRUE(SetupLogging({"info", "text", true, {}}).ok());
  auto access = spdlog::get("access");
  ASSERT_NE(access, nullptr);
  for (int i = 0; i < 5000; ++i) access->info("request {}", i);
  spdlog::warn("after the requests");
  ShutdownLogging();
  const std::string text = capture.Text();
  EXPECT_NE(text.find("request 0\n"), std::string::npos);
  EXPECT_NE(text.find("request 4999\n"), std::string::npos);
  EXPECT_LT(text.find("request 4999\n"), text.find("after the requests")) << "order is kept";
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 5001);
}

// Text lines carry the level in capitals (the runbooks grep ERROR|FATAL).
TEST(LoggingTest, TextLevelsAreCapitals) {
  testing::TempDir dir;
  CapturedStderr capture(dir.File("err.log"));
  ASSERT_TRUE(SetupLogging({"info", "text", false, {}}).ok());
  spdlog::info("an info line");
  spdlog::warn("a warn line");
  spdlog::error("an error line");
  spdlog::critical("a critical line");
  ShutdownLogging();
  const std::string text = capture.Text();
  EXPECT_NE(text.find("Z INFO  [bzzz] an info line"), std::string::npos) << text;
  EXPECT_NE(text.find("Z WARN  [bzzz] a warn line"), std::string::npos) << text;
  EXPECT_NE(text.find("Z ERROR [bzzz] an error line"), std::string::npos) << text;
  EXPECT_NE(text.find("Z FATAL [bzzz] a critical line"), std::string::npos) << text;
}

TEST(LoggingTest, AccessLogCanBeOff) {
  ASSERT_TRUE(SetupLogging({"info", "text", false, {}}).ok());
  EXPECT_EQ(spdlog::get("access"), nullptr);
  ASSERT_TRUE(SetupLogging({"warn", "text", true, {}}).ok());
  EXPECT_EQ(spdlog::get("access"), nullptr) << "access lines are info: off at warn";
}

}  // namespace
}  // namespace bzzz::node
