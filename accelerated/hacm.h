// HA-CM pre-training model on LibTorch (both variants), twin of reference/hacm*.
// Functional style: parameters live in a StateDict with PyTorch's state_dict names, so the
// golden weight files and the authors' checkpoints load unchanged. Backward = autograd.
//
// Variants (hacm-spec.md §8):
//  - released: the f13611b code exactly, with its three ordering quirks (spatial score
//    permutation, un-shuffle error, temporal-half pred/target/mask mismatch);
//  - corrected: one time-major token order everywhere and the decoder on the full 24x18 grid.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "accelerated/tensor_io.h"

namespace hacm::accel {

struct HacmConfig {
  int64_t dim = 256;  // token width (encoder and decoder)
  int64_t heads = 8;
  int64_t depth = 8;  // encoder blocks
  int64_t decoder_depth = 3;
  int64_t t_patch = 3;               // frames per temporal patch
  std::string variant = "released";  // released | corrected
  double keep_ratio = 0.1;           // K = int(keep_ratio * tokens per group)
  double temperature = 0.9;          // s / (temperature * max s + 1e-10)
  double dist_factor = 4.0;          // Poincaré distance numerator factor (standard: 2)
  double t_logit_scale = 0;          // 0 = sqrt(dim), multiplied (released)
  std::vector<int64_t> idx_kept;     // 0-based NTU joints kept (18)
  std::vector<int64_t> idx_null;     // root joints (7)
  // Device copies of idx_kept / idx_null (int64). hacm_forward builds them from the vectors when
  // undefined or on another device: a host-to-device copy, which a CUDA graph capture forbids.
  at::Tensor kept_index, null_index;
  HacmConfig();
};

// Fill cfg.kept_index / null_index on `device` (before capturing hacm_forward in a CUDA graph).
void hacm_place_indices(HacmConfig& cfg, const at::Device& device);

// Injected selections (for float32 runs that must follow the float64 golden selection).
struct HacmInject {
  at::Tensor ids_shuffle_t, ids_shuffle_s;  // [NM, L_group] int64, rank order
};

struct HacmOutputs {
  at::Tensor loss, loss_rec, loss_cc;       // scalars
  at::Tensor t_att;                         // [NM, V, TP/2, TP/2]
  at::Tensor score_t, score_s;              // [NM, L_group] in the order of the group's tokens
  at::Tensor key_t, key_s;                  // Gumbel keys [NM, L_group]
  at::Tensor ids_shuffle_t, ids_shuffle_s;  // [NM, L_group]
  at::Tensor enc_in, latent;                // [NM, 2K, d]
  at::Tensor mask;         // released: cat(mask_t, mask_s); corrected: grid order [NM, L]
  at::Tensor ids_restore;  // released: cat(restore_t, restore_s + L_group) [NM, L]
  at::Tensor pred, target, target_norm;  // [NM, L, t_patch*3]
  at::Tensor motion, motion_h;           // [NM, T, V, 3]
  at::Tensor cc_a, cc_b, cc_g;           // [NM, d]
  at::Tensor sim_t, sim_s, sim_inter;    // [NM, NM]
};

// x5 [N, 3, T, 25, M] -> loss and intermediates. U_t, U_s [NM, L_group] uniforms in [0,1)
// (the two torch.rand calls of the released forward). `sd` tensors must share x5's dtype/device.
HacmOutputs hacm_forward(const StateDict& sd, const HacmConfig& cfg, const at::Tensor& x5,
                         const at::Tensor& U_t, const at::Tensor& U_s,
                         const HacmInject* inject = nullptr);

// Gumbel top-k selection (mask_hyper_matrix): score, U [B, L] -> keep K tokens.
struct Selection {
  at::Tensor score_norm, prob, key, ids_shuffle, ids_keep, ids_restore, mask;
};
Selection gumbel_topk_forward(const at::Tensor& score, const at::Tensor& U, int64_t K,
                              double temperature, bool descending,
                              const at::Tensor* ids_shuffle_inject = nullptr);

// mc_even [NM, TPh, V, d] -> softmax(scale * Q K^T over joints) [NM, V, TPh, TPh]
at::Tensor temporal_scores_forward(const at::Tensor& mc_even, const StateDict& sd, double scale);
// Hs [NM, TPh, V, d], father [NM, TPh, d] -> (D [NM, TPh, V, V], Df [NM, TPh, V]); the
// pairwise distances never materialise a [.., V, V, d] difference.
void spatial_distances_forward(const at::Tensor& Hs, const at::Tensor& father, double factor,
                               at::Tensor* D, at::Tensor* Df);

}  // namespace hacm::accel
