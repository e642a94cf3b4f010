#include "ops/pprof.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#if BZZZ_HAVE_GPERFTOOLS
#include <gperftools/malloc_extension.h>
#include <gperftools/profiler.h>
#endif

#include "http/router.h"

namespace bzzz::ops {

struct Profiler::State {
  std::string scratch_dir;
  std::atomic<bool> busy{false};  // one profile (CPU or heap) at a time
};

namespace {


// Holds the one-at-a-time flag for the duration of a profile.
class Busy {
 public:
  explicit Busy(std::atomic<bool>& flag) : flag_(flag), held_(!flag.exchange(true)) {}
  ~Busy() {
    if (held_) flag_.store(false);
  }
  bool held() const { return held_; }

 private:
  std::atomic<bool>& flag_;
  bool held_;
};

#if BZZZ_HAVE_GPERFTOOLS
http::Response Profile(std::string bytes, const std::string& name) {
  http::Response r;
  r.status = 200;
  r.content_type = "application/octet-stream";
  r.headers.Set("Content-Disposition", "attachment; filename=\"" + name + "\"");
  r.body = std::move(bytes);
  return r;
}

http::Response CpuProfile(Profiler::State& s, int seconds, const std::string& request_id) {
  std::error_code ec;
  std::filesystem::create_directories(s.scratch_dir, ec);
  ::chmod(s.scratch_dir.c_str(), 0700);
  const std::string path = s.scratch_dir + "/cpu-" + std::to_string(::getpid()) + ".pprof";
  if (ProfilerStart(path.c_str()) == 0) {
    return http::ErrorResponse(503, "unavailable", "the CPU profiler could not start (writing " + path + ")",
                               request_id);
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  ProfilerStop();
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path, ec);
  if (bytes.empty()) return http::ErrorResponse(500, "internal", "the CPU profile is empty", request_id);
  return Profile(std::move(bytes), "cpu.pprof");
}

http::Response HeapProfile(const std::string& request_id) {
  const char* sampling = std::getenv("TCMALLOC_SAMPLE_PARAMETER");
  if (sampling == nullptr || std::atoll(sampling) <= 0) {
    return http::ErrorResponse(503, "unavailable",
                               "heap sampling is off: start the node with TCMALLOC_SAMPLE_PARAMETER=524288 "
                               "(a sample every 512 KiB allocated)",
                               request_id);
  }
  std::string sample;
  MallocExtension::instance()->GetHeapSample(&sample);
  if (sample.empty()) return http::ErrorResponse(500, "internal", "tcmalloc returned no heap sample", request_id);
  return Profile(std::move(sample), "heap.pprof");
}
#endif

http::Response NotBuilt(const std::string& request_id) {
  return http::ErrorResponse(501, "not_implemented", "this binary was built without gperftools (no profiling)",
                             request_id);
}

}  // namespace

Profiler::Profiler(std::string scratch_dir) : state_(std::make_shared<State>()) {
  state_->scratch_dir = std::move(scratch_dir);
}

Profiler::~Profiler() = default;

bool Profiler::Available() { return BZZZ_HAVE_GPERFTOOLS != 0; }

Status Profiler::RegisterRoutes(http::Router& router) {
  std::shared_ptr<State> state = state_;
  http::RouteTable routes(router, "pprof");
  // Blocking: a CPU profile holds its worker thread for the whole duration,
  // never an I/O thread.
  routes.AddBlocking(http::Method::kGet, "/debug/pprof/profile", "debug:admin",
                     "CPU profile in pprof format (?seconds=N, 1..300, default 30)",
                     [state](http::Request& req) {
                       int seconds = 30;
                       if (auto text = req.QueryParam("seconds")) {
                         char* end = nullptr;
                         const long v = std::strtol(text->c_str(), &end, 10);
                         if (text->empty() || *end != '\0' || v < 1 || v > 300) {
                           return http::ErrorResponse(400, "bad_request", "seconds must be an integer in 1..300",
                                                      req.request_id);
                         }
                         seconds = static_cast<int>(v);
                       }
                       if (!Available()) return NotBuilt(req.request_id);
                       Busy busy(state->busy);
                       if (!busy.held()) {
                         return http::ErrorResponse(409, "conflict", "another profile is being taken; retry after it",
                                                    req.request_id);
                       }
#if BZZZ_HAVE_GPERFTOOLS
                       return CpuProfile(*state, seconds, req.request_id);
#else
                       (void)seconds;
                       return NotBuilt(req.request_id);
#endif
                     });
  routes.AddBlocking(http::Method::kGet, "/debug/pprof/heap", "debug:admin",
                     "sampled live heap in pprof format (tcmalloc)", [state](http::Request& req) {
                       if (!Available()) return NotBuilt(req.request_id);
                       Busy busy(state->busy);
                       if (!busy.held()) {
                         return http::ErrorResponse(409, "conflict", "another profile is being taken; retry after it",
                                                    req.request_id);
                       }
#if BZZZ_HAVE_GPERFTOOLS
                       return HeapProfile(req.request_id);
#else
                       return NotBuilt(req.request_id);
#endif
                     });
  return routes.Done();
}

}  // namespace bzzz::ops
