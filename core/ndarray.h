// NdArray: a typed, shaped, C-ordered buffer as read from or written to .npy/.npz.
// The bytes are owned through a shared_ptr so an array can live in a heap vector or in a
// memory-mapped region of a large .npz (the mapping stays open while any array uses it).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace hacm {

enum class DType { f4, f8, i4, i8, u1, b1 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // numpy descr without byte order: "f4", "f8", ...

template <class T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::f4;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::f8;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::i4;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::i8;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::u1;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::b1;
};

struct NdArray {
  DType dtype = DType::f8;
  std::vector<int64_t> shape;
  std::shared_ptr<void> owner;  // keeps `bytes` valid
  uint8_t* bytes = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int ndim() const { return int(shape.size()); }
  std::string shape_str() const;  // "[2,3,4]"

  // Typed pointer. Views of stored members of .npz files written by numpy may be unaligned (the
  // member sits at any file offset; ours are 64-byte aligned): unless aligned() holds, read
  // through to_f32()/at_f64() (memcpy loads) instead.
  bool aligned() const { return reinterpret_cast<uintptr_t>(bytes) % dtype_size(dtype) == 0; }
  template <class T>
  T* data() {
    return reinterpret_cast<T*>(bytes);
  }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes);
  }

  // Element i converted to double / int64 whatever the stored dtype.
  double at_f64(int64_t i) const;
  int64_t at_i64(int64_t i) const;
  // Whole array converted (copies).
  std::vector<double> to_f64() const;
  std::vector<float> to_f32() const;
  std::vector<int64_t> to_i64() const;

  // A new zero-filled heap array.
  static NdArray zeros(DType t, std::vector<int64_t> shape);
  // A heap array copied from a typed buffer.
  template <class T>
  static NdArray from(const std::vector<int64_t>& shape, const T* src) {
    NdArray a = zeros(DTypeOf<T>::value, shape);
    if (a.nbytes()) std::memcpy(a.bytes, src, a.nbytes());
    return a;
  }
  template <class T>
  static NdArray from(const std::vector<int64_t>& shape, const std::vector<T>& v) {
    return from<T>(shape, v.data());
  }
};

}  // namespace hacm
