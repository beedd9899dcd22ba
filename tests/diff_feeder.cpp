// Differential: the device-resident feeder (accelerated/feeder.h, batched tensor ops) against the
// host feeder (core/feeder.h, per clip, float path) on the same clips, seeds and draws, on CPU and
// on CUDA when present. Both do the same IEEE float32 operations in the same order (separate
// multiply and add, R applied left to right, sin/cos of the angles in double on the host), so the
// batches must agree exactly: tolerance 0.
#include <ATen/ATen.h>

#include <vector>

#include "accelerated/feeder.h"
#include "core/feeder.h"
#include "core/rng.h"
#include "tests/compare.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;

namespace {

// N clips of T frames, smooth random motion plus noise, with valid lengths covering the cases of
// the crop-resize: empty clip, shorter than the 64-frame floor, equal to the window (72), the
// test crop landing exactly on the window (74 -> bias 1, length 72), longer, and full length.
NdArray make_clips(int64_t T, std::vector<int64_t> valid, uint64_t seed) {
  const int64_t N = int64_t(valid.size());
  std::vector<float> x(size_t(N * T * 150), 0.0f);
  Rng rng(seed);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < 150; ++k) {
      double a = rng.uniform(-1, 1), w = rng.uniform(0.02, 0.2), ph = rng.uniform(0, 6.28);
      for (int64_t t = 0; t < valid[size_t(n)]; ++t)
        x[size_t((n * T + t) * 150 + k)] =
            float(a * std::sin(w * double(t) + ph) + 0.01 * rng.normal());
    }
  return NdArray::from({N, T, 150}, x);
}

NdArray make_labels(int64_t N) {
  std::vector<int64_t> y(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) y[size_t(i)] = i % 5;
  return NdArray::from({N}, y);
}

void check_same_batches(const FeederConfig& cfg, bool train, const at::Device& dev) {
  const int64_t T = 300;
  const std::vector<int64_t> valid = {150, 0, 40, 72, 74, 300, 64, 111, 200, 73};
  Feeder host(make_clips(T, valid, 5), make_labels(int64_t(valid.size())), cfg, train, "clips");
  accel::DeviceFeeder device(host, dev);
  const int64_t W = cfg.window, per = 3 * W * 25 * 2;
  for (uint64_t seed : {0ull, 17ull, 123456789ull}) {
    // Every clip, in a shuffled order with a repeat (the same clip drawn twice in one batch).
    std::vector<int64_t> idx = {3, 0, 9, 1, 5, 2, 7, 4, 6, 8, 3};
    const int64_t B = int64_t(idx.size());
    std::vector<float> want(size_t(B * per));
    std::vector<int64_t> want_lab(static_cast<size_t>(B));
    host.get_batch(idx.data(), B, seed, want.data(), want_lab.data(), 2);
    at::Tensor lab;
    at::Tensor got = device.get_batch(idx.data(), B, seed, &lab);
    ASSERT_EQ(got.device().type(), dev.type());  // "cuda" vs "cuda:0"
    ASSERT_EQ(got.sizes(), (at::IntArrayRef{B, 3, W, 25, 2}));
    EXPECT_CLOSE(std::string("batch seed ") + std::to_string(seed), to_vec(got), want, 0.0, 0.0,
                 {B, 3, W, 25, 2});
    at::Tensor lab_cpu = lab.cpu();
    for (int64_t b = 0; b < B; ++b) EXPECT_EQ(lab_cpu[b].item<int64_t>(), want_lab[size_t(b)]);
  }
}

}  // namespace

TEST(DifferentialFeeder, TrainCropResizeRotate) {
  FeederConfig cfg;  // HA-CM: window 72, p in [0.5, 1], rotation 0.3
  for (at::Device dev : test_devices()) {
    std::printf("device %s\n", dev_name(dev));
    check_same_batches(cfg, true, dev);
  }
}

TEST(DifferentialFeeder, TrainWithVelocityAndMampWindow) {
  FeederConfig cfg;
  cfg.window = 120;  // MAMP
  cfg.vel = true;
  for (at::Device dev : test_devices()) {
    std::printf("device %s\n", dev_name(dev));
    check_same_batches(cfg, true, dev);
  }
}

TEST(DifferentialFeeder, TestCentreCrop) {
  FeederConfig cfg;
  for (at::Device dev : test_devices()) {
    std::printf("device %s\n", dev_name(dev));
    check_same_batches(cfg, false, dev);
    cfg.vel = true;
    check_same_batches(cfg, false, dev);
    cfg.vel = false;
  }
}

TEST(DifferentialFeeder, InjectedDrawsAndBadIndex) {
  FeederConfig cfg;
  const std::vector<int64_t> valid = {100, 90};
  Feeder host(make_clips(300, valid, 9), make_labels(2), cfg, true, "clips");
  accel::DeviceFeeder device(host, at::kCPU);
  EXPECT_EQ(device.resident_bytes(), int64_t(2 * 300 * 150 * 4));
  // Injected: clip 1, frames [10, 10+80), a rotation about z by 0.2 rad.
  FeederDraws d;
  d.bias = 10, d.length = 80, d.rotate = true, d.angles[2] = 0.2;
  std::vector<float> want(3 * 72 * 25 * 2);
  feeder_apply(host.clip(1), ClipLayout::kTMVC, 300, d, cfg, want.data());
  double Rd[9];
  rotation_matrix(d.angles, Rd);
  at::Tensor R = at::empty({1, 9}, at::kFloat);
  for (int k = 0; k < 9; ++k) R[0][k] = float(Rd[k]);
  accel::FeederBatchDraws bd{at::tensor({int64_t(1)}), at::tensor({int64_t(10)}),
                             at::tensor({int64_t(80)}), R};
  EXPECT_CLOSE("injected draws", to_vec(device.apply(bd)), want, 0.0, 0.0);
  int64_t bad = 2;
  EXPECT_THROW(device.get_batch(&bad, 1, 0, nullptr), std::out_of_range);
}
