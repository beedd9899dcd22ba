// Differential: Poincaré maps, reference (Eigen, double, hand-written backward) against
// accelerated (LibTorch float32 on CPU, and on CUDA when present; autograd backward, or on CUDA
// the fused project(expmap(.)) kernel, kernels/hyperbolic.cu).
// Inputs: rows of seeded normals scaled to norms 0..8 (below float32 tanh saturation, where
// float32 and float64 projection decisions agree), plus one zero row.
#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "accelerated/custom_kernels.h"
#include "accelerated/fused_hyperbolic.h"
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

// The fused CUDA kernel (kernels/hyperbolic.cu) against the reference for every compiled width,
// with rows at the norms where the formulas switch: 0, inside the Taylor-series range (< 0.1)
// of the backward's scale derivative, around 1, and up to 8 (below float32 tanh saturation).
TEST(DifferentialHyperbolic, CudaFusedExpmapProjectionMatchesReference) {
  REQUIRE_CUDA();
  for (int64_t d : {int64_t(64), int64_t(128), int64_t(256), int64_t(512)}) {
    ref::Tensor<double> x = ball_inputs(4000, d, 505 + uint64_t(d), 8.0);
    const double special[] = {0.0, 1e-3, 0.05, 0.0999, 0.1001, 0.5, 1.0};
    for (int r = 0; r < 7; ++r) {  // rescale rows 1..7 to the special norms (row 0 stays 0)
      double n = 0;
      for (int64_t j = 0; j < d; ++j) n += x[(r + 1) * d + j] * x[(r + 1) * d + j];
      for (int64_t j = 0; j < d; ++j) x[(r + 1) * d + j] *= special[r] / std::sqrt(n);
    }
    round_through(x, at::kFloat);
    ref::Tensor<double> gout = ref_randn({4000, d}, 606);
    round_through(gout, at::kFloat);
    const ref::Tensor<double> y_ref = ref::expmap_with_projection_forward(x);
    const ref::Tensor<double> g_ref = ref::expmap_with_projection_backward(x, gout);
    at::Tensor xa = to_at(x, at::kFloat, at::Device(at::kCUDA)).requires_grad_(true);
    ASSERT_TRUE(accel::fused_expmap_projection_applies(xa));
    at::Tensor ya = accel::fused_expmap_projection(xa);
    ya.backward(to_at(gout, at::kFloat, at::Device(at::kCUDA)));
    const std::string tag = "d=" + std::to_string(d) + " ";
    // As the float32 ATen composition above: forward 2e-6, backward 1e-5 normwise.
    EXPECT_CLOSE_NORMWISE(tag + "forward", to_vec(ya), ref_vec(y_ref), 2e-6);
    EXPECT_CLOSE_NORMWISE(tag + "backward", to_vec(xa.grad()), ref_vec(g_ref), 1e-5);
    // The small-norm rows alone (the series branch): their own scale, same bound.
    const int64_t n_small = 8 * d;
    std::vector<double> got = to_vec(xa.grad());
    EXPECT_CLOSE_NORMWISE(
        tag + "backward, norms <= 1", std::vector<double>(got.begin(), got.begin() + n_small),
        std::vector<double>(g_ref.data.begin(), g_ref.data.begin() + n_small), 1e-5);
  }
}

// Beyond tanh's float32 saturation (norms 9..40) the projection fires in float32 where float64
// does not; the image and the gradient agree regardless to ~1e-5 (both maps leave a vector of
// norm ~1 - 1e-5 whose radial derivative vanishes). Fused kernel vs the ATen float32 composition
// and vs the reference. Also: where the fused path applies at all.
TEST(DifferentialHyperbolic, CudaFusedExpmapProjectionSaturation) {
  REQUIRE_CUDA();
  const at::Device dev(at::kCUDA);
  ref::Tensor<double> x = ball_inputs(512, 256, 707, 40.0);
  for (int64_t r = 1; r < 512; ++r) {  // norms 9..40
    double n = 0;
    for (int64_t j = 0; j < 256; ++j) n += x[r * 256 + j] * x[r * 256 + j];
    const double target = 9.0 + 31.0 * double(r) / 511.0;
    for (int64_t j = 0; j < 256; ++j) x[r * 256 + j] *= target / std::sqrt(n);
  }
  round_through(x, at::kFloat);
  ref::Tensor<double> gout = ref_randn({512, 256}, 808);
  at::Tensor xa = to_at(x, at::kFloat, dev).requires_grad_(true);
  at::Tensor ya = accel::expmap_with_projection_forward(xa);  // the fused path on CUDA
  ya.backward(to_at(gout, at::kFloat, dev));
  at::Tensor xb = to_at(x, at::kFloat, dev).requires_grad_(true);
  at::Tensor yb = accel::project_forward(accel::expmap_forward(xb));  // ATen ops
  yb.backward(to_at(gout, at::kFloat, dev));
  // 1e-5 of a norm-1 image: the projection's radius; gradients 1e-4 (their scale is ~1/|x|).
  EXPECT_CLOSE_NORMWISE("forward vs ATen", to_vec(ya), to_vec(yb), 2e-5);
  EXPECT_CLOSE_NORMWISE("backward vs ATen", to_vec(xa.grad()), to_vec(xb.grad()), 1e-4);
  EXPECT_CLOSE_NORMWISE("forward vs reference", to_vec(ya),
                        ref_vec(ref::expmap_with_projection_forward(x)), 2e-5);
  EXPECT_CLOSE_NORMWISE("backward vs reference", to_vec(xa.grad()),
                        ref_vec(ref::expmap_with_projection_backward(x, gout)), 1e-4);
  EXPECT_FALSE(accel::fused_expmap_projection_applies(xa.to(at::kDouble)));
  EXPECT_FALSE(accel::fused_expmap_projection_applies(xa.to(at::kBFloat16)));
  EXPECT_FALSE(accel::fused_expmap_projection_applies(at::zeros({4, 3}, xa.options())));
  accel::set_custom_kernels(false);
  EXPECT_FALSE(accel::fused_expmap_projection_applies(xa));
  accel::set_custom_kernels(true);
}

// On the CPU the fused path never applies (the ATen composition runs).
TEST(DifferentialHyperbolic, CpuNeverFused) {
  EXPECT_FALSE(accel::fused_expmap_projection_applies(at::zeros({4, 256})));
  EXPECT_THROW(accel::fused_expmap_projection(at::zeros({4, 256})), std::invalid_argument);
}
