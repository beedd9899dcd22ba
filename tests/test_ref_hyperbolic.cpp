// Reference Poincaré maps: spec test vectors and finite-difference checks of every backward.
#include <cmath>
#include <functional>

#include "reference/gradcheck.h"
#include "reference/hyperbolic.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::ref::Tensor;

namespace {

// Rows of very different norms: tiny (series branch), moderate, large (tanh saturating), zero.
Tensor<double> radial_inputs(int64_t d, Rng& rng, const std::vector<double>& norms) {
  Tensor<double> x({int64_t(norms.size()), d});
  for (size_t i = 0; i < norms.size(); ++i) {
    double n2 = 0;
    for (int64_t c = 0; c < d; ++c) {
      x[i * d + c] = rng.normal();
      n2 += x[i * d + c] * x[i * d + c];
    }
    for (int64_t c = 0; c < d; ++c) x[i * d + c] *= norms[i] / std::sqrt(n2);
  }
  return x;
}

using Map = std::function<Tensor<double>(const Tensor<double>&)>;
using Back = std::function<Tensor<double>(const Tensor<double>&, const Tensor<double>&)>;

// All entries of the gradient of L = <g, f(x)> by central differences vs backward(x, g).
void check_radial(const char* name, Map f, Back b, Tensor<double> x, double h, double atol,
                  double rtol) {
  Rng rng(7);
  Tensor<double> g = ref::randn(x.shape, rng);
  auto loss = [&] { return ref::dot(f(x).data, g.data); };
  std::vector<double> num = ref::fd_gradient(loss, x, h);
  EXPECT_CLOSE(name, b(x, g).data, num, atol, rtol, x.shape);
}

}  // namespace

// Spec §4.1 test vectors (c = 1) and the factor-4 vs standard distance.
TEST(ReferenceHyperbolic, SpecTestVectors) {
  Tensor<double> x({3, 2});
  x.data = {3, 4, 0.1, -0.2, 0, 0};
  std::vector<double> want = {0.59994552256, 0.79992736341, 0.09836600546, -0.19673201092, 0, 0};
  // The spec prints 11 significant digits.
  EXPECT_CLOSE("ewp spec vectors", ref::expmap_with_projection_forward(x).data, want, 1e-11, 0.0);
  Tensor<double> u({1, 2}), v({1, 2});
  u.data = {0.1, 0.2};
  v.data = {-0.3, 0.4};
  std::vector<double> d4 = ref::poincare_distance_forward(u, v, 4.0).data;
  std::vector<double> d2 = ref::poincare_distance_forward(u, v, 2.0).data;
  EXPECT_CLOSE("distance factor 4", d4, std::vector<double>{1.38512399455}, 1e-11, 0.0);
  EXPECT_CLOSE("distance factor 2", d2, std::vector<double>{1.01543425653}, 1e-11, 0.0);
}

// Zero rows: the forward is the identity and the backward its gradient (the authors' autograd
// gives NaN there; we return the limit).
TEST(ReferenceHyperbolic, ZeroRowsAreFinite) {
  Tensor<double> x({1, 4}), g({1, 4});
  g.data = {1, -2, 3, -4};
  EXPECT_CLOSE("ewp(0)", ref::expmap_with_projection_forward(x).data, x.data, 0.0, 0.0);
  EXPECT_CLOSE("ewp_backward(0)", ref::expmap_with_projection_backward(x, g).data, g.data, 0.0,
               0.0);
  EXPECT_CLOSE("logmap_backward(0)", ref::logmap_backward(x, g).data, g.data, 0.0, 0.0);
}

// Central differences with h = 1e-6: truncation O(h²)·f''' ~ 1e-12, round-off ~ 1e-16·|L|/h ~
// 1e-10, so 1e-8 absolute + 1e-7 relative leaves two orders of margin while catching any wrong
// term.
TEST(ReferenceHyperbolic, ExpmapBackwardMatchesFiniteDifferences) {
  Rng rng(1);
  Tensor<double> x = radial_inputs(5, rng, {1e-4, 3e-3, 0.05, 0.7, 2.0, 6.0});
  check_radial("expmap grad", ref::expmap_forward<double>, ref::expmap_backward<double>, x, 1e-6,
               1e-8, 1e-7);
}

TEST(ReferenceHyperbolic, ProjectBackwardMatchesFiniteDifferences) {
  Rng rng(2);
  // Away from the |y| = 1 kink: fired rows (1.3, 4) and untouched rows (0.2, 0.9).
  Tensor<double> x = radial_inputs(5, rng, {0.2, 0.9, 1.3, 4.0});
  check_radial("project grad", ref::project_forward<double>, ref::project_backward<double>, x, 1e-6,
               1e-8, 1e-7);
}

TEST(ReferenceHyperbolic, ExpmapWithProjectionBackwardMatchesFiniteDifferences) {
  Rng rng(3);
  // Below |x| ~ 18 the float64 projection never fires; beyond, whether it fires is a last-ulp
  // coin flip that finite differences cannot see through (the fired branch is checked above).
  Tensor<double> x = radial_inputs(4, rng, {1e-3, 0.4, 3.0, 8.0});
  check_radial("ewp grad", ref::expmap_with_projection_forward<double>,
               ref::expmap_with_projection_backward<double>, x, 1e-6, 1e-8, 1e-7);
}

TEST(ReferenceHyperbolic, LogmapBackwardMatchesFiniteDifferences) {
  Rng rng(4);
  Tensor<double> x = radial_inputs(5, rng, {1e-4, 5e-3, 0.3, 0.8, 0.95});
  check_radial("logmap grad", ref::logmap_forward<double>, ref::logmap_backward<double>, x, 1e-7,
               1e-7, 1e-7);
}

// Distance: both arguments, factors 4 and 2, points well inside the ball (1-|u|² >= 0.1, so the
// third derivative stays O(100) and h = 1e-6 gives ~1e-10 truncation error).
TEST(ReferenceHyperbolic, DistanceBackwardMatchesFiniteDifferences) {
  for (double factor : {4.0, 2.0}) {
    Rng rng(5);
    Tensor<double> u = radial_inputs(6, rng, {0.1, 0.5, 0.9, 0.3});
    Tensor<double> v = radial_inputs(6, rng, {0.6, 0.2, 0.4, 0.85});
    Tensor<double> g = ref::randn({4}, rng);
    auto loss = [&] { return ref::dot(ref::poincare_distance_forward(u, v, factor).data, g.data); };
    auto grads = ref::poincare_distance_backward(u, v, g, factor);
    EXPECT_CLOSE("distance grad u", grads.gu.data, ref::fd_gradient(loss, u, 1e-6), 1e-8, 1e-7);
    EXPECT_CLOSE("distance grad v", grads.gv.data, ref::fd_gradient(loss, v, 1e-6), 1e-8, 1e-7);
  }
}

// float instantiation runs and agrees with double to float precision.
TEST(ReferenceHyperbolic, FloatAgreesWithDouble) {
  Rng rng(6);
  Tensor<double> x = radial_inputs(8, rng, {0.01, 0.5, 2.0, 5.0});
  Tensor<float> xf(x.shape);
  for (int64_t i = 0; i < x.numel(); ++i) xf[i] = float(x[i]);
  Tensor<double> g = ref::randn(x.shape, rng);
  Tensor<float> gf(g.shape);
  for (int64_t i = 0; i < g.numel(); ++i) gf[i] = float(g[i]);
  // float32 rounding of inputs and of tanh/sqrt: a few ulps of 1.
  EXPECT_CLOSE("ewp float", ref::expmap_with_projection_forward(xf).data,
               ref::expmap_with_projection_forward(x).data, 1e-6, 1e-5);
  EXPECT_CLOSE("ewp grad float", ref::expmap_with_projection_backward(xf, gf).data,
               ref::expmap_with_projection_backward(x, g).data, 1e-5, 1e-4);
}
