// HA-CM downstream encoder (model/transformer.py of the release) and the two heads, on LibTorch.
// The encoder sees every token (no masking): prune 25 -> 18 joints, patch embedding, +pos+temp,
// expmap_with_projection into the Poincaré ball, blocks, norm.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "accelerated/tensor_io.h"

namespace hacm::accel {

struct EncoderConfig {
  int64_t dim = 256, heads = 8, depth = 8, t_patch = 3;
  bool hyperbolic = true;         // HA-CM maps tokens into the ball; MAMP does not
  std::vector<int64_t> idx_kept;  // empty = all 25 joints (MAMP)
  double drop_path = 0.0;         // fine-tuning: block i drops with rate drop_path*i/(depth-1)
  // Device copy of idx_kept (int64), built from the vector when undefined or on another device:
  // a host-to-device copy, which a CUDA graph capture forbids (encoder_place_indices).
  at::Tensor kept_index;
};

// Fill cfg.kept_index on `device` (before capturing the encoder in a CUDA graph).
void encoder_place_indices(EncoderConfig& cfg, const at::Device& device);

// The fine-tuning head's parameters under the runner's "head." names: fc1_weight [hidden, in]
// and fc2_weight [classes, hidden] as given, zero biases, BatchNorm weight 1 / bias 0 (all
// trainable) and running statistics 0 / 1, on the weights' device.
void add_finetune_head(StateDict& sd, const at::Tensor& fc1_weight, const at::Tensor& fc2_weight);

// x5 [N, 3, T, 25, M] -> tokens [N, M, T/t_patch, V, d] after the final norm.
at::Tensor downstream_encoder_forward(const StateDict& sd, const EncoderConfig& cfg,
                                      const at::Tensor& x5);
// tokens [N, M, TP, V, d] -> mean over persons, time and joints [N, d] (ActionHeadLinprobe).
at::Tensor linprobe_features_forward(const at::Tensor& tokens);
// feat [N, d] -> logits [N, classes]. With bn_prefix non-empty: BatchNorm1d(affine=False,
// eps 1e-6) first, with running stats (`batch_stats` false) or batch statistics (true).
at::Tensor linprobe_head_forward(const at::Tensor& feat, const StateDict& sd,
                                 const std::string& fc_prefix, const std::string& bn_prefix,
                                 bool batch_stats);
// tokens [N, M, TP, V, d] -> mean over time, flatten joints (J-major), mean over persons
// [N, V*d] -> fc1 -> BatchNorm1d (eps 1e-5, running stats unless training) -> ReLU -> fc2.
// `dropout` (0.3 in training, 0 in eval) applies to the tokens first; `feat_out` gets [N, V*d].
at::Tensor finetune_head_forward(const at::Tensor& tokens, const StateDict& sd,
                                 const std::string& prefix, bool training, double dropout,
                                 at::Tensor* feat_out = nullptr, at::Tensor* fc1_out = nullptr);

}  // namespace hacm::accel
