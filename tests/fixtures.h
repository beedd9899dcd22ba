// Where test fixtures live: HACM_GOLDEN_DIR / HACM_REAL_DATA_DIR when set, else
// ../shared/golden and ../shared/data/real beside the source tree.
#pragma once
#include <cstdlib>
#include <string>
#include <sys/stat.h>

namespace hacm::test {

inline std::string env_or(const char* var, const std::string& fallback) {
  const char* v = std::getenv(var);
  return (v && *v) ? std::string(v) : fallback;
}
inline std::string golden_dir() {
  return env_or("HACM_GOLDEN_DIR", std::string(HACM_SOURCE_DIR) + "/../shared/golden");
}
inline std::string real_data_dir() {
  return env_or("HACM_REAL_DATA_DIR", std::string(HACM_SOURCE_DIR) + "/../shared/data/real");
}
inline std::string golden(const std::string& name) { return golden_dir() + "/" + name; }
inline std::string real(const std::string& name) { return real_data_dir() + "/" + name; }
inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
// A scratch directory unique to this test process, removed by the OS's tmp cleaning only.
std::string scratch_dir(const std::string& tag);

}  // namespace hacm::test

// Skip (with the reason printed) when a fixture is missing, instead of passing silently.
#define REQUIRE_FIXTURE(path)                                                   \
  do {                                                                          \
    if (!::hacm::test::file_exists(path)) GTEST_SKIP() << "fixture missing: " << (path); \
  } while (0)
