// HA-CM pre-training model, `released` variant (spec §3, §4, §8.1): forward loss with every
// intermediate kept for inspection. Forward only for now (the backward of the full model is not
// implemented in the reference yet; the block/embedding/hyperbolic backwards it needs are).
//
//   x5 [N,3,T,J,M] -> x [NM,T,J,3] -> kept [NM,T,V,3], null [NM,T,Vn,3]
//   E = conv(kept), En = conv(null) [NM,TP,·,D]; mc = E + pos + temp; H = ewp(mc)
//   Z_t = H[:,0::2] joint-major [NM,V·TE,D]; Z_s = H[:,1::2] time-major [NM,TO·V,D]
//   temporal / spatial scores -> Gumbel top-k (U_t, U_s) -> enc_in = [Z_t[keep_t], Z_s[keep_s]]
//   encoder blocks + norm -> latent; cross-contrast loss on latent
//   decoder_embed(latent) ++ mask tokens, gathered by ids_restore = [restore_t, restore_s + V·TE]
//   (+ decoder pos/temp by grid slot) -> decoder blocks -> norm -> pred [NM, TP·V, tp·3]
//   target = patchify(ewp(motion(kept))) reordered even-then-odd patches; masked normalised MSE.
#pragma once
#include <string>
#include <vector>

#include "reference/checkpoint.h"
#include "reference/criteria.h"
#include "reference/embed.h"
#include "reference/transformer.h"

namespace hacm::ref {

// Everything not derivable from the weight shapes, plus the `corrected`-variant settings whose
// defaults are the released values (spec §8.2).
struct HacmConfig {
  int heads = 8;
  int64_t depth = -1, decoder_depth = -1;  // -1: count blocks.i / decoder_blocks.j in the weights
  std::vector<int64_t> kept = ntu_kept_joints(), null = ntu_null_joints();
  double distance_factor = kReleasedDistanceFactor;
  double logit_scale = 0;  // 0: √width (released ×16 at width 256)
  double keep_ratio = kReleasedKeepRatio;
  double temperature = kReleasedTemperature;
  double father_weight = kFatherWeight;
  double ln_eps = kLayerNormEps;
  double target_eps = 1e-6;  // forward_loss: (var + 1e-6)^0.5
};

template <class T>
struct HacmWeights {
  Tensor<T> conv_w, conv_b;  // [D, 3, tp, 1], [D]
  Tensor<T> pos, temp;       // [1, 1, V, D], [1, TP, 1, D]
  std::vector<BlockParams<T>> blocks;
  LayerNormParams<T> norm;
  LinearParams<T> l1, l2;         // temporal criterion, [D', D]
  LinearParams<T> decoder_embed;  // [Dd, D]
  Tensor<T> mask_token;           // [1, 1, Dd]
  std::vector<BlockParams<T>> decoder_blocks;
  LayerNormParams<T> decoder_norm;
  Tensor<T> decoder_pos, decoder_temp;  // [1, 1, V, Dd], [1, TP, 1, Dd]
  LinearParams<T> decoder_pred;         // [tp·3, Dd]

  // State_dict names of the released model (weights_hacm*.npz). Throws InputError on a missing
  // tensor or a shape inconsistent with the others.
  static HacmWeights load(const Checkpoint<T>& ck, HacmConfig& cfg);
};

template <class T>
struct HacmForward {
  Tensor<T> mc;        // [NM, TP, V, D] embedding + pos + temp (Euclidean)
  Tensor<T> emb_null;  // [NM, TP, Vn, D]
  TemporalScores<T> temporal;
  SpatialScores<T> spatial;
  Selection<T> sel_t, sel_s;          // over [NM, V·TE] and [NM, TO·V]
  Tensor<T> enc_in, latent;           // [NM, Kt + Ks, D]
  Tensor<T> mask;                     // [NM, TP·V] cat(mask_t, mask_s)
  std::vector<int64_t> ids_restore;   // [NM, TP·V] cat(restore_t, restore_s + V·TE)
  Tensor<T> cc_a, cc_b, cc_g;         // [NM, D]
  Tensor<T> sim_t, sim_s, sim_inter;  // [NM, NM]
  T loss_cc = 0;
  Tensor<T> pred;                 // [NM, TP·V, tp·3]
  Tensor<T> motion, motion_h;     // [NM, T, V, 3]
  Tensor<T> target, target_norm;  // [NM, TP·V, tp·3]
  T loss_rec = 0, loss = 0;
};

// x5: [N, 3, T, J, M]; u_t: [NM, V·TE], u_s: [NM, TO·V] (the two torch.rand draws).
// order_t / order_s (optional, [NM, L] each): inject these descending orders instead of the
// Gumbel selection (e.g. golden ids_shuffle for float32 runs).
template <class T>
HacmForward<T> hacm_forward(const Tensor<T>& x5, const Tensor<T>& u_t, const Tensor<T>& u_s,
                            const HacmWeights<T>& w, const HacmConfig& cfg,
                            const std::vector<int64_t>* order_t = nullptr,
                            const std::vector<int64_t>* order_s = nullptr);

}  // namespace hacm::ref
