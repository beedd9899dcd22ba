// Poincaré-ball maps (curvature c = 1) on LibTorch tensors; twin of reference/hyperbolic.h.
// Maps act on the last dimension; backward comes from autograd. Semantics follow the released
// code (hacm-spec.md §4.1): expmap scale forced to 1 at the origin, projection to norm 1-1e-5
// when the image reaches the boundary, distance with a configurable factor (released: 4).
#pragma once
#include <ATen/core/Tensor.h>

namespace hacm::accel {

// x [..., d] -> tanh(|x|)/|x| * x  (scale 1 where |x| = 0)
at::Tensor expmap_forward(const at::Tensor& x);
// y [..., d] -> y * (1 - 1e-5)/|y| where |y| >= 1, else y
at::Tensor project_forward(const at::Tensor& y);
// x [..., d] -> project(expmap(x)): what the model applies to every embedded token. On CUDA in
// float32 one custom kernel each way (fused_hyperbolic.h), else expmap_forward then
// project_forward.
at::Tensor expmap_with_projection_forward(const at::Tensor& x);
// y [..., d] -> atanh(|y|)/|y| * y  (scale 1 where |y| = 0)
at::Tensor logmap_forward(const at::Tensor& y);
// u [..., d], v [..., d] (broadcastable) -> arccosh(1 + factor*|u-v|^2 / ((1-|u|^2)(1-|v|^2)))
// [...] factor 4 reproduces the released code, 2 is the standard Poincaré distance.
at::Tensor poincare_distance_forward(const at::Tensor& u, const at::Tensor& v, double factor = 4.0);

}  // namespace hacm::accel
