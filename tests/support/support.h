// Helpers shared by the test suites: temporary directories, free ports, raw
// sockets for malformed requests, and child processes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bzzz::testing {

// A fresh directory under $TMPDIR, removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes `content` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// The whole content of a file ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// A TCP port on 127.0.0.1 that was free a moment ago.
std::uint16_t FreePort();

// The same, below the kernel's ephemeral range (ip_local_port_range): for a
// server a test stops and starts again on its port. An ephemeral port freed
// by a stopped server can be taken meanwhile by any outgoing connection on
// the machine (another test's clients), and the restart then fails to bind.
std::uint16_t FreeServicePort();

// Sends `bytes` to 127.0.0.1:port, half-closes, and returns everything the
// server answered until it closed or `timeout` passed.
std::string RawExchange(std::uint16_t port, const std::string& bytes,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

// The status code of the first response in `raw` ("HTTP/1.1 404 ..."), or 0.
int RawStatus(const std::string& raw);

// A child process (fork + execv), killed with SIGKILL on destruction if
// still running.
class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args, const std::vector<std::string>& env = {},
          const std::string& log_file = "");
  ~Process();
  pid_t pid() const { return pid_; }
  void Signal(int sig) const;
  // Waits for exit; returns the exit code, 128+signal when killed, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  bool Running();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// A tiny HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for servers that
// cannot exist here (an LLM server, a webhook target, an identity
// provider): one request per connection, answered by
// `handler(method, path, body)` → (status, body), served as JSON.
class MiniServer {
 public:
  // The handler gets (method, target with its query, body) and answers
  // (status, body); for 302 and 303 the body is the Location.
  using Handler = std::function<std::pair<int, std::string>(const std::string&, const std::string&, const std::string&)>;
  explicit MiniServer(Handler handler);
  ~MiniServer();
  MiniServer(const MiniServer&) = delete;
  MiniServer& operator=(const MiniServer&) = delete;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }
  // "METHOD path body" of every request so far.
  std::vector<std::string> requests();
  // The head (request line and header lines, as received) of every request so far.
  std::vector<std::string> heads();

 private:
  void Serve();
  Handler handler_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::vector<std::string> heads_;
};

// Polls `predicate` every 20 ms until it is true or `timeout` passes.
template <typename Predicate>
bool Eventually(Predicate predicate, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    struct timespec ts {0, 20 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  return predicate();
}

}  // namespace bzzz::testing
