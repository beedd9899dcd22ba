// project(expmap(x)) through the custom CUDA kernels (accelerated/kernels/hyperbolic.cu) with
// autograd. Used by expmap_with_projection_forward (hyperbolic.h) wherever it applies; everything
// else (CPU, float64, bf16, widths without a kernel, builds without nvcc) composes ATen ops.
#pragma once
#include <ATen/core/Tensor.h>

#include "accelerated/custom_kernels.h"

namespace hacm::accel {

// True when fused_expmap_projection can take x: on CUDA, float32, last dim with a compiled kernel,
// custom kernels on and compiled in.
bool fused_expmap_projection_applies(const at::Tensor& x);

// x [..., d] float32 -> project(expmap(x)) [..., d]; backward from x alone. Throws when
// !fused_expmap_projection_applies.
at::Tensor fused_expmap_projection(const at::Tensor& x);

}  // namespace hacm::accel
