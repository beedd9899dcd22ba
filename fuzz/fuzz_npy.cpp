// libFuzzer target: npy_parse on arbitrary bytes. Bad input must end in InputError, never in a
// crash, sanitizer report or other exception; accepted arrays must round-trip through
// npy_make_header.
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hacm;
  NdArray a;
  try {
    a = npy_parse(data, size, "fuzz.npy");
  } catch (const InputError&) {
    return 0;
  }
  NpyHeader h = npy_parse_header(data, size, "fuzz.npy");
  if (h.shape != a.shape || h.dtype != a.dtype || h.data_bytes() != a.nbytes()) __builtin_trap();
  if (a.nbytes() <= (1u << 20)) {
    double s = 0;
    for (double v : a.to_f64()) s += v;
    (void)s;
    std::string img = npy_make_header(a.dtype, a.shape);
    size_t hdr = img.size();
    img.append(reinterpret_cast<const char*>(a.bytes), a.nbytes());
    NdArray b = npy_parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "again");
    if (b.shape != a.shape || b.dtype != a.dtype || hdr % 64 != 0 ||
        (a.nbytes() && std::memcmp(a.bytes, b.bytes, a.nbytes()) != 0)) {
      __builtin_trap();
    }
  }
  return 0;
}
