// .npy reading and writing: format versions 1-3, little-endian f4/f8/i4/i8/u1/b1, C order.
// Fortran order, big-endian data and other dtypes are rejected with a message naming the source.
#pragma once
#include <string>
#include <vector>

#include "core/ndarray.h"

namespace hacm {

struct NpyHeader {
  DType dtype = DType::f8;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // bytes from the start of the .npy to the first element
  size_t data_bytes() const;
};

// Parse the magic + header dict of an .npy image. `where` names the source in error messages
// (a path, or "archive.npz:key"). Throws InputError.
NpyHeader npy_parse_header(const uint8_t* buf, size_t len, const std::string& where);
// Parse a whole .npy image; the result copies the data.
NdArray npy_parse(const uint8_t* buf, size_t len, const std::string& where);
// Header bytes (magic, version, dict, padding to 64 bytes) for an array of this dtype/shape.
// Uses version 1 unless the dict needs more than 65535 bytes.
std::string npy_make_header(DType dtype, const std::vector<int64_t>& shape);

NdArray npy_load(const std::string& path);
// Written to path + ".tmp" then renamed: no partial file on failure.
void npy_save(const std::string& path, const NdArray& a);

}  // namespace hacm
