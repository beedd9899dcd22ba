// Which source tree produced a result or a benchmark: $HACM_COMMIT when set (a copy of the tree
// whose .git lags behind its files, as on the GPU machine: docs/gpu-check.md), else the git commit
// of `source_dir` (short hash), else the COMMIT file a `git archive` copy carries
// (scripts/gpu-snapshot), else "".
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

namespace hacm {

inline std::string source_commit(const std::string& source_dir) {
  if (const char* env = std::getenv("HACM_COMMIT"); env && *env) return env;
  std::string out;
  const std::string cmd = "git -C '" + source_dir + "' rev-parse --short HEAD 2>/dev/null";
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[128];
    while (std::fgets(buf, sizeof buf, f)) out += buf;
    ::pclose(f);
  }
  if (out.empty())
    if (FILE* f = std::fopen((source_dir + "/COMMIT").c_str(), "r")) {
      char buf[128];
      if (std::fgets(buf, sizeof buf, f)) out = buf;
      std::fclose(f);
    }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' '))
    out.pop_back();
  return out;
}

}  // namespace hacm
