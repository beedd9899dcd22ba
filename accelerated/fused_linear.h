// Linear layer with the bias gradient from the column-sum CUDA kernel
// (accelerated/kernels/column_sum.cu), and fc1 + GELU with the GELU backward fused into that sum
// (kernels/gelu.cu): forward and the two matmuls of the backward are ATen's (cuBLAS), with
// autocast's casts done here so the backward keeps the cast operands.
#pragma once
#include <ATen/core/Tensor.h>

namespace hacm::accel {

// x [..., in], w [out, in], b [out] -> x wᵀ + b [..., out]: ATen's at::linear semantics, including
// CUDA autocast (operands cast to the autocast type, result in it). On CUDA with custom kernels on
// (custom_kernels.h) and an even out width, an autograd function whose
// backward sums the bias gradient with the column-sum kernel (float32 accumulation; ATen rounds
// that sum to the autocast type); elsewhere at::linear itself.
at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// x [..., in], w [out, in], b [out] -> GELU(x wᵀ + b) [..., out], exact erf form: an MLP's fc1
// and activation. Where linear_forward takes its custom path, one autograd function whose
// backward runs the GELU backward and fc1's bias gradient in one kernel (kernels/gelu.cu), then
// the two matmuls; elsewhere at::gelu(at::linear(...)) (identical to the unfused ops on the CPU).
at::Tensor linear_gelu_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// x [rows, cols] -> float32 [cols], the sum over rows (a linear layer's bias gradient): the
// column-sum kernel on CUDA (float32 or bf16, even widths, custom kernels on), else ATen's
// x.sum(0) accumulated and returned in float32.
at::Tensor column_sum(const at::Tensor& x);

// True when linear_forward takes the custom path for these arguments.
bool fused_linear_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
// True when linear_gelu_forward takes its custom path for these arguments.
bool fused_linear_gelu_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

}  // namespace hacm::accel
