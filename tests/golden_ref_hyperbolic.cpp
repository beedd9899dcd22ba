// Reference (Eigen) Poincaré maps against the authors' float64 tensors (hacm_hyperbolic.npz).
#include <cmath>

#include "core/npz.h"
#include "reference/hyperbolic.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

// Per-row normwise atol: tol·max|ref row|; fragile rows (projection coin flip) get tol_fragile.
std::vector<double> per_row_atol(const std::vector<double>& ref,
                                 const std::vector<int64_t>& fragile, int64_t d, double tol,
                                 double tol_fragile) {
  std::vector<double> atol(ref.size());
  for (size_t i = 0; i < fragile.size(); ++i) {
    double m = 0;
    for (int64_t j = 0; j < d; ++j) m = std::max(m, std::fabs(ref[i * d + j]));
    for (int64_t j = 0; j < d; ++j) atol[i * d + j] = (fragile[i] ? tol_fragile : tol) * m;
  }
  return atol;
}

template <class T>
void check_maps(const std::string& s, double tol, double tol_fragile, double fragile_norm) {
  NpzReader r(golden("hacm_hyperbolic.npz"));
  Tensor<T> x = ref::from_ndarray<T>(r.get("x" + s));
  std::vector<int64_t> fragile = r.get("fragile" + s).to_i64();
  std::vector<double> in_norm = r.get("in_norm" + s).to_f64();
  // float: tanh(|x|) rounds to 1 beyond ~8.7, so projection may fire where float64's does not.
  for (size_t i = 0; i < fragile.size(); ++i) fragile[i] = fragile[i] || in_norm[i] > fragile_norm;
  const int64_t d = x.dim(-1);
  auto cmp = [&](const std::string& key, const Tensor<T>& got) {
    std::vector<double> ref = r.get(key).to_f64();
    EXPECT_CLOSE_EACH(key, ref::to_f64(got), ref, per_row_atol(ref, fragile, d, tol, tol_fragile),
                      0.0, got.shape);
  };
  cmp("expmap" + s, ref::expmap_forward(x));
  cmp("project" + s, ref::project_forward(x));
  cmp("ewp" + s, ref::expmap_with_projection_forward(x));
}

// dist / logmap: README §5 conditioning rule |a-b| <= rel·|b| + k·(1/(1-|u|²) + 1/(1-|v|²)).
void check_dist_logmap(const std::string& s, double rel, double k) {
  NpzReader r(golden("hacm_hyperbolic.npz"));
  Tensor<double> ewp = ref::from_ndarray<double>(r.get("ewp" + s));
  std::vector<int64_t> fragile = r.get("fragile" + s).to_i64();
  std::vector<double> omn = r.get("one_minus_norm2_" + s).to_f64();
  const int64_t K = ewp.dim(0), d = ewp.dim(1);
  Tensor<double> e3 = ewp.reshaped({1, K, d});
  std::vector<double> got = ref::to_f64(ref::poincare_distance_pairwise_forward(e3, e3, 4.0));
  std::vector<double> refd = r.get("dist" + s).to_f64();
  std::vector<double> g2, r2, a2;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      if (fragile[i] || fragile[j]) continue;
      g2.push_back(got[i * K + j]);
      r2.push_back(refd[i * K + j]);
      a2.push_back(k * (1 / omn[i] + 1 / omn[j]));
    }
  EXPECT_CLOSE_EACH("dist" + s + " (non-fragile pairs)", g2, r2, a2, rel);

  // Same-shape (row-wise) API must agree exactly with the pairwise one.
  Tensor<double> u({K, d}), v({K, d});
  for (int64_t i = 0; i < K; ++i)
    for (int64_t c = 0; c < d; ++c)
      u[i * d + c] = ewp[i * d + c], v[i * d + c] = ewp[((i + 1) % K) * d + c];
  Tensor<double> rowwise = ref::poincare_distance_forward(u, v, 4.0);
  for (int64_t i = 0; i < K; ++i) EXPECT_EQ(rowwise[i], got[i * K + (i + 1) % K]) << "row " << i;

  std::vector<double> lg = ref::to_f64(ref::logmap_forward(ewp)),
                      lr = r.get("logmap_of_ewp" + s).to_f64();
  std::vector<double> lg2, lr2, la2;
  for (int64_t i = 0; i < K; ++i) {
    if (fragile[i]) continue;
    for (int64_t j = 0; j < d; ++j) {
      lg2.push_back(lg[i * d + j]);
      lr2.push_back(lr[i * d + j]);
      la2.push_back(k / omn[i]);
    }
  }
  EXPECT_CLOSE_EACH("logmap_of_ewp" + s + " (non-fragile rows)", lg2, lr2, la2, rel);
}

}  // namespace

// float64: README §5 bound 1e-13 on non-fragile rows; fragile rows differ by the 1e-5 projection.
TEST(ReferenceHyperbolic, DoubleMapsMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) check_maps<double>(s, 1e-13, 2e-5, 1e300);
}

// float64: README §5 conditioning rule for dist and logmap (1e-10 rel + 1e-14 per 1/(1-|u|²)).
TEST(ReferenceHyperbolic, DoubleDistanceAndLogmapMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) check_dist_logmap(s, 1e-10, 1e-14);
}

// The projection decision (|expmap(x)| >= 1) matches the golden flags on non-fragile rows.
TEST(ReferenceHyperbolic, ProjectionFiresWhereGoldenDoes) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  NpzReader r(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) {
    Tensor<double> e = ref::expmap_forward(ref::from_ndarray<double>(r.get("x" + s)));
    std::vector<int64_t> fired = r.get("proj_fired" + s).to_i64(),
                         fragile = r.get("fragile" + s).to_i64();
    const int64_t d = e.dim(-1);
    for (int64_t i = 0; i < e.dim(0); ++i) {
      if (fragile[i]) continue;
      double n2 = 0;
      for (int64_t c = 0; c < d; ++c) n2 += e[i * d + c] * e[i * d + c];
      EXPECT_EQ(int64_t(std::sqrt(n2) >= 1), fired[i]) << s << " row " << i;
    }
  }
}

// float32: normwise 1e-6 per row (float32 tanh/sqrt; README §8 measured 1.1e-7); rows with
// |x| > 8.5 get 2e-5 (float32 tanh saturates to 1 and the projection fires).
TEST(ReferenceHyperbolic, FloatMapsMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) check_maps<float>(s, 1e-6, 2e-5, 8.5);
}
