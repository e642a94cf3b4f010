// A private scratch directory for a fuzz target that must hand its input to
// a loader as a file; made once per run and removed at exit.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

struct FuzzScratch {
  std::string dir;
  explicit FuzzScratch(const char* name) {
    std::string pattern = std::string("/tmp/bzzz-") + name + "-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    dir = pattern;
  }
  ~FuzzScratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};
