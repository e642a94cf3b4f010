// RewrapJob: moves the versions this node wrote to the newest role key
// versions (SPEC §3.10 "a re-wrap job migrates"; docs/keys.md).
//
// When the key generation changes (a rotation adds a version), the job scans this
// node's context_versions in (key, number) order and re-wraps each sealed
// version whose wraps are not the newest (ContextStore::Rewrap: the data key
// is re-sealed through the writer's own wrap, the ciphertext and the
// content stay, the version record is republished). Content stored in the
// clear before encryption is sealed on the way.
//
// - Resumable: the cursor and counters are written to `state_file` after
//   every batch, so a node killed in the middle goes on where it stopped
//   (a version done twice is found current and skipped).
// - Throttled to `per_second` versions.
// - Superseded at once: the generation is looked at after every version, and
//   a pass aimed at an older one starts over towards the newest.
// - Progress: ProgressJson() (GET /api/v1/keys "rewrap"), metrics
//   bzzz_ucxl_rewrap_pending, bzzz_ucxl_rewrap_versions_total{result}.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace prometheus {
class Registry;
}

namespace bzzz::ucxl {

class ContextStore;

struct RewrapOptions {
  std::string state_file;  // "" keeps the progress in memory only
  double per_second = 200;
  std::chrono::milliseconds poll_interval{1000};  // how often the ring revision is looked at
};

class RewrapJob {
 public:
  // `target` is the key generation the job should reach
  // (keys::Keyring::Generation: grows with every rotation).
  RewrapJob(ContextStore& store, std::function<std::uint64_t()> target, RewrapOptions options,
            prometheus::Registry* metrics);
  ~RewrapJob();  // Stop()
  Status Start();
  void Stop();
  // Runs the job to completion now, in the caller's thread (tests).
  Status RunOnce();
  std::string ProgressJson() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bzzz::ucxl
