// HA-CM pre-training model (spec §3, §4, §8): forward loss with every intermediate kept (the
// caches double as inspection points), and the hand-written backward of the whole loss
// (hacm_backward). Two variants (HacmConfig::variant):
//  * "released": the f13611b code with its three ordering quirks (spec §8.1), documented below;
//  * "corrected" (spec §8.2, as accelerated/hacm.cpp): one time-major token order everywhere
//    (temporal tokens, both scores), the decoder on the full TP×V grid with each kept token at
//    its own slot τ·V + v and mask tokens elsewhere, target and mask in grid order.
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
#include <utility>
#include <vector>

#include "reference/checkpoint.h"
#include "reference/criteria.h"
#include "reference/decoder.h"
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
  double target_eps = 1e-6;          // forward_loss: (var + 1e-6)^0.5
  std::string variant = "released";  // released | corrected
  bool corrected() const;            // throws std::invalid_argument on an unknown variant
};

template <class T>
struct HacmWeights : EncoderParams<T>, DecoderParams<T> {  // V = 18 kept joints
  LinearParams<T> l1, l2;                                  // temporal criterion, [D', D]

  // State_dict names of the released model (weights_hacm*.npz). Throws InputError on a missing
  // tensor or a shape inconsistent with the others.
  static HacmWeights load(const Checkpoint<T>& ck, HacmConfig& cfg);
  // Same shapes, all zero (gradient accumulators).
  HacmWeights zeros_like() const;
  // Every tensor with its state_dict name (l1/l2 included; they never receive a gradient).
  std::vector<std::pair<std::string, Tensor<T>*>> named();
  std::vector<std::pair<std::string, const Tensor<T>*>> named() const;
  Checkpoint<T> to_checkpoint() const;
};

template <class T>
struct HacmForward {
  // Backward caches.
  int64_t persons = 0;                  // M
  Tensor<T> xk;                         // [NM, T, V, 3] kept joints
  std::vector<int64_t> grid_t, grid_s;  // [Lt], [Ls]: grid slot τ·V + v of each group token
  std::vector<Tensor<T>> enc_x;         // inputs of each encoder block
  std::vector<BlockCache<T>> enc_c;
  Tensor<T> enc_out;  // before norm
  LayerNormCache<T> norm_c;
  DecoderCache<T> dec;
  std::vector<int64_t> dec_src;  // [NM, TP·V] decoder row -> latent index (>= L: mask token)

  Tensor<T> mc;        // [NM, TP, V, D] embedding + pos + temp (Euclidean)
  Tensor<T> emb_null;  // [NM, TP, Vn, D]
  TemporalScores<T> temporal;
  SpatialScores<T> spatial;
  Selection<T> sel_t, sel_s;          // over [NM, V·TE] and [NM, TO·V]
  Tensor<T> enc_in, latent;           // [NM, Kt + Ks, D]
  Tensor<T> mask;                     // [NM, TP·V] released: cat(mask_t, mask_s); corrected: grid
  std::vector<int64_t> ids_restore;   // released [NM, TP·V] cat(restore_t, restore_s + V·TE);
                                      // corrected [NM, Kt + Ks] grid slot of each latent
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

// Target row of grid cell (τ, v): released = even patches first, then odd (each time-major, TE
// even patches); corrected = the grid slot τ·V + v.
inline int64_t target_row(bool corrected, int64_t t, int64_t v, int64_t V, int64_t TE) {
  if (corrected) return t * V + v;
  return (t % 2 == 0) ? (t / 2) * V + v : TE * V + (t / 2) * V + v;
}

template <class T>
struct HacmGrads {
  HacmWeights<T> w;  // same layout as the weights; l1/l2 stay zero
  Tensor<T> x5;      // [N, 3, T, J, M]
};
// Gradient of f.loss (= loss_rec + loss_cc) w.r.t. every parameter and the input x5, the
// selection held fixed. The target is not detached (as in the released code): grad x5 includes
// the path through extract_motion -> ewp. x5 must be the forward's input.
template <class T>
HacmGrads<T> hacm_backward(const HacmForward<T>& f, const Tensor<T>& x5, const HacmWeights<T>& w,
                           const HacmConfig& cfg);

}  // namespace hacm::ref
