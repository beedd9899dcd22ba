// HA-CM masking criteria and Gumbel top-k selection (spec §4.2-§4.5). Forward only: the scores
// only feed an argsort, so no gradient flows through them (l1/l2 never train).
//
// Grid: mc [NM, TP, V, D] = patch embedding + pos + temp. Temporal group = even patches
// (τ = 2τ'), spatial group = odd patches (τ = 2τ' + 1).
//
// Temporal criterion:
//   Q = l1(mc[:, 0::2]), K = l2(mc[:, 0::2])                        [NM, TE, V, D']
//   logits[n, v, t, u] = scale · Σ_c Q[n, t, v, c] K[n, u, v, c]       [NM, V, TE, TE]
//   att = softmax over v (the JOINT axis), score[n, v·TE + u] = Σ_t att[n, v, t, u]
// Spatial criterion (distance factor 4 in the released code):
//   Hs = ewp(mc[:, 1::2]), F = mean_j ewp(emb_null)[:, 1::2, j]      [NM, TO, V, D], [NM, TO, D]
//   D[n, τ', i, j] = d(Hs_i, Hs_j), Df[n, τ', j] = d(F, Hs_j)
//   matrix[n, j, i, τ'] = D[n, τ', i, j] (i < V), 0.01·Df[n, τ', j] (i = V)   [NM, V, V+1, TO]
//   score[n, j·TO + τ'] = Σ_i matrix[n, j, i, τ']   (joint-major: the released code applies it to
//   time-major tokens, which is ordering quirk 1 of spec §8.1)
// Selection (mask_hyper_matrix): s̃ = s/(temperature·max s + 1e-10), p = softmax(s̃),
//   g = log p − log(−log(U + 1e-10) + 1e-10), order = argsort(g, descending), keep = order[:K],
//   K = int(keep_ratio·L), restore = argsort(order), mask = 1 where removed.
#pragma once
#include <vector>

#include "reference/hyperbolic.h"
#include "reference/transformer.h"

namespace hacm::ref {

template <class T>
struct TemporalScores {
  Tensor<T> logits;  // [NM, V, TE, TE]
  Tensor<T> att;     // [NM, V, TE, TE]
  Tensor<T> score;   // [NM, V·TE], index v·TE + u
};
// mc: [NM, TP, V, D]; l1, l2: Linear(D, D'); logit_scale <= 0 means √D' (the released ×√d).
template <class T>
TemporalScores<T> temporal_scores_forward(const Tensor<T>& mc, const LinearParams<T>& l1,
                                          const LinearParams<T>& l2, double logit_scale = 0);

template <class T>
struct SpatialScores {
  Tensor<T> hs;      // [NM, TO, V, D]   ewp of the odd-patch tokens
  Tensor<T> father;  // [NM, TO, D]      mean of ewp(null joints), odd patches
  Tensor<T> dist;    // [NM, TO, V, V]   D
  Tensor<T> dist_f;  // [NM, TO, V]      Df
  Tensor<T> matrix;  // [NM, V, V+1, TO]
  Tensor<T> score;   // [NM, V·TO], index j·TO + τ'
};
inline constexpr double kFatherWeight = 0.01;
// mc: [NM, TP, V, D], emb_null: [NM, TP, Vn, D] (patch embedding of the null joints, no pos/temp).
template <class T>
SpatialScores<T> spatial_scores_forward(const Tensor<T>& mc, const Tensor<T>& emb_null,
                                        double factor = kReleasedDistanceFactor,
                                        double father_weight = kFatherWeight);

// matrix: [B, A, R, Cc] -> [B, A·Cc], summed over R (mask_hyper_matrix's `matrix.sum(-2)`).
template <class T>
Tensor<T> matrix_score_forward(const Tensor<T>& matrix);

inline constexpr double kReleasedKeepRatio = 0.1;
inline constexpr double kReleasedTemperature = 0.9;

template <class T>
struct Selection {
  int64_t keep = 0;                  // K
  Tensor<T> score_norm, prob, key;   // [B, L] each (s̃, p, Gumbel key g)
  std::vector<int64_t> ids_shuffle;  // [B, L] descending order of g
  std::vector<int64_t> ids_keep;     // [B, K] = ids_shuffle[:, :K] (rank order)
  std::vector<int64_t> ids_restore;  // [B, L] rank of each token
  Tensor<T> mask;                    // [B, L] 1 = removed, 0 = kept
};
// score: [B, L], uniforms: [B, L] (the caller's torch.rand draws) -> Selection.
template <class T>
Selection<T> gumbel_topk_forward(const Tensor<T>& score, const Tensor<T>& uniforms,
                                 double keep_ratio = kReleasedKeepRatio,
                                 double temperature = kReleasedTemperature);
// Selection from a given order (e.g. the golden ids_shuffle injected in float32 runs).
template <class T>
Selection<T> selection_from_order(const std::vector<int64_t>& ids_shuffle, int64_t B, int64_t L,
                                  int64_t keep);

// x: [B, L, C], ids: [B, K] -> [B, K, C]
template <class T>
Tensor<T> gather_tokens_forward(const Tensor<T>& x, const std::vector<int64_t>& ids, int64_t K);
// gout: [B, K, C] -> [B, L, C] (scatter-add)
template <class T>
Tensor<T> gather_tokens_backward(const Tensor<T>& gout, const std::vector<int64_t>& ids, int64_t L);

}  // namespace hacm::ref
