// Poincaré-ball maps and their gradients (see hyperbolic.h for the formulas).
// All maps are "radial": y = s(|x|)·x, so the Jacobian is s·I + (s'(n)/n)·x xᵀ and
//   gin = s·g + (s'(n)/n)·(x·g)·x.
// The only numerical work is evaluating s and s'(n)/n accurately, including n → 0.
#include "reference/hyperbolic.h"

#include <cmath>
#include <stdexcept>

namespace hacm::ref {
namespace {

template <class T>
T norm_row(const T* x, int64_t d) {
  T s = 0;
  for (int64_t i = 0; i < d; ++i) s += x[i] * x[i];
  return std::sqrt(s);
}
template <class T>
T dot_row(const T* a, const T* b, int64_t d) {
  T s = 0;
  for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

// Below this norm the closed forms of s'(n)/n cancel badly; use the Taylor series instead
// (truncation error ~ n^10, i.e. < 1e-20 for double at 1e-2 and < 1e-10 for float at 0.1).
template <class T>
constexpr T series_threshold() {
  return sizeof(T) >= 8 ? T(1e-2) : T(1e-1);
}

// expmap scale s(n) = tanh(n)/n and c2(n) = s'(n)/n.
template <class T>
void expmap_scales(T n, T& s, T& c2) {
  if (n == 0) {
    s = 1;
    c2 = T(-2) / 3;
    return;
  }
  s = std::tanh(n) / n;
  if (n < series_threshold<T>()) {
    // s = 1 - n²/3 + 2n⁴/15 - 17n⁶/315 + 62n⁸/2835 - ...; s'/n term by term.
    T n2 = n * n;
    c2 = T(-2) / 3 +
         n2 * (T(8) / 15 + n2 * (T(-102) / 315 + n2 * (T(496) / 2835 + n2 * T(-13820) / 155925)));
  } else {
    T t = std::tanh(n);
    T sech2 = 1 - t * t;
    // 1 - tanh² loses precision for large n, but then the term is negligible next to -tanh(n).
    c2 = (n * sech2 - t) / (n * n * n);
  }
}

// logmap scale s(n) = atanh(n)/n and c2(n) = s'(n)/n, 0 <= n < 1.
template <class T>
void logmap_scales(T n, T& s, T& c2) {
  if (n == 0) {
    s = 1;
    c2 = T(2) / 3;
    return;
  }
  s = std::atanh(n) / n;
  if (n < series_threshold<T>()) {
    // s = 1 + n²/3 + n⁴/5 + n⁶/7 + n⁸/9 + n¹⁰/11 ...
    T n2 = n * n;
    c2 = T(2) / 3 + n2 * (T(4) / 5 + n2 * (T(6) / 7 + n2 * (T(8) / 9 + n2 * T(10) / 11)));
  } else {
    c2 = (n / (1 - n * n) - std::atanh(n)) / (n * n * n);
  }
}

void check_same(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const char* what) {
  if (a != b)
    throw std::invalid_argument(std::string(what) + ": shape mismatch " + shape_str(a) + " vs " +
                                shape_str(b));
}

// Applies y = s(|x|)·x row by row.
template <class T, class ScaleFn>
Tensor<T> radial_forward(const Tensor<T>& x, ScaleFn scale) {
  Tensor<T> y(x.shape);
  const int64_t d = x.dim(-1), rows = x.rows();
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x.ptr() + r * d;
    T* yr = y.ptr() + r * d;
    T s = scale(norm_row(xr, d));
    for (int64_t i = 0; i < d; ++i) yr[i] = s * xr[i];
  }
  return y;
}

// gin = s·g + c2·(x·g)·x row by row; scales(n, s, c2).
template <class T, class ScalesFn>
Tensor<T> radial_backward(const Tensor<T>& x, const Tensor<T>& g, ScalesFn scales) {
  check_same(x.shape, g.shape, "radial map backward");
  Tensor<T> gin(x.shape);
  const int64_t d = x.dim(-1), rows = x.rows();
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x.ptr() + r * d;
    const T* gr = g.ptr() + r * d;
    T* o = gin.ptr() + r * d;
    T s, c2;
    scales(norm_row(xr, d), s, c2);
    T xg = c2 * dot_row(xr, gr, d);
    for (int64_t i = 0; i < d; ++i) o[i] = s * gr[i] + xg * xr[i];
  }
  return gin;
}

}  // namespace

template <class T>
Tensor<T> expmap_forward(const Tensor<T>& x) {
  return radial_forward(x, [](T n) { return n == 0 ? T(1) : std::tanh(n) / n; });
}
template <class T>
Tensor<T> expmap_backward(const Tensor<T>& x, const Tensor<T>& gout) {
  return radial_backward(x, gout, [](T n, T& s, T& c2) { expmap_scales(n, s, c2); });
}

template <class T>
Tensor<T> project_forward(const Tensor<T>& y) {
  const T m = T(kProjectMaxNorm);
  return radial_forward(y, [m](T n) { return n >= 1 ? m / n : T(1); });
}
template <class T>
Tensor<T> project_backward(const Tensor<T>& y, const Tensor<T>& gout) {
  const T m = T(kProjectMaxNorm);
  // Fired: s = m/n, s' = -m/n², so c2 = -m/n³. Not fired: identity.
  return radial_backward(y, gout, [m](T n, T& s, T& c2) {
    if (n >= 1) {
      s = m / n;
      c2 = -m / (n * n * n);
    } else {
      s = 1;
      c2 = 0;
    }
  });
}

template <class T>
Tensor<T> expmap_with_projection_forward(const Tensor<T>& x) {
  return project_forward(expmap_forward(x));
}
template <class T>
Tensor<T> expmap_with_projection_backward(const Tensor<T>& x, const Tensor<T>& gout) {
  return expmap_backward(x, project_backward(expmap_forward(x), gout));
}

template <class T>
Tensor<T> logmap_forward(const Tensor<T>& y) {
  return radial_forward(y, [](T n) { return n == 0 ? T(1) : std::atanh(n) / n; });
}
template <class T>
Tensor<T> logmap_backward(const Tensor<T>& y, const Tensor<T>& gout) {
  return radial_backward(y, gout, [](T n, T& s, T& c2) { logmap_scales(n, s, c2); });
}

// Evaluated in the released code's order: |u−v|, |u|, |v| as norms, then squared, so that
// float64 results agree with PyTorch to the last few ulps even near the ball boundary.
template <class T>
T poincare_distance_row(const T* u, const T* v, int64_t d, double factor) {
  T diff2 = 0;
  for (int64_t i = 0; i < d; ++i) diff2 += (u[i] - v[i]) * (u[i] - v[i]);
  T nd = std::sqrt(diff2), nu = norm_row(u, d), nv = norm_row(v, d);
  T denom = (1 - nu * nu) * (1 - nv * nv);
  return std::acosh(1 + T(factor) * (nd * nd) / denom);
}

template <class T>
Tensor<T> poincare_distance_forward(const Tensor<T>& u, const Tensor<T>& v, double factor) {
  check_same(u.shape, v.shape, "poincare_distance_forward");
  std::vector<int64_t> out_shape(u.shape.begin(), u.shape.end() - 1);
  Tensor<T> out(out_shape);
  const int64_t d = u.dim(-1), rows = u.rows();
  for (int64_t r = 0; r < rows; ++r)
    out[r] = poincare_distance_row(u.ptr() + r * d, v.ptr() + r * d, d, factor);
  return out;
}

// z = 1 + f·A/(Bu·Bv), A = |u−v|², Bu = 1−|u|², Bv = 1−|v|², dist = acosh(z).
// ∂z/∂u = 2f/(Bu·Bv) · ((u − v) + A·u/Bu), ∂z/∂v = 2f/(Bu·Bv) · ((v − u) + A·v/Bv),
// ∂dist/∂z = 1/sqrt((z − 1)(z + 1)).
template <class T>
DistanceGrads<T> poincare_distance_backward(const Tensor<T>& u, const Tensor<T>& v,
                                            const Tensor<T>& gout, double factor) {
  check_same(u.shape, v.shape, "poincare_distance_backward");
  DistanceGrads<T> g{Tensor<T>(u.shape), Tensor<T>(v.shape)};
  const int64_t d = u.dim(-1), rows = u.rows();
  if (gout.numel() != rows) throw std::invalid_argument("poincare_distance_backward: gout size");
  for (int64_t r = 0; r < rows; ++r) {
    const T* ur = u.ptr() + r * d;
    const T* vr = v.ptr() + r * d;
    T A = 0;
    for (int64_t i = 0; i < d; ++i) A += (ur[i] - vr[i]) * (ur[i] - vr[i]);
    if (A == 0) continue;  // not differentiable at u = v: gradient defined as 0
    T Bu = 1 - dot_row(ur, ur, d), Bv = 1 - dot_row(vr, vr, d);
    T zm1 = T(factor) * A / (Bu * Bv);
    T dz = gout[r] / std::sqrt(zm1 * (zm1 + 2));
    T k = dz * 2 * T(factor) / (Bu * Bv);
    T* gu = g.gu.ptr() + r * d;
    T* gv = g.gv.ptr() + r * d;
    for (int64_t i = 0; i < d; ++i) {
      gu[i] = k * ((ur[i] - vr[i]) + A * ur[i] / Bu);
      gv[i] = k * ((vr[i] - ur[i]) + A * vr[i] / Bv);
    }
  }
  return g;
}

template <class T>
Tensor<T> poincare_distance_pairwise_forward(const Tensor<T>& a, const Tensor<T>& b,
                                             double factor) {
  if (a.ndim() != 3 || b.ndim() != 3 || a.dim(0) != b.dim(0) || a.dim(2) != b.dim(2))
    throw std::invalid_argument(
        "poincare_distance_pairwise_forward: want [B,n,d] and [B,m,d], got " + shape_str(a.shape) +
        " and " + shape_str(b.shape));
  const int64_t B = a.dim(0), n = a.dim(1), m = b.dim(1), d = a.dim(2);
  Tensor<T> out({B, n, m});
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j)
        out[(bi * n + i) * m + j] = poincare_distance_row(a.ptr() + (bi * n + i) * d,
                                                          b.ptr() + (bi * m + j) * d, d, factor);
  return out;
}

#define HACM_INSTANTIATE(T)                                                                 \
  template Tensor<T> expmap_forward(const Tensor<T>&);                                      \
  template Tensor<T> expmap_backward(const Tensor<T>&, const Tensor<T>&);                   \
  template Tensor<T> project_forward(const Tensor<T>&);                                     \
  template Tensor<T> project_backward(const Tensor<T>&, const Tensor<T>&);                  \
  template Tensor<T> expmap_with_projection_forward(const Tensor<T>&);                      \
  template Tensor<T> expmap_with_projection_backward(const Tensor<T>&, const Tensor<T>&);   \
  template Tensor<T> logmap_forward(const Tensor<T>&);                                      \
  template Tensor<T> logmap_backward(const Tensor<T>&, const Tensor<T>&);                   \
  template T poincare_distance_row(const T*, const T*, int64_t, double);                    \
  template Tensor<T> poincare_distance_forward(const Tensor<T>&, const Tensor<T>&, double); \
  template DistanceGrads<T> poincare_distance_backward(const Tensor<T>&, const Tensor<T>&,  \
                                                       const Tensor<T>&, double);           \
  template Tensor<T> poincare_distance_pairwise_forward(const Tensor<T>&, const Tensor<T>&, double);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
