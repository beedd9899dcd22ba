#include "tests/fixtures.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace hacm::test {

namespace {
// Scratch directories of this process, removed when it exits (each ctest case is its own
// process) unless HACM_KEEP_SCRATCH is set, to look at what a failing test wrote.
struct ScratchDirs {
  std::vector<std::filesystem::path> dirs;
  ~ScratchDirs() {
    const char* keep = std::getenv("HACM_KEEP_SCRATCH");
    if (keep && *keep) return;
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
ScratchDirs& scratch_dirs() {
  static ScratchDirs s;
  return s;
}
}  // namespace

std::string scratch_path(const std::string& tag) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("hacm-test-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  scratch_dirs().dirs.push_back(p);
  return p.string();
}

std::string scratch_dir(const std::string& tag) {
  std::string p = scratch_path(tag);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace hacm::test
