// LayerNorm through the custom CUDA kernel (accelerated/kernels/layer_norm.cu) with autograd.
// Used by layer_norm_forward (transformer.h) wherever it applies; everything else (CPU, float64,
// widths without a kernel, builds without nvcc) goes through ATen's layer_norm.
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>

#include "accelerated/custom_kernels.h"

namespace hacm::accel {

// True when fused_layer_norm can take these arguments: x on CUDA, float32 or bf16, last dim with
// a compiled kernel; w, b float32 [C] on the same device; out_dtype float32 or bf16; custom
// kernels on and compiled in.
bool fused_layer_norm_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                              at::ScalarType out_dtype);

// x [..., C] -> LayerNorm(x) * w + b [..., C] stored as out_dtype (float32 arithmetic). Backward:
// dx in x's dtype, dw, db float32. Throws when !fused_layer_norm_applies.
at::Tensor fused_layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            double eps, at::ScalarType out_dtype);

// The residual form: true when fused_add_layer_norm can take these arguments: what
// fused_layer_norm_applies asks of (base, w, b, out_dtype), base float32, branch float32 or bf16
// of base's shape on base's device.
bool fused_add_layer_norm_applies(const at::Tensor& base, const at::Tensor& branch,
                                  const at::Tensor& w, const at::Tensor& b,
                                  at::ScalarType out_dtype);

// base [..., C] float32, branch [..., C] -> {sum = base + branch [..., C] float32,
// LayerNorm(sum) * w + b [..., C] out_dtype} in one pass; backward in one pass too (the sum's
// gradient from its other consumers plus the LayerNorm's, for base and, cast, for branch).
// Forward and gradients equal to the bit those of `base + branch` followed by fused_layer_norm.
// Throws when !fused_add_layer_norm_applies.
std::pair<at::Tensor, at::Tensor> fused_add_layer_norm(const at::Tensor& base,
                                                       const at::Tensor& branch,
                                                       const at::Tensor& w, const at::Tensor& b,
                                                       double eps, at::ScalarType out_dtype);

}  // namespace hacm::accel
