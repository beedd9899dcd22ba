// Attention through the custom CUDA kernels for head dimension 32
// (accelerated/kernels/attention.cu): forward only where no gradient is wanted (feature extraction,
// evaluation), and forward + backward as an autograd function for training steps. attention_forward
// (transformer.h) takes them wherever they apply; everything else uses
// at::scaled_dot_product_attention.
#pragma once
#include <ATen/core/Tensor.h>

#include "accelerated/custom_kernels.h"

namespace hacm::accel {

// True when fused_attention can take qkv [B, N, 3d] with `heads` heads without gradient: CUDA,
// bf16, contiguous, head dimension 32, grad mode off or qkv not requiring grad, the
// attention_forward kernel on.
bool fused_attention_applies(const at::Tensor& qkv, int64_t heads);
// The same for training (a gradient wanted; the attention_training kernel on).
bool fused_attention_training_applies(const at::Tensor& qkv, int64_t heads);

// qkv [B, N, 3d] (last dim (q|k|v, head, hd)) -> softmax(q kᵀ / sqrt(hd)) v as [B, N, d] bf16
// (heads side by side, the layout the output projection reads). fused_attention: no autograd
// (throws when !fused_attention_applies); fused_attention_training: an autograd function whose
// backward returns the packed gradient of qkv (throws when !fused_attention_training_applies).
at::Tensor fused_attention(const at::Tensor& qkv, int64_t heads);
at::Tensor fused_attention_training(const at::Tensor& qkv, int64_t heads);

}  // namespace hacm::accel
