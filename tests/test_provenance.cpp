// core/provenance.h: which source tree a result names ($HACM_COMMIT, git, COMMIT file).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "core/provenance.h"

using hacm::source_commit;

TEST(Provenance, EnvironmentWinsThenCommitFileThenEmpty) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "hacm_provenance_test";  // not a git checkout
  fs::remove_all(dir);
  fs::create_directories(dir);
  ::unsetenv("HACM_COMMIT");
  EXPECT_EQ(source_commit(dir.string()), "");
  std::ofstream(dir / "COMMIT") << "1234abc\n";
  EXPECT_EQ(source_commit(dir.string()), "1234abc");
  ::setenv("HACM_COMMIT", "feedbee", 1);
  EXPECT_EQ(source_commit(dir.string()), "feedbee");
  ::setenv("HACM_COMMIT", "", 1);  // empty: ignored
  EXPECT_EQ(source_commit(dir.string()), "1234abc");
  ::unsetenv("HACM_COMMIT");
  fs::remove_all(dir);
}
