// Differential: Poincaré maps, reference (Eigen, double, hand-written backward) against
// accelerated (LibTorch float32 on CPU, and on CUDA when present; autograd backward).
// Inputs: rows of seeded normals scaled to norms 0..8 (below float32 tanh saturation, where
// float32 and float64 projection decisions agree), plus one zero row.
#include <ATen/ATen.h>

#include "accelerated/hyperbolic.h"
#include "reference/hyperbolic.h"
#include "tests/compare.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;

namespace {

ref::Tensor<double> ball_inputs(int64_t rows, int64_t d, uint64_t seed, double max_norm) {
  ref::Tensor<double> x = ref_randn({rows, d}, seed);
  Rng rng(seed + 1);
  for (int64_t r = 0; r < rows; ++r) {
    double n = 0;
    for (int64_t j = 0; j < d; ++j) n += x[r * d + j] * x[r * d + j];
    double target = r == 0 ? 0.0 : rng.uniform(0.0, max_norm);
    for (int64_t j = 0; j < d; ++j) x[r * d + j] *= target / std::sqrt(n);
  }
  return x;
}

}  // namespace

// float32 vs double: forward 2e-6 relative to each value's scale (a few float32 ulps through
// tanh/sqrt), backward 1e-5 (the gradient formula amplifies rounding by ~|x|).
TEST(DifferentialHyperbolic, ExpmapWithProjectionForwardBackward) {
  for (at::Device dev : test_devices()) {
    std::printf("device %s\n", dev_name(dev));
    ref::Tensor<double> x = ball_inputs(64, 256, 101, 8.0);
    ref::Tensor<double> gout = ref_randn({64, 256}, 202);
    ref::Tensor<double> y_ref = ref::expmap_with_projection_forward(x);
    ref::Tensor<double> g_ref = ref::expmap_with_projection_backward(x, gout);
    at::Tensor xa = to_at(x, at::kFloat, dev).requires_grad_(true);
    at::Tensor ya = accel::expmap_with_projection_forward(xa);
    ya.backward(to_at(gout, at::kFloat, dev));
    EXPECT_CLOSE_NORMWISE("ewp forward", to_vec(ya), ref_vec(y_ref), 2e-6);
    EXPECT_CLOSE_NORMWISE("ewp backward", to_vec(xa.grad()), ref_vec(g_ref), 1e-5);
  }
}

TEST(DifferentialHyperbolic, LogmapForwardBackward) {
  for (at::Device dev : test_devices()) {
    ref::Tensor<double> x =
        ball_inputs(32, 64, 303, 3.0);  // |ewp| <= tanh(3): away from the boundary
    ref::Tensor<double> y = ref::expmap_with_projection_forward(x);
    ref::Tensor<double> gout = ref_randn({32, 64}, 404);
    ref::Tensor<double> l_ref = ref::logmap_forward(y);
    ref::Tensor<double> g_ref = ref::logmap_backward(y, gout);
    at::Tensor ya = to_at(y, at::kFloat, dev).requires_grad_(true);
    at::Tensor la = accel::logmap_forward(ya);
    la.backward(to_at(gout, at::kFloat, dev));
    // atanh near |y| -> 1 amplifies float32 rounding of |y| by 1/(1-|y|^2) <= ~100 here.
    EXPECT_CLOSE_NORMWISE(std::string("logmap forward ") + dev_name(dev), to_vec(la),
                          ref_vec(l_ref), 1e-4);
    EXPECT_CLOSE_NORMWISE(std::string("logmap backward ") + dev_name(dev), to_vec(ya.grad()),
                          ref_vec(g_ref), 1e-3);
  }
}

// The distance of well-separated points in the interior (|u| <= tanh(2) = 0.96): float32 keeps
// 1-|u|^2 to ~1e-6 relative there, so 1e-4 normwise is a bound with margin.
TEST(DifferentialHyperbolic, DistanceForwardBackward) {
  for (double factor : {4.0, 2.0}) {
    for (at::Device dev : test_devices()) {
      ref::Tensor<double> u = ref::expmap_with_projection_forward(ball_inputs(48, 16, 505, 2.0));
      ref::Tensor<double> v = ref::expmap_with_projection_forward(ball_inputs(48, 16, 606, 2.0));
      ref::Tensor<double> gout = ref_randn({48}, 707);
      ref::Tensor<double> d_ref = ref::poincare_distance_forward(u, v, factor);
      ref::DistanceGrads<double> g_ref = ref::poincare_distance_backward(u, v, gout, factor);
      at::Tensor ua = to_at(u, at::kFloat, dev).requires_grad_(true);
      at::Tensor va = to_at(v, at::kFloat, dev).requires_grad_(true);
      at::Tensor da = accel::poincare_distance_forward(ua, va, factor);
      da.backward(to_at(gout, at::kFloat, dev));
      std::string tag = " factor " + std::to_string(int(factor)) + " " + dev_name(dev);
      EXPECT_CLOSE_NORMWISE("distance" + tag, to_vec(da), ref_vec(d_ref), 1e-4);
      EXPECT_CLOSE_NORMWISE("distance grad u" + tag, to_vec(ua.grad()), ref_vec(g_ref.gu), 1e-3);
      EXPECT_CLOSE_NORMWISE("distance grad v" + tag, to_vec(va.grad()), ref_vec(g_ref.gv), 1e-3);
    }
  }
}
