// The switch for our custom CUDA kernels (accelerated/kernels/) and the fused library paths chosen
// beside them (torch's fused AdamW): on by default; off, every op goes through ATen's plain
// composition (for A/B measurements: profile_step --no-custom-kernels, protocol key
// custom_kernels, and differential tests). The kernels only ever run on CUDA tensors.
// Also the mapping of tensor dtypes to the kernels' storage types, for the LibTorch wrappers.
#pragma once
#include <c10/core/ScalarType.h>

#include "accelerated/kernels/dtype.h"

namespace hacm::accel {

void set_custom_kernels(bool on);
bool custom_kernels();

// Whether the kernels store this dtype (float32, bf16), and as which cuda::Dtype.
inline bool kernel_storable(c10::ScalarType t) {
  return t == c10::ScalarType::Float || t == c10::ScalarType::BFloat16;
}
inline cuda::Dtype kernel_dtype(c10::ScalarType t) {
  return t == c10::ScalarType::BFloat16 ? cuda::Dtype::kBF16 : cuda::Dtype::kF32;
}

}  // namespace hacm::accel
