// Normalised masked MSE (see recon_loss.h).
#include "reference/recon_loss.h"

#include <cmath>

namespace hacm::ref {
namespace {

// Mean and sqrt(unbiased variance + eps) of one row of F values.
template <class T>
void row_stats(const T* x, int64_t F, double eps, T& mean, T& sd) {
  mean = 0;
  for (int64_t i = 0; i < F; ++i) mean += x[i];
  mean /= T(F);
  T var = 0;
  for (int64_t i = 0; i < F; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= T(F - 1);  // unbiased, as torch.var
  sd = std::sqrt(var + T(eps));
}

}  // namespace

template <class T>
T recon_loss_forward(const Tensor<T>& pred, const Tensor<T>& target, const Tensor<T>& mask,
                     double eps, Tensor<T>& target_norm) {
  const int64_t F = target.dim(-1), R = target.rows();
  target_norm = Tensor<T>(target.shape);
  T num = 0, den = 0;
  for (int64_t r = 0; r < R; ++r) {
    const T* tr = target.ptr() + r * F;
    T mean, sd;
    row_stats(tr, F, eps, mean, sd);
    T l = 0;
    for (int64_t i = 0; i < F; ++i) {
      const T tn = (tr[i] - mean) / sd;
      target_norm[r * F + i] = tn;
      const T d = pred[r * F + i] - tn;
      l += d * d;
    }
    num += (l / T(F)) * mask[r];
    den += mask[r];
  }
  return num / den;
}

template <class T>
void recon_loss_backward(const Tensor<T>& pred, const Tensor<T>& target,
                         const Tensor<T>& target_norm, const Tensor<T>& mask, double eps,
                         Tensor<T>& g_pred, Tensor<T>& g_target) {
  const int64_t F = target.dim(-1), R = target.rows();
  g_pred = Tensor<T>(pred.shape);
  g_target = Tensor<T>(target.shape);
  T den = 0;
  for (int64_t r = 0; r < R; ++r) den += mask[r];
  std::vector<T> gtn(static_cast<size_t>(F));
  for (int64_t r = 0; r < R; ++r) {
    const T m = mask[r];
    if (m == T(0)) continue;
    const T* pr = pred.ptr() + r * F;
    const T* tn = target_norm.ptr() + r * F;
    // d/dpred = 2 m (pred − tn) / (F·den); the normalised target gets the negative.
    T gsum = 0, gdot = 0;
    for (int64_t i = 0; i < F; ++i) {
      const T d = T(2) * m * (pr[i] - tn[i]) / (T(F) * den);
      g_pred[r * F + i] = d;
      gtn[size_t(i)] = -d;
      gsum += -d;
      gdot += -d * tn[i];
    }
    // tn = (x − μ)/s, s = sqrt(var_unbiased + eps):
    // dx_j = (g_j − mean g)/s − tn_j · Σ_i g_i tn_i / (s·(F − 1)).
    T mean, sd;
    row_stats(target.ptr() + r * F, F, eps, mean, sd);
    for (int64_t i = 0; i < F; ++i)
      g_target[r * F + i] = (gtn[size_t(i)] - gsum / T(F)) / sd - tn[i] * gdot / (sd * T(F - 1));
  }
}

#define HACM_INSTANTIATE(T)                                                                   \
  template T recon_loss_forward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, double, \
                                Tensor<T>&);                                                  \
  template void recon_loss_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,     \
                                    const Tensor<T>&, double, Tensor<T>&, Tensor<T>&);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
