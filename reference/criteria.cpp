// Masking criteria and Gumbel top-k selection (see criteria.h for the formulas).
#include "reference/criteria.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace hacm::ref {
namespace {

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

// x: [NM, TP, V, D] -> patches τ = first, first + 2, ... : [NM, count, V, D]
template <class T>
Tensor<T> every_other_patch(const Tensor<T>& x, int64_t first) {
  const int64_t NM = x.dim(0), TP = x.dim(1), VD = x.dim(2) * x.dim(3);
  const int64_t cnt = (TP - first + 1) / 2;
  Tensor<T> y({NM, cnt, x.dim(2), x.dim(3)});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t < cnt; ++t)
      std::copy_n(x.ptr() + (n * TP + first + 2 * t) * VD, VD, y.ptr() + (n * cnt + t) * VD);
  return y;
}

}  // namespace

template <class T>
TemporalScores<T> temporal_scores_forward(const Tensor<T>& mc, const LinearParams<T>& l1,
                                          const LinearParams<T>& l2, double logit_scale) {
  need(mc.ndim() == 4, "temporal_scores_forward: want mc [NM,TP,V,D], got " + shape_str(mc.shape));
  Tensor<T> even = every_other_patch(mc, 0);
  Tensor<T> q = linear_forward(even, l1), k = linear_forward(even, l2);  // [NM, TE, V, D']
  const int64_t NM = q.dim(0), TE = q.dim(1), V = q.dim(2), Dq = q.dim(3);
  need(k.dim(3) == Dq, "temporal_scores_forward: l1/l2 output widths differ");
  const T scale = T(logit_scale > 0 ? logit_scale : std::sqrt(double(Dq)));
  TemporalScores<T> r;
  r.logits = Tensor<T>({NM, V, TE, TE});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t v = 0; v < V; ++v) {
      // Rows t of joint v: stride V·D' inside [TE, V, D'].
      const Eigen::OuterStride<> st(V * Dq);
      CMapRS<T> Qv(q.ptr() + (n * TE * V + v) * Dq, TE, Dq, st),
          Kv(k.ptr() + (n * TE * V + v) * Dq, TE, Dq, st);
      MapR<T> S(r.logits.ptr() + (n * V + v) * TE * TE, TE, TE);
      S.noalias() = Qv * Kv.transpose();
      S *= scale;
    }
  // Softmax over the joint axis v for every (n, t, u).
  r.att = Tensor<T>(r.logits.shape);
  const int64_t P = TE * TE;
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t tu = 0; tu < P; ++tu) {
      const T* in = r.logits.ptr() + n * V * P + tu;
      T* out = r.att.ptr() + n * V * P + tu;
      T m = in[0];
      for (int64_t v = 1; v < V; ++v) m = std::max(m, in[v * P]);
      T s = 0;
      for (int64_t v = 0; v < V; ++v) s += (out[v * P] = std::exp(in[v * P] - m));
      for (int64_t v = 0; v < V; ++v) out[v * P] /= s;
    }
  r.score = matrix_score_forward(r.att);
  return r;
}

template <class T>
SpatialScores<T> spatial_scores_forward(const Tensor<T>& mc, const Tensor<T>& emb_null,
                                        double factor, double father_weight) {
  need(mc.ndim() == 4 && emb_null.ndim() == 4 && emb_null.dim(0) == mc.dim(0) &&
           emb_null.dim(1) == mc.dim(1) && emb_null.dim(3) == mc.dim(3),
       "spatial_scores_forward: mc " + shape_str(mc.shape) + " emb_null " +
           shape_str(emb_null.shape));
  const int64_t NM = mc.dim(0), TP = mc.dim(1), V = mc.dim(2), D = mc.dim(3), Vn = emb_null.dim(2);
  SpatialScores<T> r;
  r.hs = expmap_with_projection_forward(every_other_patch(mc, 1));
  const int64_t TO = r.hs.dim(1);
  // Father point: Euclidean mean of the null joints' ball points, odd patches only.
  Tensor<T> hn = expmap_with_projection_forward(emb_null);
  r.father = Tensor<T>({NM, TO, D});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t < TO; ++t)
      for (int64_t d = 0; d < D; ++d) {
        T s = 0;
        for (int64_t j = 0; j < Vn; ++j) s += hn[((n * TP + 2 * t + 1) * Vn + j) * D + d];
        r.father[(n * TO + t) * D + d] = s / T(Vn);
      }
  r.dist = Tensor<T>({NM, TO, V, V});
  r.dist_f = Tensor<T>({NM, TO, V});
  r.matrix = Tensor<T>({NM, V, V + 1, TO});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t < TO; ++t) {
      const T* h = r.hs.ptr() + (n * TO + t) * V * D;
      const T* f = r.father.ptr() + (n * TO + t) * D;
      for (int64_t j = 0; j < V; ++j) {
        for (int64_t i = 0; i < V; ++i) {
          const T dij = poincare_distance_row(h + i * D, h + j * D, D, factor);
          r.dist[((n * TO + t) * V + i) * V + j] = dij;
          r.matrix[((n * V + j) * (V + 1) + i) * TO + t] = dij;
        }
        const T df = poincare_distance_row(f, h + j * D, D, factor);
        r.dist_f[(n * TO + t) * V + j] = df;
        r.matrix[((n * V + j) * (V + 1) + V) * TO + t] = T(father_weight) * df;
      }
    }
  r.score = matrix_score_forward(r.matrix);
  return r;
}

template <class T>
Tensor<T> matrix_score_forward(const Tensor<T>& m) {
  need(m.ndim() == 4, "matrix_score_forward: want [B,A,R,C], got " + shape_str(m.shape));
  const int64_t B = m.dim(0), A = m.dim(1), R = m.dim(2), C = m.dim(3);
  Tensor<T> s({B, A * C});
  for (int64_t ba = 0; ba < B * A; ++ba)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) s[ba * C + c] += m[(ba * R + r) * C + c];
  return s;
}

template <class T>
Selection<T> selection_from_order(const std::vector<int64_t>& order, int64_t B, int64_t L,
                                  int64_t K) {
  need(int64_t(order.size()) == B * L && K >= 0 && K <= L, "selection_from_order: bad sizes");
  Selection<T> s;
  s.keep = K;
  s.ids_shuffle = order;
  s.ids_keep.resize(size_t(B * K));
  s.ids_restore.assign(size_t(B * L), -1);
  s.mask = Tensor<T>({B, L});
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t r = 0; r < L; ++r) {
      const int64_t tok = order[size_t(b * L + r)];
      need(tok >= 0 && tok < L && s.ids_restore[size_t(b * L + tok)] < 0,
           "selection_from_order: row " + std::to_string(b) + " is not a permutation");
      s.ids_restore[size_t(b * L + tok)] = r;
      s.mask[b * L + tok] = r < K ? T(0) : T(1);
      if (r < K) s.ids_keep[size_t(b * K + r)] = tok;
    }
  }
  return s;
}

template <class T>
Selection<T> gumbel_topk_forward(const Tensor<T>& score, const Tensor<T>& U, double keep_ratio,
                                 double temperature) {
  need(score.ndim() == 2 && U.shape == score.shape,
       "gumbel_topk_forward: score " + shape_str(score.shape) + " uniforms " + shape_str(U.shape));
  const int64_t B = score.dim(0), L = score.dim(1);
  const int64_t K = int64_t(keep_ratio * double(L));  // Python int(): truncation
  Tensor<T> sn({B, L}), p({B, L}), key({B, L});
  std::vector<int64_t> order(size_t(B * L));
  for (int64_t b = 0; b < B; ++b) {
    const T* s = score.ptr() + b * L;
    const T mx = *std::max_element(s, s + L);
    const T denom = mx * T(temperature) + T(1e-10);
    for (int64_t l = 0; l < L; ++l) sn[b * L + l] = s[l] / denom;
    const T m = *std::max_element(sn.ptr() + b * L, sn.ptr() + (b + 1) * L);
    T sum = 0;
    for (int64_t l = 0; l < L; ++l) sum += (p[b * L + l] = std::exp(sn[b * L + l] - m));
    for (int64_t l = 0; l < L; ++l) {
      p[b * L + l] /= sum;
      key[b * L + l] =
          std::log(p[b * L + l]) - std::log(-std::log(U[b * L + l] + T(1e-10)) + T(1e-10));
    }
    int64_t* o = order.data() + b * L;
    std::iota(o, o + L, int64_t(0));
    const T* kb = key.ptr() + b * L;
    std::stable_sort(o, o + L, [kb](int64_t a, int64_t c) { return kb[a] > kb[c]; });
  }
  Selection<T> sel = selection_from_order<T>(order, B, L, K);
  sel.score_norm = std::move(sn);
  sel.prob = std::move(p);
  sel.key = std::move(key);
  return sel;
}

template <class T>
Tensor<T> gather_tokens_forward(const Tensor<T>& x, const std::vector<int64_t>& ids, int64_t K) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  need(int64_t(ids.size()) == B * K, "gather_tokens_forward: ids size");
  Tensor<T> y({B, K, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      std::copy_n(x.ptr() + (b * L + ids[size_t(b * K + k)]) * C, C, y.ptr() + (b * K + k) * C);
  return y;
}

template <class T>
Tensor<T> gather_tokens_backward(const Tensor<T>& g, const std::vector<int64_t>& ids, int64_t L) {
  const int64_t B = g.dim(0), K = g.dim(1), C = g.dim(2);
  Tensor<T> gx({B, L, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c)
        gx[(b * L + ids[size_t(b * K + k)]) * C + c] += g[(b * K + k) * C + c];
  return gx;
}

#define HACM_INSTANTIATE(T)                                                                      \
  template TemporalScores<T> temporal_scores_forward(const Tensor<T>&, const LinearParams<T>&,   \
                                                     const LinearParams<T>&, double);            \
  template SpatialScores<T> spatial_scores_forward(const Tensor<T>&, const Tensor<T>&, double,   \
                                                   double);                                      \
  template Tensor<T> matrix_score_forward(const Tensor<T>&);                                     \
  template Selection<T> selection_from_order<T>(const std::vector<int64_t>&, int64_t, int64_t,   \
                                                int64_t);                                        \
  template Selection<T> gumbel_topk_forward(const Tensor<T>&, const Tensor<T>&, double, double); \
  template Tensor<T> gather_tokens_forward(const Tensor<T>&, const std::vector<int64_t>&,        \
                                           int64_t);                                             \
  template Tensor<T> gather_tokens_backward(const Tensor<T>&, const std::vector<int64_t>&, int64_t);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
