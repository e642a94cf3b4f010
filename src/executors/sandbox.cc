#include "executors/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

namespace bzzz::executors {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

bool ValidEnvName(const std::string& name) {
  if (name.empty() || name.size() > 128 || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// Reads what is there from `fd` into `into` up to `limit`, dropping the rest.
// False at end of file.
bool Drain(int fd, std::string& into, std::size_t limit, bool& truncated) {
  char buf[16384];
  const ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    const std::size_t room = into.size() < limit ? limit - into.size() : 0;
    into.append(buf, std::min<std::size_t>(room, static_cast<std::size_t>(n)));
    if (static_cast<std::size_t>(n) > room) truncated = true;
    return true;
  }
  return n < 0 && (errno == EINTR || errno == EAGAIN);
}

// The sandbox uids taken by running tasks, shared by every Sandbox of the
// process (the node's executors and the agent-pool check's probe).
struct UidPool {
  std::mutex mu;
  std::set<int> in_use;
  int cursor = 0;  // where the next search starts: uids are reused last
};

UidPool& Uids() {
  static UidPool pool;
  return pool;
}

// A uid of [start, start + size) held until destroyed; uid -1 when none.
class UidLease {
 public:
  UidLease(int start, int size) {
    UidPool& p = Uids();
    std::lock_guard lock(p.mu);
    for (int i = 0; i < size; ++i) {
      const int candidate = start + (p.cursor + i) % size;
      if (p.in_use.insert(candidate).second) {
        uid_ = candidate;
        p.cursor = (p.cursor + i + 1) % size;
        return;
      }
    }
  }
  ~UidLease() {
    if (uid_ < 0) return;
    UidPool& p = Uids();
    std::lock_guard lock(p.mu);
    p.in_use.erase(uid_);
  }
  UidLease(const UidLease&) = delete;
  UidLease& operator=(const UidLease&) = delete;
  int uid() const { return uid_; }

 private:
  int uid_ = -1;
};

// In the child between fork and exec (async-signal-safe calls only): keeps
// 0, 1, 2 and `keep` (moved to 3, close-on-exec), closes everything else.
void CloseAllBut(int keep, int max_fd) {
  if (keep != 3) {
    dup2(keep, 3);
  }
  fcntl(3, F_SETFD, FD_CLOEXEC);
  if (close_range(4, ~0U, 0) != 0) {
    for (int fd = 4; fd < max_fd; ++fd) close(fd);
  }
}

}  // namespace

bool Sandbox::PerTaskUids() const { return geteuid() == 0 && config_.uid_range_start >= 0; }

std::size_t Sandbox::UidsInUse() {
  UidPool& p = Uids();
  std::lock_guard lock(p.mu);
  return p.in_use.size();
}

Sandbox::Sandbox(config::SandboxConfig config, std::string data_dir) : config_(std::move(config)) {
  if (!config_.work_root.empty()) {
    root_ = config_.work_root;
  } else if (PerTaskUids()) {
    // The data directory is private (0700): tasks' uids could not reach a
    // work directory inside it. Beside it instead: "<data_dir>-sandbox".
    fs::path dir = fs::path(data_dir).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();
    root_ = dir.string() + "-sandbox";
  } else {
    root_ = (fs::path(data_dir) / "sandbox").string();
  }
}

Result<std::string> Sandbox::MakeWorkdir(const std::string& task_id, int attempt) const {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Unavailable("cannot create " + root_ + ": " + ec.message());
  chmod(root_.c_str(), PerTaskUids() ? 0711 : 0700);  // searchable by tasks' uids, never listable
  std::string tmpl = (fs::path(root_) / (task_id + "-" + std::to_string(attempt) + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return Unavailable("cannot create a work directory in " + root_ + ": " + std::strerror(errno));
  // Run hands the directory itself to the task's uid.
  return tmpl;
}

void Sandbox::RemoveWorkdir(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

Result<SandboxResult> Sandbox::Run(const SandboxRequest& r) const {
  if (r.argv.empty() || r.argv.front().empty()) return InvalidArgument("argv: needs at least a program");
  if (r.network && !config_.allow_network) {
    return InvalidArgument("network: this node does not allow sandboxed network access (agents.sandbox.allow_network)");
  }
  const int memory_mb = r.memory_mb > 0 ? std::min(r.memory_mb, config_.memory_limit_mb) : config_.memory_limit_mb;
  const std::size_t max_output =
      r.max_output_bytes > 0 ? std::min(r.max_output_bytes, config_.max_output_bytes) : config_.max_output_bytes;

  std::vector<std::string> args = {config_.bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid",
                                   "65534", "--die-with-parent", "--new-session", "--cap-drop", "ALL"};
  if (r.network) args.insert(args.end(), {"--share-net", "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf",
                                          "--ro-bind-try", "/etc/ssl", "/etc/ssl", "--ro-bind-try", "/etc/hosts", "/etc/hosts"});
  args.insert(args.end(), {"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                           "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin", "--ro-bind-try",
                           "/etc/ld.so.cache", "/etc/ld.so.cache", "--ro-bind-try", "/etc/alternatives",
                           "/etc/alternatives", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  if (!r.workdir.empty()) args.insert(args.end(), {"--bind", r.workdir, "/work", "--chdir", "/work"});
  args.insert(args.end(), {"--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME",
                           "/work", "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8"});
  for (const auto& [k, v] : r.env) {
    if (!ValidEnvName(k)) return InvalidArgument("env: bad variable name \"" + k + "\"");
    args.insert(args.end(), {"--setenv", k, v});
  }
  args.push_back("--");
  args.insert(args.end(), r.argv.begin(), r.argv.end());
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  std::optional<UidLease> lease;
  int run_as = -1;
  if (PerTaskUids()) {
    lease.emplace(config_.uid_range_start, config_.uid_range_size);
    run_as = lease->uid();
    if (run_as < 0) {
      return Unavailable("all " + std::to_string(config_.uid_range_size) +
                         " sandbox uids are in use (agents.sandbox.uid_range_size)");
    }
    if (!r.workdir.empty() && chown(r.workdir.c_str(), static_cast<uid_t>(run_as), static_cast<gid_t>(run_as)) != 0) {
      return Unavailable("cannot hand " + r.workdir + " to uid " + std::to_string(run_as) + ": " + std::strerror(errno));
    }
  }
  int in[2], out[2], err[2], status_pipe[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(status_pipe, O_CLOEXEC)) {
    return Unavailable(std::string("pipe: ") + std::strerror(errno));
  }
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  const int max_fd = static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20));
  const auto started = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) return Unavailable(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    rlimit as{static_cast<rlim_t>(memory_mb) << 20, static_cast<rlim_t>(memory_mb) << 20};
    setrlimit(RLIMIT_AS, &as);
    rlimit fsize{256ull << 20, 256ull << 20};
    setrlimit(RLIMIT_FSIZE, &fsize);
    rlimit core{0, 0};
    setrlimit(RLIMIT_CORE, &core);
    if (run_as >= 0) {
      // Leave root before bubblewrap: it then needs unprivileged user
      // namespaces, and RLIMIT_NPROC binds (root is exempt from it).
      if (setgroups(0, nullptr) != 0 || setgid(static_cast<gid_t>(run_as)) != 0 ||
          setuid(static_cast<uid_t>(run_as)) != 0) {
        const int e = errno;
        [[maybe_unused]] auto n = write(status_pipe[1], &e, sizeof e);
        _exit(127);
      }
      rlimit nproc{static_cast<rlim_t>(config_.max_processes), static_cast<rlim_t>(config_.max_processes)};
      setrlimit(RLIMIT_NPROC, &nproc);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    CloseAllBut(status_pipe[1], max_fd);
    execvp(cargv[0], cargv.data());
    const int e = errno;
    [[maybe_unused]] auto n = write(3, &e, sizeof e);  // the status pipe, moved
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  close(status_pipe[1]);
  int exec_errno = 0;
  const bool exec_failed = read(status_pipe[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
  close(status_pipe[0]);

  SandboxResult res;
  // Feed stdin (bounded by the pipe: small inputs go at once; larger ones
  // are written as the program reads).
  std::size_t fed = 0;
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  int in_fd = r.stdin_data.empty() ? (close(in[1]), -1) : in[1];
  bool out_open = true, err_open = true, killed = false;
  Clock::time_point killed_at;
  const auto kill_if_due = [&](Clock::time_point now) {
    const bool cancelled = r.cancel && r.cancel->load();
    if (killed || (now < r.deadline && !cancelled)) return;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    killed = true;
    killed_at = now;
    (cancelled ? res.cancelled : res.timed_out) = true;
  };
  while (out_open || err_open) {
    const auto now = Clock::now();
    kill_if_due(now);
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out[0], POLLIN, 0};
    if (err_open) fds[n++] = {err[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    const auto wait = killed ? std::chrono::milliseconds(50)
                             : std::min<std::chrono::milliseconds>(
                                   std::chrono::milliseconds(50),
                                   std::chrono::duration_cast<std::chrono::milliseconds>(r.deadline - now) +
                                       std::chrono::milliseconds(1));
    if (poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::max<long long>(0, wait.count()))) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == out[0]) out_open = Drain(out[0], res.out, max_output, res.stdout_truncated);
      else if (fds[i].fd == err[0]) err_open = Drain(err[0], res.err, max_output, res.stderr_truncated);
      else if (fds[i].fd == in_fd) {
        const ssize_t w = write(in_fd, r.stdin_data.data() + fed, r.stdin_data.size() - fed);
        if (w > 0) fed += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) fed = r.stdin_data.size();
        if (fed >= r.stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
      }
    }
    if (killed && Clock::now() - killed_at > std::chrono::seconds(5)) break;  // a descendant holds the pipes
  }
  if (in_fd >= 0) close(in_fd);
  close(out[0]);
  close(err[0]);
  // The pipes are closed; the program may still run (it closed its output).
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    kill_if_due(Clock::now());
    std::this_thread::sleep_for(std::chrono::milliseconds(killed ? 1 : 5));
  }
  kill(-pid, SIGKILL);  // anything left of the group
  res.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  if (exec_failed) {
    return Unavailable("cannot run " + config_.bwrap + (run_as >= 0 ? " as uid " + std::to_string(run_as) : "") + ": " +
                       std::strerror(exec_errno));
  }
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) res.signal = WTERMSIG(status);
  return res;
}

Status Sandbox::Probe() const {
  SandboxRequest r;
  r.argv = {"/usr/bin/true"};
  r.deadline = Clock::now() + std::chrono::seconds(5);
  auto dir = MakeWorkdir("probe", 0);
  if (!dir.ok()) return dir.status();
  r.workdir = *dir;
  auto res = Run(r);
  RemoveWorkdir(*dir);
  if (!res.ok()) return res.status();
  if (res->exit_code != 0) {
    return Unavailable("bubblewrap could not start a sandbox (exit " + std::to_string(res->exit_code) + "): " + res->err);
  }
  return Status::Ok();
}

}  // namespace bzzz::executors
