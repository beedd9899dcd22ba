// Where test fixtures live: HACM_GOLDEN_DIR / HACM_REAL_DATA_DIR when set, else
// ../shared/golden and ../shared/data/real beside the source tree.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>

#include "core/error.h"
#include "core/model_init.h"

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
inline std::string golden(const std::string& name) {
  return golden_dir() + "/" + name;
}
inline std::string real(const std::string& name) {
  return real_data_dir() + "/" + name;
}
inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
// Runs f and expects an InputError whose message contains every fragment (file, line, key...).
inline void expect_input_error(const std::function<void()>& f,
                               std::initializer_list<std::string> frags) {
  try {
    f();
    ADD_FAILURE() << "no InputError thrown";
  } catch (const InputError& e) {
    std::string msg = e.what();
    for (const auto& fr : frags)
      EXPECT_NE(msg.find(fr), std::string::npos) << msg << " lacks '" << fr << "'";
  }
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// A scratch directory unique to this test process, removed when the process exits (set
// HACM_KEEP_SCRATCH=1 to keep it).
// The small MAMP of the model tests: width 32, depth 1 / decoder 1, 16 frames, t_patch 4, 25
// joints.
inline ModelShape small_mamp_shape() {
  ModelShape s;
  s.dim = s.decoder_dim = 32;
  s.depth = s.decoder_depth = 1;
  s.frames = 16;
  s.joints = 25;
  s.t_patch = 4;
  s.hacm = false;
  return s;
}

std::string scratch_dir(const std::string& tag);
// The same, not created (for outputs whose absence a test checks).
std::string scratch_path(const std::string& tag);

}  // namespace hacm::test

// Skip (with the reason printed) when a fixture is missing, instead of passing silently.
#define REQUIRE_FIXTURE(path)                                                            \
  do {                                                                                   \
    if (!::hacm::test::file_exists(path)) GTEST_SKIP() << "fixture missing: " << (path); \
  } while (0)
