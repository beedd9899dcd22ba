// libFuzzer target: the PKU-MMD skeleton, label and split parsers from memory, and clip cutting
// of what parses. The first byte picks the parser. Bad input must end in InputError.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/pku.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* text = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  try {
    switch (data[0] % 4) {
      case 0: {
        hacm::PkuSkeleton s = hacm::parse_pku_skeleton(text, n, "fuzz");
        if (s.values.size() != size_t(s.frames) * 150) __builtin_trap();
        // Cut a few clips with bounds taken from the input.
        std::vector<hacm::PkuLabel> l = {{1, 0, s.frames, 1},
                                         {51, int64_t(n % 7), int64_t(n % 400), 0}};
        int dropped = 0;
        auto clips = hacm::pku_cut_clips(s, l, 300, &dropped);
        for (const auto& c : clips)
          if (c.frames > 300 || c.x.size() != size_t(c.frames) * 150) __builtin_trap();
        break;
      }
      case 1: {
        auto labels = hacm::parse_pku_labels(text, n, "fuzz");
        hacm::PkuSkeleton s;
        s.frames = 50;
        s.values.assign(50 * 150, 1.0);
        int dropped = 0;
        auto clips = hacm::pku_cut_clips(s, labels, 300, &dropped);
        if (clips.size() + size_t(dropped) != labels.size()) __builtin_trap();
        break;
      }
      default:
        (void)hacm::parse_pku_split(text, n, "fuzz", data[0] % 4 == 2 ? 1 : 2);
        break;
    }
  } catch (const hacm::InputError&) {
  }
  return 0;
}
