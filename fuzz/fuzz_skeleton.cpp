// libFuzzer target: the NTU .skeleton parser from memory, then the whole SGN pipeline on what
// parses. Bad input must end in InputError (or a skip reason), never a crash, a hang or a leak.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/ntu.h"
#include "core/ntu_pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hacm::NtuSkeleton sk =
        hacm::parse_ntu_skeleton(reinterpret_cast<const char*>(data), size, "fuzz");
    // Invariants the pipeline relies on.
    for (const auto& b : sk.bodies)
      if (b.first < 0 || b.first + b.count > sk.kept_frames || b.xyz.size() != size_t(b.count) * 75)
        __builtin_trap();
    hacm::NtuSequence seq;
    if (hacm::ntu_sgn_pipeline(sk, &seq) == hacm::NtuSkip::none) {
      if (seq.joints.size() != size_t(seq.frames) * 75 * size_t(seq.actors)) __builtin_trap();
      std::vector<float> out(300 * 150);
      hacm::ntu_align(seq, (size & 1) != 0, out.data());
    }
  } catch (const hacm::InputError&) {
  }
  (void)hacm::parse_ntu_missing_list(reinterpret_cast<const char*>(data), size);
  return 0;
}
