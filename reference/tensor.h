// Eigen CPU reference backend of HA-CM: the readable twin of accelerated/ (llm.c style).
//
// Contract of everything under reference/:
//  * plain Eigen, no intrinsics, no OpenMP, single-threaded and deterministic (the process may
//    also host LibTorch's OpenMP runtime);
//  * every component is a pair `<name>_forward` / `<name>_backward`, templated on the scalar type
//    (double is the checked precision, float compiles and runs);
//  * tensors are dense, C-ordered (row-major) buffers with PyTorch's layouts, so golden arrays
//    and state_dict weights load without transposes;
//  * backward functions return input gradients and ACCUMULATE (+=) parameter gradients, so a
//    parameter used twice (the shared patch-embedding conv) gets the sum of both uses.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ndarray.h"

namespace hacm::ref {

// A dense C-ordered tensor: shape plus a flat buffer. Deliberately minimal: indexing helpers
// live in the components, which know their layouts.
template <class T>
struct Tensor {
  std::vector<T> data;
  std::vector<int64_t> shape;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s, T fill = T(0)) : shape(std::move(s)) {
    data.assign(size_t(count(shape)), fill);
  }
  static int64_t count(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  int64_t numel() const { return int64_t(data.size()); }
  int ndim() const { return int(shape.size()); }
  // Size of dimension i; negative i counts from the end (PyTorch style).
  int64_t dim(int i) const { return shape[size_t(i < 0 ? i + ndim() : i)]; }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
  T& operator[](int64_t i) { return data[size_t(i)]; }
  const T& operator[](int64_t i) const { return data[size_t(i)]; }
  // Number of vectors along the last dimension (rows of the [rows, dim(-1)] view).
  int64_t rows() const { return shape.empty() ? 1 : numel() / std::max<int64_t>(dim(-1), 1); }
  // Same buffer, new shape (element count must match; checked by the caller's shape comments).
  Tensor reshaped(std::vector<int64_t> s) const {
    Tensor t;
    t.shape = std::move(s);
    t.data = data;
    return t;
  }
  bool same_shape(const Tensor& o) const { return shape == o.shape; }
};

// Row-major Eigen views over tensor buffers (the matmul workhorse).
template <class T>
using MatR = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MapR = Eigen::Map<MatR<T>>;
template <class T>
using CMapR = Eigen::Map<const MatR<T>>;
// Views with a row stride (e.g. one head's q inside a packed qkv buffer).
template <class T>
using MapRS = Eigen::Map<MatR<T>, 0, Eigen::OuterStride<>>;
template <class T>
using CMapRS = Eigen::Map<const MatR<T>, 0, Eigen::OuterStride<>>;
template <class T>
using VecMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <class T>
using CVecMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

// [rows, cols] view of a tensor whose last dimension is `cols`.
template <class T>
MapR<T> as_matrix(Tensor<T>& t, int64_t cols) {
  return MapR<T>(t.ptr(), t.numel() / cols, cols);
}
template <class T>
CMapR<T> as_matrix(const Tensor<T>& t, int64_t cols) {
  return CMapR<T>(t.ptr(), t.numel() / cols, cols);
}

// Conversions from / to the npz array type (any float or int dtype in, T out).
template <class T>
Tensor<T> from_ndarray(const NdArray& a) {
  Tensor<T> t(a.shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = T(a.at_f64(i));
  return t;
}
template <class T>
NdArray to_ndarray(const Tensor<T>& t) {
  return NdArray::from<T>(t.shape, t.data);
}
template <class T>
std::vector<double> to_f64(const Tensor<T>& t) {
  return std::vector<double>(t.data.begin(), t.data.end());
}

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace hacm::ref
