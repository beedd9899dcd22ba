// Joint split and patch embedding (see embed.h). The conv is one matmul: patches P [B·TP·V, C·tp]
// (column c·tp + u, the flattening of W[o, c, u, 0]) times Wᵀ [C·tp, D].
#include "reference/embed.h"

#include <stdexcept>

namespace hacm::ref {
namespace {

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

// x: [B, T, V, C] -> P [B·TP·V, C·tp], row (b, τ, v), column c·tp + u.
template <class T>
MatR<T> gather_patches(const Tensor<T>& x, int64_t tp) {
  const int64_t B = x.dim(0), Tn = x.dim(1), V = x.dim(2), C = x.dim(3), TP = Tn / tp;
  MatR<T> P(B * TP * V, C * tp);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v) {
        const int64_t row = (b * TP + t) * V + v;
        for (int64_t u = 0; u < tp; ++u)
          for (int64_t c = 0; c < C; ++c)
            P(row, c * tp + u) = x[((b * Tn + t * tp + u) * V + v) * C + c];
      }
  return P;
}

}  // namespace

template <class T>
Tensor<T> to_person_major_forward(const Tensor<T>& x5) {
  need(x5.ndim() == 5, "to_person_major_forward: want [N,C,T,J,M], got " + shape_str(x5.shape));
  const int64_t N = x5.dim(0), C = x5.dim(1), Tn = x5.dim(2), J = x5.dim(3), M = x5.dim(4);
  Tensor<T> x({N * M, Tn, J, C});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t j = 0; j < J; ++j)
          for (int64_t m = 0; m < M; ++m)
            x[(((n * M + m) * Tn + t) * J + j) * C + c] =
                x5[(((n * C + c) * Tn + t) * J + j) * M + m];
  return x;
}

template <class T>
Tensor<T> to_person_major_backward(const Tensor<T>& g, int64_t M) {
  need(g.ndim() == 4 && g.dim(0) % M == 0,
       "to_person_major_backward: bad shape " + shape_str(g.shape));
  const int64_t N = g.dim(0) / M, Tn = g.dim(1), J = g.dim(2), C = g.dim(3);
  Tensor<T> g5({N, C, Tn, J, M});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t j = 0; j < J; ++j)
          for (int64_t m = 0; m < M; ++m)
            g5[(((n * C + c) * Tn + t) * J + j) * M + m] =
                g[(((n * M + m) * Tn + t) * J + j) * C + c];
  return g5;
}

template <class T>
Tensor<T> select_joints_forward(const Tensor<T>& x, const std::vector<int64_t>& idx) {
  need(x.ndim() == 4, "select_joints_forward: want [B,T,J,C], got " + shape_str(x.shape));
  const int64_t B = x.dim(0), Tn = x.dim(1), J = x.dim(2), C = x.dim(3), V = int64_t(idx.size());
  for (int64_t j : idx) need(j >= 0 && j < J, "select_joints_forward: joint index out of range");
  Tensor<T> y({B, Tn, V, C});
  for (int64_t bt = 0; bt < B * Tn; ++bt)
    for (int64_t v = 0; v < V; ++v)
      for (int64_t c = 0; c < C; ++c)
        y[(bt * V + v) * C + c] = x[(bt * J + idx[size_t(v)]) * C + c];
  return y;
}

template <class T>
Tensor<T> select_joints_backward(const Tensor<T>& g, const std::vector<int64_t>& idx, int64_t J) {
  const int64_t B = g.dim(0), Tn = g.dim(1), V = g.dim(2), C = g.dim(3);
  Tensor<T> gx({B, Tn, J, C});
  for (int64_t bt = 0; bt < B * Tn; ++bt)
    for (int64_t v = 0; v < V; ++v)
      for (int64_t c = 0; c < C; ++c)
        gx[(bt * J + idx[size_t(v)]) * C + c] += g[(bt * V + v) * C + c];
  return gx;
}

template <class T>
Tensor<T> patch_embed_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b) {
  need(x.ndim() == 4 && w.ndim() == 4 && w.dim(3) == 1 && w.dim(1) == x.dim(3) &&
           b.numel() == w.dim(0) && x.dim(1) % w.dim(2) == 0,
       "patch_embed_forward: x " + shape_str(x.shape) + " w " + shape_str(w.shape) + " b " +
           shape_str(b.shape));
  const int64_t D = w.dim(0), tp = w.dim(2), K = w.dim(1) * tp;
  MatR<T> P = gather_patches(x, tp);
  Tensor<T> e({x.dim(0), x.dim(1) / tp, x.dim(2), D});
  MapR<T> E(e.ptr(), P.rows(), D);
  E.noalias() = P * CMapR<T>(w.ptr(), D, K).transpose();
  E.rowwise() += CVecMap<T>(b.ptr(), D).transpose();
  return e;
}

template <class T>
Tensor<T> patch_embed_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& gout,
                               Tensor<T>& gw, Tensor<T>& gb) {
  const int64_t B = x.dim(0), Tn = x.dim(1), V = x.dim(2), C = x.dim(3);
  const int64_t D = w.dim(0), tp = w.dim(2), K = C * tp, TP = Tn / tp;
  need(gout.numel() == B * TP * V * D, "patch_embed_backward: gout " + shape_str(gout.shape));
  if (gw.numel() == 0) gw = Tensor<T>(w.shape);
  if (gb.numel() == 0) gb = Tensor<T>({D});
  MatR<T> P = gather_patches(x, tp);
  CMapR<T> G(gout.ptr(), B * TP * V, D);
  MapR<T>(gw.ptr(), D, K).noalias() += G.transpose() * P;
  VecMap<T>(gb.ptr(), D) += G.colwise().sum().transpose();
  MatR<T> GP = G * CMapR<T>(w.ptr(), D, K);  // [rows, C·tp]
  Tensor<T> gx(x.shape);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v) {
        const int64_t row = (b * TP + t) * V + v;
        for (int64_t u = 0; u < tp; ++u)
          for (int64_t c = 0; c < C; ++c)
            gx[((b * Tn + t * tp + u) * V + v) * C + c] += GP(row, c * tp + u);
      }
  return gx;
}

template <class T>
Tensor<T> add_pos_temp_forward(const Tensor<T>& e, const Tensor<T>& pos, const Tensor<T>& temp) {
  const int64_t B = e.dim(0), TP = e.dim(1), V = e.dim(2), D = e.dim(3);
  need(pos.numel() == V * D && temp.numel() == TP * D,
       "add_pos_temp_forward: e " + shape_str(e.shape) + " pos " + shape_str(pos.shape) + " temp " +
           shape_str(temp.shape));
  Tensor<T> y(e.shape);
  // Same association as PyTorch's (e + pos) + temp.
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t i = ((b * TP + t) * V + v) * D + d;
          y[i] = (e[i] + pos[v * D + d]) + temp[t * D + d];
        }
  return y;
}

template <class T>
Tensor<T> add_pos_temp_backward(const Tensor<T>& g, Tensor<T>& gpos, Tensor<T>& gtemp) {
  const int64_t B = g.dim(0), TP = g.dim(1), V = g.dim(2), D = g.dim(3);
  if (gpos.numel() == 0) gpos = Tensor<T>({1, 1, V, D});
  if (gtemp.numel() == 0) gtemp = Tensor<T>({1, TP, 1, D});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v)
        for (int64_t d = 0; d < D; ++d) {
          const T gi = g[((b * TP + t) * V + v) * D + d];
          gpos[v * D + d] += gi;
          gtemp[t * D + d] += gi;
        }
  return g;
}

#define HACM_INSTANTIATE(T)                                                                      \
  template Tensor<T> to_person_major_forward(const Tensor<T>&);                                  \
  template Tensor<T> to_person_major_backward(const Tensor<T>&, int64_t);                        \
  template Tensor<T> select_joints_forward(const Tensor<T>&, const std::vector<int64_t>&);       \
  template Tensor<T> select_joints_backward(const Tensor<T>&, const std::vector<int64_t>&,       \
                                            int64_t);                                            \
  template Tensor<T> patch_embed_forward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&);  \
  template Tensor<T> patch_embed_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,  \
                                          Tensor<T>&, Tensor<T>&);                               \
  template Tensor<T> add_pos_temp_forward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&); \
  template Tensor<T> add_pos_temp_backward(const Tensor<T>&, Tensor<T>&, Tensor<T>&);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
