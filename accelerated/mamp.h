// MAMP baseline pre-training model (Mao et al., ICCV 2023) on LibTorch: motion-aware masking
// (ascending Gumbel order: high-motion patches tend to be masked), masked reconstruction of
// frame-difference motion, 25 joints, temporal patch 4. Twin of reference/mamp*.
#pragma once
#include <ATen/core/Tensor.h>

#include "accelerated/tensor_io.h"

namespace hacm::accel {

struct MampConfig {
  int64_t dim = 256, heads = 8, depth = 8, decoder_depth = 3, t_patch = 4;
  double mask_ratio = 0.9;  // keep int(L * (1 - mask_ratio)) = 74 of 750 (float rounding, as coded)
  double tau = 0.80;        // motion_aware_tau (0.75 for NTU-120)
};

struct MampOutputs {
  at::Tensor loss;                                                       // scalar
  at::Tensor motion_raw, key, ids_shuffle, ids_keep, ids_restore, mask;  // [NM, L] / [NM, K]
  at::Tensor latent;                                                     // [NM, K, d]
  at::Tensor pred, target_norm;                                          // [NM, L, 3*t_patch]
};

// x5 [N, 3, T, 25, M], U [NM, L] uniforms -> loss and intermediates.
MampOutputs mamp_forward(const StateDict& sd, const MampConfig& cfg, const at::Tensor& x5,
                         const at::Tensor& U, const at::Tensor* ids_shuffle_inject = nullptr);

// x [NM, T, V, C] -> patches [NM, (T/tp)*V, tp*C], row τ*V+v, feature u*C+c.
at::Tensor patchify_forward(const at::Tensor& x, int64_t t_patch);

}  // namespace hacm::accel
