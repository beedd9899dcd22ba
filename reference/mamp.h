// MAMP baseline pre-training model (Mao et al., ICCV 2023; golden mamp_forward.npz), forward and
// hand-written backward. Twin of accelerated/mamp.h.
//   x5 [N,3,T,J,M] -> x [NM,T,J,3]; E = conv(x) + pos + temp (Euclidean, no hyperbolic map)
//   motion-aware masking: m[τ·J + v] = mean_F |P_τ − P_{τ−1}| of the raw patches (τ = 0 copies
//   τ = 1), Gumbel keys as HA-CM with temperature tau, ASCENDING order (high motion tends to be
//   masked), keep K = int(L·(1 − mask_ratio)) (74 of 750: float rounding, as coded)
//   encoder on the kept tokens -> norm -> decoder_embed ++ mask_token, un-shuffled by
//   ids_restore -> + decoder pos/temp -> decoder blocks -> norm -> pred [NM, L, tp·3]
//   target = patchified frame-difference motion (last frame 0), normalised; masked MSE.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "reference/checkpoint.h"
#include "reference/criteria.h"
#include "reference/decoder.h"
#include "reference/transformer.h"

namespace hacm::ref {

struct MampConfig {
  int heads = 8;
  int64_t depth = -1, decoder_depth = -1;  // -1: count the blocks in the weights
  double mask_ratio = 0.9;
  double tau = 0.80;  // motion_aware_tau
  double ln_eps = kLayerNormEps;
  double target_eps = 1e-6;
};

template <class T>
struct MampWeights : EncoderParams<T>, DecoderParams<T> {  // V = all 25 joints
  static MampWeights load(const Checkpoint<T>& ck, MampConfig& cfg);
  MampWeights zeros_like() const;
  std::vector<std::pair<std::string, Tensor<T>*>> named();
};

template <class T>
struct MampForward {
  int64_t persons = 0;
  Tensor<T> x;               // [NM, T, J, 3]
  Tensor<T> motion_raw;      // [NM, L]
  Selection<T> sel;          // ascending order, keep K
  Tensor<T> enc_in, latent;  // [NM, K, D]
  std::vector<Tensor<T>> enc_x;
  std::vector<BlockCache<T>> enc_c;
  Tensor<T> enc_out;
  LayerNormCache<T> norm_c;
  DecoderCache<T> dec;
  Tensor<T> pred, target, target_norm;  // [NM, L, tp·3]
  T loss = 0;
};

// x5 [N, 3, T, J, M], U [NM, L]; order (optional, [NM, L]) injects the ascending order.
template <class T>
MampForward<T> mamp_forward(const Tensor<T>& x5, const Tensor<T>& U, const MampWeights<T>& w,
                            const MampConfig& cfg, const std::vector<int64_t>* order = nullptr);

template <class T>
struct MampGrads {
  MampWeights<T> w;
  Tensor<T> x5;  // [N, 3, T, J, M] (embedding and target paths)
};
template <class T>
MampGrads<T> mamp_backward(const MampForward<T>& f, const Tensor<T>& x5, const MampWeights<T>& w,
                           const MampConfig& cfg);

// x [B, T, J, C] -> [B, (T/tp)·J, tp·C], row τ·J + v, feature u·C + c.
template <class T>
Tensor<T> patchify_forward(const Tensor<T>& x, int64_t tp);
// g [B, (T/tp)·J, tp·C] -> [B, T, J, C] (frames beyond (T/tp)·tp get 0).
template <class T>
Tensor<T> patchify_backward(const Tensor<T>& g, int64_t tp, int64_t Tn);

}  // namespace hacm::ref
