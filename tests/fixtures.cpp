#include "tests/fixtures.h"

#include <unistd.h>

#include <filesystem>

namespace hacm::test {

std::string scratch_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("hacm-test-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace hacm::test
