// `repro inspect FILE`: list the members of an .npz (or the array of an .npy) without loading data.
#include <cstdio>
#include <memory>
#include <string>

#include "core/npy.h"
#include "core/npz.h"
#include "repro/commands.h"

namespace hacm::repro {

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

void add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* sub =
      app.add_subcommand("inspect", "Show keys, dtypes and shapes of an .npz or .npy file");
  sub->add_option("file", *path, "the .npz or .npy file")->required();
  sub->callback([path]() {
    if (path->size() > 4 && path->substr(path->size() - 4) == ".npy") {
      NdArray a = npy_load(*path);
      std::printf("%s: %s %s\n", path->c_str(), dtype_name(a.dtype), shape_str(a.shape).c_str());
    } else {
      NpzReader r(*path);
      for (const auto& k : r.keys()) {
        NpyHeader h = r.header(k);
        std::printf("%-24s %s %s\n", k.c_str(), dtype_name(h.dtype), shape_str(h.shape).c_str());
      }
    }
    set_exit_code(0);
  });
}

}  // namespace hacm::repro
