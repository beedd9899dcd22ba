// The golden feeder case (golden/feeder.npz, see tests/golden_feeder.cpp) through the
// device-resident feeder (accelerated/feeder.h), on CPU and on CUDA when present: the authors'
// float32 code path (`*_f32code`) with the train draws injected, and their test centre crop.
// Tolerances as the host float path: 1e-6 x max|ref| for crop/rotation (float32 interpolation
// against float64 arrays of the float32 code), 1e-5 for velocity (differences of nearby values).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "accelerated/feeder.h"
#include "core/feeder.h"
#include "core/npz.h"
#include "tests/accel_util.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;

namespace {

class GoldenFeederAccel : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = golden("feeder.npz");
    REQUIRE_FIXTURE(path);
    a_ = npz_load(path);
    const NdArray& data = a_.at("data");  // [3, T, 25, 2] (authors' layout)
    T_ = data.shape.at(1);
    std::vector<float> d = data.to_f32(), tmvc(d.size());
    for (int c = 0; c < 3; ++c)  // -> one stored npz row [T][M][V][C]
      for (int64_t t = 0; t < T_; ++t)
        for (int v = 0; v < 25; ++v)
          for (int m = 0; m < 2; ++m)
            tmvc[size_t(t * 150 + m * 75 + v * 3 + c)] = d[size_t(((c * T_ + t) * 25 + v) * 2 + m)];
    x_ = NdArray::from({1, T_, 150}, tmvc);
  }
  std::vector<double> f64(const std::string& k) const { return a_.at(k).to_f64(); }

  // x5 [1, 3, 72, 25, 2] of the golden clip with injected draws.
  std::vector<double> run(const at::Device& dev, bool train, bool rotate, bool vel) {
    FeederConfig cfg;
    cfg.vel = vel;
    Feeder host(x_, NdArray::from({1}, std::vector<int64_t>{0}), cfg, train, "feeder.npz");
    accel::DeviceFeeder feeder(host, dev);
    int64_t bias, length;
    if (train) {
      bias = a_.at("bias_train").at_i64(0), length = a_.at("cropped_length_train").at_i64(0);
    } else {
      FeederDraws t = test_draws(host.valid(0), cfg);
      bias = t.bias, length = t.length;
    }
    at::Tensor R;
    if (rotate) {
      std::vector<double> ang = f64("angles");
      double Rd[9];
      rotation_matrix(ang.data(), Rd);
      R = at::empty({1, 9}, at::kFloat);
      for (int k = 0; k < 9; ++k) R[0][k] = float(Rd[k]);
    }
    accel::FeederBatchDraws d{at::tensor({int64_t(0)}), at::tensor({bias}), at::tensor({length}),
                              R};
    return to_vec(feeder.apply(d));
  }
  void expect(const std::string& key, const std::vector<double>& got, double tol) {
    std::vector<double> ref = f64(key);
    double m = 0;
    for (double v : ref) m = std::max(m, std::fabs(v));
    EXPECT_CLOSE(key, got, ref, tol * m, 0.0, {1, 3, 72, 25, 2});
  }

  std::map<std::string, NdArray> a_;
  NdArray x_;
  int64_t T_ = 0;
};

}  // namespace

TEST_F(GoldenFeederAccel, TrainCropRotateVelocity) {
  for (const at::Device& dev : test_devices()) {
    std::printf("device %s\n", dev.str().c_str());
    expect("crop_train72_f32code", run(dev, true, false, false), 1e-6);
    expect("rot_train72_f32code", run(dev, true, true, false), 1e-6);
    expect("vel_train72_f32code", run(dev, true, true, true), 1e-5);
  }
}

TEST_F(GoldenFeederAccel, TestCentreCrop) {
  for (const at::Device& dev : test_devices()) {
    std::printf("device %s\n", dev.str().c_str());
    expect("crop_test72_f32code", run(dev, false, false, false), 1e-6);
  }
}
