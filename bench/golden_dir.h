// Where the benchmarks' validations find the golden files: HACM_GOLDEN_DIR, else
// ../shared/golden beside the source tree. Torch-free, for every benchmark binary.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

namespace hacm::bench {

// The golden directory; empty with a message when `file` is not there (validation skipped).
inline std::string golden_dir_with(const std::string& file) {
  const char* gd = std::getenv("HACM_GOLDEN_DIR");
  std::string dir = gd && *gd ? gd : std::string(HACM_SOURCE_DIR) + "/../shared/golden";
  if (FILE* f = std::fopen((dir + "/" + file).c_str(), "rb")) {
    std::fclose(f);
    return dir;
  }
  std::printf("validation skipped: %s/%s not found\n", dir.c_str(), file.c_str());
  return "";
}

}  // namespace hacm::bench
