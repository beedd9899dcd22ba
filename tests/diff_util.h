// Helpers for differential tests (reference Eigen vs accelerated LibTorch). Inputs come from our
// own seeded generator, so both backends see identical values on any machine.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "core/rng.h"
#include "reference/tensor.h"
#include "tests/accel_util.h"

namespace hacm::test {

// Seeded normal tensor for the reference (double).
inline ref::Tensor<double> ref_randn(const std::vector<int64_t>& shape, uint64_t seed,
                                     double std = 1.0) {
  ref::Tensor<double> t(shape);
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.normal(0.0, std);
  return t;
}
// The same values as an accelerated tensor of `dtype` on `dev`.
inline at::Tensor to_at(const ref::Tensor<double>& t, c10::ScalarType dtype, at::Device dev) {
  at::Tensor a = at::empty(t.shape, at::kDouble);
  std::copy(t.data.begin(), t.data.end(), a.data_ptr<double>());
  return a.to(dtype).to(dev);
}
// Rounds every value of t through `dtype` (e.g. float32, bf16) in place, so the reference and
// the accelerated side start from the same, exactly representable numbers.
inline void round_through(ref::Tensor<double>& t, c10::ScalarType dtype) {
  at::Tensor a = at::empty({t.numel()}, at::kDouble);
  std::copy(t.data.begin(), t.data.end(), a.data_ptr<double>());
  a = a.to(dtype).to(at::kDouble);
  std::copy(a.data_ptr<double>(), a.data_ptr<double>() + t.numel(), t.data.begin());
}
inline std::vector<double> ref_vec(const ref::Tensor<double>& t) {
  return t.data;
}

}  // namespace hacm::test
