// Helpers for tests of the accelerated backend (only included by *_accel.cpp and diff_*.cpp).
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "accelerated/tensor_io.h"
#include "core/npz.h"

namespace hacm::test {

// Devices to run on: always CPU; CUDA when a GPU is present (else the CUDA case is skipped with
// a printed reason by the test that asks for it).
inline bool cuda_present() {
  return at::hasCUDA();
}

#define REQUIRE_CUDA()                                             \
  do {                                                             \
    if (!::hacm::test::cuda_present())                             \
      GTEST_SKIP() << "no CUDA device present: CUDA case skipped"; \
  } while (0)

// Devices a test runs on: CPU always, CUDA when present (else it says the CUDA case is skipped).
inline std::vector<at::Device> test_devices() {
  std::vector<at::Device> d{at::kCPU};
  if (cuda_present())
    d.emplace_back(at::kCUDA);
  else
    std::printf("no CUDA device present: CUDA case skipped\n");
  return d;
}
inline const char* dev_name(const at::Device& d) {
  return d.is_cuda() ? "cuda" : "cpu";
}

inline std::vector<double> to_vec(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}
inline std::vector<int64_t> shape_of(const at::Tensor& t) {
  return std::vector<int64_t>(t.sizes().begin(), t.sizes().end());
}
// A golden array as a tensor of `dtype` on `device`.
inline at::Tensor golden_tensor(const NpzReader& r, const std::string& key,
                                c10::ScalarType dtype = at::kDouble, at::Device device = at::kCPU) {
  return accel::to_tensor(r.get(key), dtype).to(device);
}

// fp32 on CUDA must mean fp32: no TF32 in matmuls or convolutions during comparisons.
inline void strict_fp32() {
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
}

}  // namespace hacm::test
