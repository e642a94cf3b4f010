#include "support/support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace bzzz::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/bzzz-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  // Searchable by others: a root node's sandbox runs as another uid and must
  // reach the work directories under a data directory made here.
  chmod(pattern.c_str(), 0711);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& content) const {
  const std::string path = File(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::uint16_t FreeServicePort() {
  int low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &low) != 1) low = 32768;
    std::fclose(f);
  }
  const int first = 10000;
  if (low <= first + 100) return FreePort();
  std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 200; ++attempt) {
    const auto port = static_cast<std::uint16_t>(first + static_cast<int>(rng() % static_cast<unsigned>(low - first)));
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (free) return port;
  }
  return FreePort();
}

std::string RawExchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "";
  }
  std::size_t sent = 0;
  std::string answer;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Send and read interleaved, so that a server answering early (413) is heard.
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < bytes.size() ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 50) < 0) break;
    if (p.revents & POLLIN) {
      char buf[65536];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<std::size_t>(n));
    }
    if (sent < bytes.size() && (p.revents & POLLOUT)) {
      const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0) {
        sent = bytes.size();  // the server closed; keep reading what it said
      } else {
        sent += static_cast<std::size_t>(n);
      }
      if (sent == bytes.size()) shutdown(fd, SHUT_WR);
    }
    if (p.revents & (POLLHUP | POLLERR)) {
      if (!(p.revents & POLLIN)) break;
    }
  }
  close(fd);
  return answer;
}

int RawStatus(const std::string& raw) {
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) return 0;
  return std::atoi(raw.substr(9, 3).c_str());
}

Process::Process(const std::string& binary, const std::vector<std::string>& args,
                 const std::vector<std::string>& env, const std::string& log_file) {
  pid_ = fork();
  if (pid_ == 0) {
    if (!log_file.empty()) {
      const int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
    }
    // Unblock what the test runner may have blocked.
    sigset_t set;
    sigemptyset(&set);
    sigprocmask(SIG_SETMASK, &set, nullptr);
    // Every node a test starts aborts if a route blocks an I/O thread
    // (base/threads.h); a test's own env entries may override it.
    setenv("BZZZ_ABORT_ON_IO_BLOCKING", "1", 1);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

void Process::Signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

bool Process::Running() {
  if (reaped_) return false;
  const pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

int Process::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reaped_) {
    if (!Running()) break;
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    usleep(10000);
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

MiniServer::MiniServer(Handler handler) : handler_(std::move(handler)) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 16) != 0) {
    throw std::runtime_error("MiniServer: cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof a;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

MiniServer::~MiniServer() {
  stop_ = true;
  shutdown(fd_, SHUT_RDWR);
  close(fd_);
  thread_.join();
}

std::vector<std::string> MiniServer::requests() {
  std::lock_guard l(mu_);
  return requests_;
}

std::vector<std::string> MiniServer::heads() {
  std::lock_guard l(mu_);
  return heads_;
}

void MiniServer::Serve() {
  while (!stop_) {
    int c = accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    std::string in;
    char buf[4096];
    std::size_t need = std::string::npos;
    while (true) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      auto hdr = in.find("\r\n\r\n");
      if (hdr != std::string::npos && need == std::string::npos) {
        std::size_t len = 0;
        auto cl = in.find("Content-Length: ");
        if (cl == std::string::npos) cl = in.find("content-length: ");
        if (cl != std::string::npos && cl < hdr) len = std::stoul(in.substr(cl + 16));
        need = hdr + 4 + len;
      }
      if (need != std::string::npos && in.size() >= need) break;
    }
    const auto sp1 = in.find(' '), sp2 = in.find(' ', sp1 + 1);
    const std::string method = in.substr(0, sp1), path = in.substr(sp1 + 1, sp2 - sp1 - 1);
    const auto hdr = in.find("\r\n\r\n");
    const std::string body = hdr == std::string::npos ? "" : in.substr(hdr + 4);
    {
      std::lock_guard l(mu_);
      requests_.push_back(method + " " + path + " " + body);
      heads_.push_back(hdr == std::string::npos ? in : in.substr(0, hdr));
    }
    auto [status, out] = handler_(method, path, body);
    std::string res;
    if (status == 302 || status == 303) {
      // A redirect: the handler's body is the Location.
      res = "HTTP/1.1 " + std::to_string(status) + " Found\r\nLocation: " + out +
            "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    } else {
      res = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
            std::to_string(out.size()) + "\r\nConnection: close\r\n\r\n" + out;
    }
    [[maybe_unused]] auto w = write(c, res.data(), res.size());
    close(c);
  }
}

}  // namespace bzzz::testing
