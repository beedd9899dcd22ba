// Transformer pieces on LibTorch tensors, twin of reference/ (same names, same argument order).
// Parameters come from a StateDict with PyTorch's names, so checkpoints load unchanged.
// Backward comes from autograd.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "accelerated/tensor_io.h"

namespace hacm::accel {

// x [..., d] -> LayerNorm over the last dim with weight/bias [d]. Storage type as ATen's: float32
// under CUDA autocast, else x's. The fused CUDA kernel (fused_layer_norm.h) where it applies.
at::Tensor layer_norm_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                              double eps = 1e-5);
// The same for a LayerNorm whose only consumer is a matmul (at::linear): under CUDA autocast the
// result is stored in the autocast type, which the matmul would cast it to anyway (one pass over
// the activations fewer each way). Elsewhere identical to layer_norm_forward.
at::Tensor layer_norm_matmul_input(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                   double eps = 1e-5);
// x [B, N, d] -> multi-head self-attention (qkv Linear d->3d, proj Linear d->d) [B, N, d].
// Parameters `<prefix>qkv.weight` etc. `probs_out` (optional) receives softmax(qk^T/sqrt(hd))
// [B, heads, N, N].
at::Tensor attention_forward(const at::Tensor& x, const StateDict& sd, const std::string& prefix,
                             int64_t heads, at::Tensor* probs_out = nullptr);
// x [B, N, d] -> pre-LN block: x + attn(LN1 x), then + mlp(LN2 .) with exact-erf GELU [B, N, d].
// drop_path > 0 (training only): each residual branch is dropped per sample with that
// probability and the kept ones scaled by 1/(1-p) (stochastic depth, timm's DropPath).
at::Tensor block_forward(const at::Tensor& x, const StateDict& sd, const std::string& prefix,
                         int64_t heads, double drop_path = 0.0);
// x [B, N, d] -> LayerNorm(block_{depth-1}(... block_0(x))) [B, N, d]: blocks
// `<block_prefix><i>.`, final LayerNorm `<norm_prefix>weight/bias` (layer_norm_matmul_input's
// storage type when matmul_input, else layer_norm_forward's). The same value as block_forward
// `depth` times then the LayerNorm; on CUDA each residual addition runs inside the LayerNorm that
// follows it (fused_add_layer_norm), with the same bits. drop_path: empty (none) or one rate per
// block.
at::Tensor block_stack_forward(const at::Tensor& x, const StateDict& sd,
                               const std::string& block_prefix, int64_t depth, int64_t heads,
                               const std::string& norm_prefix, bool matmul_input,
                               const std::vector<double>& drop_path = {});
// x [NM, T, V, 3] -> stride-t_patch temporal patch embedding with conv weight [d, 3, t_patch, 1]
// and bias [d]: out [NM, T/t_patch, V, d], out[n,τ,v,o] = b[o] + Σ_{u,c} W[o,c,u]
// x[n,t_patch·τ+u,v,c].
at::Tensor patch_embed_forward(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias);

}  // namespace hacm::accel
