// Accelerated (LibTorch) Poincaré maps against the authors' float64 tensors (hacm_hyperbolic.npz).
#include <ATen/ATen.h>

#include "accelerated/hyperbolic.h"
#include "tests/accel_util.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;

namespace {

struct Case {
  std::string suffix;  // "256" or "3"
};

void check_maps(const std::string& suffix, at::Device dev, c10::ScalarType dtype, double tol_rows,
                double tol_fragile) {
  const std::string path = golden("hacm_hyperbolic.npz");
  NpzReader r(path);
  at::Tensor x = golden_tensor(r, "x" + suffix, dtype, dev);
  std::vector<int64_t> fragile = r.get("fragile" + suffix).to_i64();
  std::vector<double> in_norm = r.get("in_norm" + suffix).to_f64();
  const int64_t K = x.size(0), d = x.size(1);
  // In float32, tanh(|x|) rounds to exactly 1 for |x| >~ 9, so projection fires where float64's
  // does not: those rows get the projection tolerance too.
  if (dtype == at::kFloat)
    for (int64_t i = 0; i < K; ++i) fragile[i] = fragile[i] || in_norm[i] > 8.5;
  auto per_row_atol = [&](const std::string& ref_key, double tol) {
    // Normwise per row: |a-b| <= tol * max|ref row|, fragile rows get the projection tolerance.
    std::vector<double> ref = r.get(ref_key).to_f64(), atol(ref.size());
    for (int64_t i = 0; i < K; ++i) {
      double m = 0;
      for (int64_t j = 0; j < d; ++j) m = std::max(m, std::fabs(ref[i * d + j]));
      for (int64_t j = 0; j < d; ++j)
        atol[i * d + j] = (fragile[i] ? tol_fragile : tol) * std::max(m, 1e-300);
    }
    return atol;
  };
  EXPECT_CLOSE_EACH("expmap" + suffix, to_vec(accel::expmap_forward(x)),
                    r.get("expmap" + suffix).to_f64(), per_row_atol("expmap" + suffix, tol_rows),
                    0.0, shape_of(x));
  EXPECT_CLOSE_EACH("project" + suffix, to_vec(accel::project_forward(x)),
                    r.get("project" + suffix).to_f64(), per_row_atol("project" + suffix, tol_rows),
                    0.0, shape_of(x));
  EXPECT_CLOSE_EACH("ewp" + suffix, to_vec(accel::expmap_with_projection_forward(x)),
                    r.get("ewp" + suffix).to_f64(), per_row_atol("ewp" + suffix, tol_rows), 0.0,
                    shape_of(x));
}

// Distances and logmap: the README's conditioning-aware rule
// |a-b| <= rel*|b| + abs_k*(1/(1-|u|^2) + 1/(1-|v|^2)), fragile rows excluded.
void check_dist_logmap(const std::string& suffix, at::Device dev, c10::ScalarType dtype, double rel,
                       double abs_k) {
  NpzReader r(golden("hacm_hyperbolic.npz"));
  at::Tensor ewp = golden_tensor(r, "ewp" + suffix, dtype, dev);
  std::vector<int64_t> fragile = r.get("fragile" + suffix).to_i64();
  std::vector<double> omn = r.get("one_minus_norm2_" + suffix).to_f64();
  const int64_t K = ewp.size(0), d = ewp.size(1);
  at::Tensor dist = accel::poincare_distance_forward(ewp.unsqueeze(1), ewp.unsqueeze(0), 4.0);
  std::vector<double> got = to_vec(dist), ref = r.get("dist" + suffix).to_f64();
  std::vector<double> g2, r2, a2;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      if (fragile[i] || fragile[j]) continue;
      g2.push_back(got[i * K + j]);
      r2.push_back(ref[i * K + j]);
      a2.push_back(abs_k * (1 / omn[i] + 1 / omn[j]));
    }
  EXPECT_CLOSE_EACH("dist" + suffix + " (non-fragile pairs)", g2, r2, a2, rel);
  std::vector<double> lg = to_vec(accel::logmap_forward(ewp)),
                      lr = r.get("logmap_of_ewp" + suffix).to_f64();
  std::vector<double> lg2, lr2, la2;
  for (int64_t i = 0; i < K; ++i) {
    if (fragile[i]) continue;
    for (int64_t j = 0; j < d; ++j) {
      lg2.push_back(lg[i * d + j]);
      lr2.push_back(lr[i * d + j]);
      la2.push_back(abs_k * (1 / omn[i]));
    }
  }
  EXPECT_CLOSE_EACH("logmap_of_ewp" + suffix + " (non-fragile rows)", lg2, lr2, la2, rel);
}

}  // namespace

// float64 on CPU: README §5 bounds (1e-13 rows; fragile rows differ by the 1e-5 projection).
TEST(AcceleratedHyperbolic, CpuDoubleMapsMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) check_maps(s, at::kCPU, at::kDouble, 1e-13, 2e-5);
}

// float64 on CPU: README §5 conditioning rule for dist and logmap.
TEST(AcceleratedHyperbolic, CpuDoubleDistanceAndLogmapMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) check_dist_logmap(s, at::kCPU, at::kDouble, 1e-10, 1e-14);
}

// float64 on CUDA: same bounds (CUDA double tanh/acosh are within a few ulp).
TEST(AcceleratedHyperbolic, CudaDoubleMatchesGolden) {
  REQUIRE_CUDA();
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) {
    check_maps(s, at::kCUDA, at::kDouble, 1e-13, 2e-5);
    check_dist_logmap(s, at::kCUDA, at::kDouble, 1e-10, 1e-14);
  }
}

// float32 on CPU: rows are normwise within 1e-6 (float32 tanh/sqrt: README §8 measured 1.1e-07),
// fragile rows up to 1e-5 (float32 tanh saturates to 1 and projection fires).
TEST(AcceleratedHyperbolic, CpuFloatMapsMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_hyperbolic.npz"));
  for (std::string s : {"256", "3"}) check_maps(s, at::kCPU, at::kFloat, 1e-6, 2e-5);
}
