// Forward-only attention through the custom CUDA kernel (accelerated/kernels/attention.cu) where
// no gradient is needed (feature extraction, evaluation). attention_forward (transformer.h) takes
// it wherever it applies; training steps and everything else use at::scaled_dot_product_attention.
#pragma once
#include <ATen/core/Tensor.h>

#include "accelerated/custom_kernels.h"

namespace hacm::accel {

// True when fused_attention can take qkv [B, N, 3d] with `heads` heads: CUDA, bf16, contiguous,
// head dimension 32, no gradient wanted (grad mode off or qkv not requiring it), custom kernels
// on and compiled in.
bool fused_attention_applies(const at::Tensor& qkv, int64_t heads);

// qkv [B, N, 3d] (last dim (q|k|v, head, hd)) -> softmax(q kᵀ / sqrt(hd)) v as [B, N, d] bf16
// (heads side by side, the layout the output projection reads). No autograd. Throws when
// !fused_attention_applies.
at::Tensor fused_attention(const at::Tensor& qkv, int64_t heads);

}  // namespace hacm::accel
