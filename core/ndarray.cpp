// NdArray helpers: dtype metadata, element access by value and whole-array conversions.
// Elements are loaded with memcpy because a stored .npz member may sit at any byte offset of the
// mapped archive, so `bytes` is not guaranteed to be aligned for its dtype.
#include "core/ndarray.h"

#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <type_traits>

namespace hacm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f4:
      return 4;
    case DType::f8:
      return 8;
    case DType::i4:
      return 4;
    case DType::i8:
      return 8;
    case DType::u1:
      return 1;
    case DType::b1:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f4:
      return "f4";
    case DType::f8:
      return "f8";
    case DType::i4:
      return "i4";
    case DType::i8:
      return "i8";
    case DType::u1:
      return "u1";
    case DType::b1:
      return "b1";
  }
  return "?";
}

std::string NdArray::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

void check_index(const NdArray& a, int64_t i) {
  if (i < 0 || i >= a.numel()) {
    throw std::out_of_range("NdArray index " + std::to_string(i) + " out of range for shape " +
                            a.shape_str());
  }
}

// Value conversion; float -> int64 saturates (NaN -> INT64_MIN, as numpy does on x86) instead of
// being undefined behaviour.
template <class Out, class In>
Out cast(In v) {
  if constexpr (std::is_integral<Out>::value && std::is_floating_point<In>::value) {
    if (v != v) return std::numeric_limits<Out>::min();
    if (v >= In(9.2233720368547758e18)) return std::numeric_limits<Out>::max();
    if (v < In(-9.2233720368547758e18)) return std::numeric_limits<Out>::min();
  }
  return Out(v);
}

// Converts n elements starting at p (dtype t) to Out, writing to dst.
template <class Out>
void convert(DType t, const uint8_t* p, int64_t n, Out* dst) {
  switch (t) {
    case DType::f4:
      for (int64_t i = 0; i < n; ++i) dst[i] = cast<Out>(load<float>(p + 4 * i));
      break;
    case DType::f8:
      for (int64_t i = 0; i < n; ++i) dst[i] = cast<Out>(load<double>(p + 8 * i));
      break;
    case DType::i4:
      for (int64_t i = 0; i < n; ++i) dst[i] = cast<Out>(load<int32_t>(p + 4 * i));
      break;
    case DType::i8:
      for (int64_t i = 0; i < n; ++i) dst[i] = cast<Out>(load<int64_t>(p + 8 * i));
      break;
    case DType::u1:
      for (int64_t i = 0; i < n; ++i) dst[i] = Out(p[i]);
      break;
    case DType::b1:
      for (int64_t i = 0; i < n; ++i) dst[i] = Out(p[i] != 0);
      break;
  }
}

template <class Out>
std::vector<Out> convert_all(const NdArray& a) {
  std::vector<Out> out(size_t(a.numel()));
  if (!out.empty()) convert<Out>(a.dtype, a.bytes, a.numel(), out.data());
  return out;
}

}  // namespace

double NdArray::at_f64(int64_t i) const {
  check_index(*this, i);
  double v = 0;
  convert<double>(dtype, bytes + size_t(i) * dtype_size(dtype), 1, &v);
  return v;
}

int64_t NdArray::at_i64(int64_t i) const {
  check_index(*this, i);
  int64_t v = 0;
  // Floats truncate toward zero, like numpy's astype(int64) for finite values.
  convert<int64_t>(dtype, bytes + size_t(i) * dtype_size(dtype), 1, &v);
  return v;
}

std::vector<double> NdArray::to_f64() const {
  return convert_all<double>(*this);
}
std::vector<float> NdArray::to_f32() const {
  return convert_all<float>(*this);
}
std::vector<int64_t> NdArray::to_i64() const {
  return convert_all<int64_t>(*this);
}

NdArray NdArray::zeros(DType t, std::vector<int64_t> shape) {
  NdArray a;
  a.dtype = t;
  size_t n = dtype_size(t);
  for (int64_t s : shape) {
    if (s < 0) throw std::invalid_argument("NdArray::zeros: negative dimension");
    if (s && __builtin_mul_overflow(n, size_t(s), &n)) {
      throw std::invalid_argument("NdArray::zeros: size overflows");
    }
    if (s == 0) n = 0;
  }
  a.shape = std::move(shape);
  // calloc: large zero buffers come from fresh zero pages, without touching them here.
  void* p = std::calloc(n ? n : 1, 1);
  if (!p) throw std::bad_alloc();
  a.owner = std::shared_ptr<void>(p, std::free);
  a.bytes = static_cast<uint8_t*>(p);
  return a;
}

}  // namespace hacm
