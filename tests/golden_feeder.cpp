// Feeder vs the authors' tools.valid_crop_resize / random_rot / vel (golden/feeder.npz,
// README "feeder.npz"): data [3,300,25,2] float32 with 150 valid frames, window 72, the train
// draws (p, bias, angles) injected. `_f64` arrays are the authors' code switched to float64 and
// are compared with our double path; `_f32code` arrays are the unmodified float32 code path and
// are compared with our float path (the one training uses).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/feeder.h"
#include "core/npz.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

namespace hacm {
namespace {

const std::vector<int64_t> kOutShape = {3, 72, 25, 2};

struct Golden {
  std::map<std::string, NdArray> a;
  std::vector<float> data;  // [3,300,25,2]
  int64_t T = 0;
  explicit Golden(const std::string& path) : a(npz_load(path)) {
    data = a.at("data").to_f32();
    T = a.at("data").shape.at(1);
  }
  std::vector<double> f64(const std::string& k) const { return a.at(k).to_f64(); }
  int64_t i64(const std::string& k) const { return a.at(k).at_i64(0); }
  double f(const std::string& k) const { return a.at(k).at_f64(0); }
};

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Normwise check as the README recommends: max|a-b| <= tol * max|b| (atol scaled, rtol 0).
template <class T>
void expect_normwise(const std::string& name, const std::vector<T>& got,
                     const std::vector<double>& ref, double tol) {
  EXPECT_CLOSE(name, got, ref, tol * max_abs(ref), 0.0, kOutShape);
}

FeederDraws train_draws(const Golden& g, bool rotate) {
  FeederDraws d;
  d.p = g.f("p_train");
  d.bias = g.i64("bias_train");
  d.length = g.i64("cropped_length_train");
  d.rotate = rotate;
  std::vector<double> ang = g.f64("angles");  // float32 values, used as float64 by _f64 code
  for (int k = 0; k < 3; ++k) d.angles[k] = ang[size_t(k)];
  return d;
}

template <class Real>
std::vector<Real> run(const Golden& g, const FeederDraws& d, bool vel, FeederStage stop) {
  FeederConfig cfg;
  cfg.window = 72;
  cfg.vel = vel;
  std::vector<Real> out(3 * 72 * 25 * 2, Real(-7));  // poison: every element must be written
  feeder_apply(g.data.data(), ClipLayout::kCTVM, g.T, d, cfg, out.data(), stop);
  return out;
}

class GoldenFeeder : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::golden("feeder.npz");
    REQUIRE_FIXTURE(path_);
    g_ = std::make_unique<Golden>(path_);
  }
  std::string path_;
  std::unique_ptr<Golden> g_;
};

TEST_F(GoldenFeeder, ValidFrameCountAndDraws) {
  const Golden& g = *g_;
  const int64_t valid = valid_frame_count(g.data.data(), ClipLayout::kCTVM, g.T);
  EXPECT_EQ(valid, g.i64("valid_frame_num"));  // integers: exact
  // p = u*(1-0.5)+0.5 exactly as draw_train forms it from a uniform draw.
  EXPECT_EQ(g.f("u_train") * 0.5 + 0.5, g.f("p_train"));
  EXPECT_EQ(train_crop_length(valid, g.f("p_train"), 64), g.i64("cropped_length_train"));
  FeederConfig cfg;
  FeederDraws t = test_draws(valid, cfg);
  EXPECT_EQ(t.bias, g.i64("bias_test72"));
  EXPECT_EQ(t.length, g.i64("cropped_length_test72"));
  EXPECT_FALSE(t.rotate);
}

TEST_F(GoldenFeeder, RotationMatrix) {
  const FeederDraws d = train_draws(*g_, true);
  double R[9];
  rotation_matrix(d.angles, R);
  std::vector<double> got(R, R + 9);
  // Entries are products of 2-3 cos/sin values in [-1,1]: a few ulp of libm differences.
  EXPECT_CLOSE("rot_matrix", got, g_->f64("rot_matrix"), 1e-15, 0.0, {3, 3});
}

TEST_F(GoldenFeeder, TrainCrop) {
  const FeederDraws d = train_draws(*g_, false);
  // README §5: independent float64 implementations agree to ~1e-13; 1e-12 normwise.
  expect_normwise("crop_train72_f64", run<double>(*g_, d, false, FeederStage::kCrop),
                  g_->f64("crop_train72_f64"), 1e-12);
  // float32 path vs the authors' float32 code: same operation order, ulp-level differences.
  expect_normwise("crop_train72_f32code", run<float>(*g_, d, false, FeederStage::kCrop),
                  g_->f64("crop_train72_f32code"), 1e-6);
}

TEST_F(GoldenFeeder, TestCrop) {
  FeederConfig cfg;
  const FeederDraws d = test_draws(g_->i64("valid_frame_num"), cfg);
  // Same reasons as TrainCrop.
  expect_normwise("crop_test72_f64", run<double>(*g_, d, false, FeederStage::kFull),
                  g_->f64("crop_test72_f64"), 1e-12);
  expect_normwise("crop_test72_f32code", run<float>(*g_, d, false, FeederStage::kFull),
                  g_->f64("crop_test72_f32code"), 1e-6);
}

TEST_F(GoldenFeeder, TrainRotate) {
  const FeederDraws d = train_draws(*g_, true);
  // 3-term dot products on top of the crop: still ~1e-16 relative per op in float64.
  expect_normwise("rot_train72_f64", run<double>(*g_, d, false, FeederStage::kRotate),
                  g_->f64("rot_train72_f64"), 1e-12);
  // float32 cos/sin and matmul (ours: R rounded from double) -> a few float ulp.
  expect_normwise("rot_train72_f32code", run<float>(*g_, d, false, FeederStage::kRotate),
                  g_->f64("rot_train72_f32code"), 1e-6);
}

TEST_F(GoldenFeeder, TrainVelocity) {
  const FeederDraws d = train_draws(*g_, true);
  // Differences of nearby values lose relative precision (README: 1e-12 f64, 1e-5 f32code).
  expect_normwise("vel_train72_f64", run<double>(*g_, d, true, FeederStage::kFull),
                  g_->f64("vel_train72_f64"), 1e-12);
  expect_normwise("vel_train72_f32code", run<float>(*g_, d, true, FeederStage::kFull),
                  g_->f64("vel_train72_f32code"), 1e-5);
}

// A clip stored as an npz row ([T][M][V][C]) gives the same output as the authors' layout.
TEST_F(GoldenFeeder, StoredLayoutMatchesAuthorsLayout) {
  const Golden& g = *g_;
  std::vector<float> tmvc(g.data.size());
  for (int c = 0; c < 3; ++c)
    for (int64_t t = 0; t < g.T; ++t)
      for (int v = 0; v < 25; ++v)
        for (int m = 0; m < 2; ++m)
          tmvc[size_t(t * 150 + m * 75 + v * 3 + c)] =
              g.data[size_t(((c * g.T + t) * 25 + v) * 2 + m)];
  EXPECT_EQ(valid_frame_count(tmvc.data(), ClipLayout::kTMVC, g.T), g.i64("valid_frame_num"));
  FeederConfig cfg;
  cfg.vel = true;
  const FeederDraws d = train_draws(g, true);
  std::vector<double> out(3 * 72 * 50);
  feeder_apply(tmvc.data(), ClipLayout::kTMVC, g.T, d, cfg, out.data());
  // Same arithmetic on the same values in another memory order: bit-identical expected.
  EXPECT_CLOSE("vel_train72_f64 (TMVC input)", out, g.f64("vel_train72_f64"),
               1e-12 * max_abs(g.f64("vel_train72_f64")), 0.0, kOutShape);
}

}  // namespace
}  // namespace hacm
