// Sandbox: runs an argv under bubblewrap (bwrap), as the command and llm
// executors do.
//
// A node running as root starts each task's bubblewrap as a uid (and gid) of
// its own, taken from agents.sandbox.uid_range_start/uid_range_size for as
// long as the task runs, with RLIMIT_NPROC = agents.sandbox.max_processes:
// a fork bomb stops there and touches no other task (root is exempt from
// that limit, and the limit counts every process of a uid). The work
// directory is handed to that uid for the run.
// The child closes every descriptor but its standard streams before exec:
// nothing the node has open (listeners, P2P sockets, pipes, files) reaches
// bubblewrap or the task, whether or not it was opened close-on-exec.
// Inside: new user (uid/gid 65534), PID, IPC, UTS, cgroup and network
// namespaces (network shared only when the request asks and
// agents.sandbox.allow_network permits), no capabilities, a read-only /usr
// (with /bin, /lib, /lib64, /sbin links) and /etc/ld.so.cache, fresh /proc,
// /dev and /tmp, and the private work directory at /work (the only writable
// place that outlives the process), an environment of PATH, HOME, TMPDIR,
// LANG and what the request sets. Nothing else of the host is visible.
// Limits: address space (RLIMIT_AS), file size (RLIMIT_FSIZE), wall time
// (the whole process group is killed), and captured stdout/stderr bytes
// (the rest is read and dropped).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "config/config.h"

namespace bzzz::executors {

struct SandboxRequest {
  std::vector<std::string> argv;
  bool network = false;
  std::map<std::string, std::string> env;
  std::string stdin_data;
  int memory_mb = 0;                 // 0: the configured limit; never above it
  std::size_t max_output_bytes = 0;  // 0: the configured limit; never above it
  std::string workdir;               // host path mounted at /work (must exist)
  std::chrono::steady_clock::time_point deadline;
  const std::atomic<bool>* cancel = nullptr;
};

struct SandboxResult {
  int exit_code = -1;       // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::string out;
  std::string err;
  std::int64_t duration_ms = 0;
};

class Sandbox {
 public:
  explicit Sandbox(config::SandboxConfig config, std::string data_dir);

  // InvalidArgument for an empty argv or network asked but not allowed;
  // Unavailable when bwrap cannot be started or every sandbox uid is taken.
  Result<SandboxResult> Run(const SandboxRequest& request) const;

  // A fresh private directory for one attempt ("<root>/<task>-<attempt>-XXXXXX"),
  // removed by RemoveWorkdir.
  Result<std::string> MakeWorkdir(const std::string& task_id, int attempt) const;
  static void RemoveWorkdir(const std::string& path);

  // Whether bwrap runs here (used by the agent-pool check and tests).
  Status Probe() const;

  const config::SandboxConfig& config() const { return config_; }
  // Whether each task runs as its own uid (this process is root and
  // uid_range_start is not -1).
  bool PerTaskUids() const;
  // Sandbox uids in use right now, in this process.
  static std::size_t UidsInUse();

 private:
  config::SandboxConfig config_;
  std::string root_;
};

}  // namespace bzzz::executors
