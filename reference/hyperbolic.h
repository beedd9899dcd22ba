// Poincaré-ball maps at the origin (curvature c = 1), as used by HA-CM (spec §4.1), over the LAST
// dimension of a tensor, with hand-written gradients.
//
//   expmap(x)  = tanh(|x|)/|x| · x            (scale 1 where |x| = 0)
//   project(y) = y · (1 − 1e-5)/|y|  if |y| ≥ 1, else y
//   expmap_with_projection = project ∘ expmap (what the model applies)
//   logmap(y)  = atanh(|y|)/|y| · y           (scale 1 where |y| = 0; defined, unused by the model)
//   distance(u, v) = arccosh(1 + factor·|u − v|² / ((1 − |u|²)(1 − |v|²)))
//     factor 4 = the released code (it squares 2|u − v|), factor 2 = the standard Poincaré
//     distance.
//
// Gradients are the analytic derivatives of these maps. Where the authors' autograd produces NaN
// (|x| = 0 for expmap/project, golden README §6) we return the limit instead: the identity map's
// gradient. The distance is not differentiable at u = v; its gradient there is defined as 0.
#pragma once
#include "reference/tensor.h"

namespace hacm::ref {

inline constexpr double kProjectMaxNorm = 1.0 - 1e-5;   // released project() bound
inline constexpr double kReleasedDistanceFactor = 4.0;  // (2|u − v|)² in the released code
inline constexpr double kStandardDistanceFactor = 2.0;  // textbook Poincaré distance

// x: [..., d] -> [..., d]
template <class T>
Tensor<T> expmap_forward(const Tensor<T>& x);
// x: [..., d] (forward input), gout: [..., d] -> gin [..., d]
template <class T>
Tensor<T> expmap_backward(const Tensor<T>& x, const Tensor<T>& gout);

// y: [..., d] -> [..., d]
template <class T>
Tensor<T> project_forward(const Tensor<T>& y);
// y: [..., d] (forward input), gout: [..., d] -> gin [..., d]
template <class T>
Tensor<T> project_backward(const Tensor<T>& y, const Tensor<T>& gout);

// x: [..., d] -> [..., d]
template <class T>
Tensor<T> expmap_with_projection_forward(const Tensor<T>& x);
// x: [..., d] (forward input), gout: [..., d] -> gin [..., d]
template <class T>
Tensor<T> expmap_with_projection_backward(const Tensor<T>& x, const Tensor<T>& gout);

// y: [..., d] with |y| < 1 -> [..., d]
template <class T>
Tensor<T> logmap_forward(const Tensor<T>& y);
// y: [..., d] (forward input), gout: [..., d] -> gin [..., d]
template <class T>
Tensor<T> logmap_backward(const Tensor<T>& y, const Tensor<T>& gout);

// u, v: [..., d] (same shape, inside the ball) -> [...]
template <class T>
Tensor<T> poincare_distance_forward(const Tensor<T>& u, const Tensor<T>& v,
                                    double factor = kReleasedDistanceFactor);
template <class T>
struct DistanceGrads {
  Tensor<T> gu, gv;  // [..., d] each
};
// u, v: [..., d], gout: [...] -> (gu, gv) [..., d]
template <class T>
DistanceGrads<T> poincare_distance_backward(const Tensor<T>& u, const Tensor<T>& v,
                                            const Tensor<T>& gout,
                                            double factor = kReleasedDistanceFactor);

// All pairs within a batch: a: [B, n, d], b: [B, m, d] -> [B, n, m], out[b,i,j] = d(a[b,i],
// b[b,j]).
template <class T>
Tensor<T> poincare_distance_pairwise_forward(const Tensor<T>& a, const Tensor<T>& b,
                                             double factor = kReleasedDistanceFactor);

// Single-pair kernel on raw rows (used by the spatial criterion): u, v: [d].
template <class T>
T poincare_distance_row(const T* u, const T* v, int64_t d, double factor);

}  // namespace hacm::ref
