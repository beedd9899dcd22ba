// libFuzzer target: NpzReader over an in-memory archive image of arbitrary bytes (no temp file).
// Every member is opened, header-checked, loaded and CRC-verified; bad input must end in
// InputError only.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/npz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hacm;
  try {
    NpzReader r(data, size, "fuzz.npz");
    for (const auto& k : r.keys()) {
      if (!r.has(k)) __builtin_trap();
      try {
        NpyHeader h = r.header(k);
        NdArray a = r.get(k);
        if (a.shape != h.shape || a.dtype != h.dtype) __builtin_trap();
        if (a.nbytes() <= (1u << 20)) {
          double s = 0;
          for (double v : a.to_f64()) s += v;  // reads every byte of the view
          (void)s;
        }
        r.verify(k);
      } catch (const InputError&) {
      }
    }
    const std::string absent = "\001absent";
    if (!r.has(absent)) {
      try {
        r.get(absent);
        __builtin_trap();  // a missing key must be an InputError
      } catch (const InputError&) {
      }
    }
  } catch (const InputError&) {
  }
  return 0;
}
