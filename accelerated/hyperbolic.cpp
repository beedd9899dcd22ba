#include "accelerated/hyperbolic.h"

#include <ATen/ATen.h>

#include "accelerated/fused_hyperbolic.h"

namespace hacm::accel {

// The norm is clamped away from 0 before dividing so autograd never sees 0/0; the where() then
// selects the exact released value (scale 1 at the origin).
// Smallest norm we divide by; far below any norm that occurs, so results are unchanged.
static double tiny(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? 1e-300 : 1e-30;
}

static at::Tensor safe_norm(const at::Tensor& x, at::Tensor* is_zero) {
  at::Tensor n = at::linalg_vector_norm(x, 2, {-1}, /*keepdim=*/true);
  *is_zero = n.eq(0);
  return n;
}

at::Tensor expmap_forward(const at::Tensor& x) {
  at::Tensor zero;
  at::Tensor n = safe_norm(x, &zero);
  at::Tensor nc = n.clamp_min(tiny(x));
  at::Tensor scale = at::where(zero, at::ones_like(n), at::tanh(nc) / nc);
  return x * scale;
}

at::Tensor project_forward(const at::Tensor& y) {
  at::Tensor zero;
  at::Tensor n = safe_norm(y, &zero);
  at::Tensor nc = n.clamp_min(tiny(y));
  return at::where(n.ge(1.0), y * ((1.0 - 1e-5) / nc), y);
}

at::Tensor expmap_with_projection_forward(const at::Tensor& x) {
  // CUDA float32: one kernel each way (fused_hyperbolic.h) for ATen's ~7 / ~10 passes.
  if (fused_expmap_projection_applies(x)) return fused_expmap_projection(x);
  return project_forward(expmap_forward(x));
}

at::Tensor logmap_forward(const at::Tensor& y) {
  at::Tensor zero;
  at::Tensor n = safe_norm(y, &zero);
  at::Tensor nc = n.clamp_min(tiny(y));
  at::Tensor scale = at::where(zero, at::ones_like(n), at::atanh(nc) / nc);
  return y * scale;
}

at::Tensor poincare_distance_forward(const at::Tensor& u, const at::Tensor& v, double factor) {
  at::Tensor diff2 = (u - v).pow(2).sum(-1);
  at::Tensor nu = 1.0 - u.pow(2).sum(-1);
  at::Tensor nv = 1.0 - v.pow(2).sum(-1);
  at::Tensor z = factor * diff2 / (nu * nv);
  // arccosh is not differentiable at 1 (u = v): the double where() gives distance 0 and
  // gradient 0 there (as the reference defines it) instead of 0 * inf = NaN.
  at::Tensor pos = z.gt(0);
  at::Tensor z_safe = at::where(pos, z, at::ones_like(z));
  return at::where(pos, at::acosh(1.0 + z_safe), at::zeros_like(z));
}

}  // namespace hacm::accel
