// Profiling a running node in pprof's formats, read with google-pprof
// (gperftools), admin-only and one profile at a time:
//
//   GET /debug/pprof/profile?seconds=N   debug:admin  CPU profile over N seconds
//                                                     (1..300, default 30)
//   GET /debug/pprof/heap                debug:admin  the sampled live heap (tcmalloc)
//
// A CPU profile samples every thread 100 times a second (gperftools'
// SIGPROF profiler); a second request while one runs gets 409. The heap
// profile is tcmalloc's sample of live allocations, which exists only when
// the process was started with TCMALLOC_SAMPLE_PARAMETER (524288, a sample
// every 512 KiB allocated on average, costs little; the deploy/ assets set
// it); without it the route answers 503 saying so. A binary built without
// gperftools (the sanitizer and fuzz builds) answers 501.
//
//   bzzz profile-cpu 30 --output cpu.pprof
//   google-pprof --text build/bin/bzzz cpu.pprof
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "ops/component.h"

namespace bzzz::ops {

class Profiler final : public Component {
 public:
  // Profiles are written to `scratch_dir` (created 0700) while they are taken.
  explicit Profiler(std::string scratch_dir);
  ~Profiler() override;

  std::string_view Name() const override { return "pprof"; }
  Status RegisterRoutes(http::Router& router) override;

  // Whether this binary can take profiles at all.
  static bool Available();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace bzzz::ops
