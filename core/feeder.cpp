#include "core/feeder.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.h"
#include "core/npz.h"

namespace hacm {

// Stored members of numpy-written .npz files can sit at any byte offset: a float view of them
// may be misaligned, so such clips are copied to an aligned buffer first (one clip, ~180 KB).
static const float* aligned_clip(const float* p, int64_t values, std::vector<float>& scratch) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) return p;
  scratch.resize(size_t(values));
  std::memcpy(scratch.data(), reinterpret_cast<const void*>(p), size_t(values) * sizeof(float));
  return scratch.data();
}

namespace {

constexpr int kVals = kFeederC * kFeederV * kFeederM;  // 150 values per frame

// Offset of element (c, t, v, m) in a clip of T frames.
struct Strides {
  int64_t c, t, v, m;
};
Strides strides_of(ClipLayout layout, int64_t T) {
  if (layout == ClipLayout::kTMVC) return {1, kVals, 3, kFeederV * 3};
  return {T * kFeederV * kFeederM, kFeederV * kFeederM, kFeederM, 1};
}

// Real = double: everything in double. Real = float: interpolation weights and arithmetic in
// float32 as torch's upsample_bilinear2d CPU kernel does for float tensors.
template <class Real>
void apply_impl(const float* clip, ClipLayout layout, int64_t T, const FeederDraws& d,
                const FeederConfig& cfg, Real* out, FeederStage stop) {
  const int W = cfg.window;
  const int64_t plane = int64_t(W) * kFeederV * kFeederM;  // one channel of the output
  if (d.length <= 0) {
    std::fill(out, out + kFeederC * plane, Real(0));
    return;
  }
  if (d.bias < 0 || d.bias + d.length > T)
    throw std::out_of_range("feeder_apply: crop [" + std::to_string(d.bias) + ", " +
                            std::to_string(d.bias + d.length) + ") outside " + std::to_string(T) +
                            " frames");
  const Strides s = strides_of(layout, T);
  const bool rot = d.rotate && stop != FeederStage::kCrop;
  Real R[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  if (rot) {
    double Rd[9];
    rotation_matrix(d.angles, Rd);
    for (int k = 0; k < 9; ++k) R[k] = Real(Rd[k]);
  }
  const int64_t len = d.length;
  // F.interpolate(bilinear, align_corners=False) along time; equal sizes copy frames exactly.
  const Real scale = Real(len) / Real(W);
  for (int i = 0; i < W; ++i) {
    int64_t i0 = i, i1 = i;
    Real l0 = 1, l1 = 0;
    if (len != W) {
      Real src = scale * (Real(i) + Real(0.5)) - Real(0.5);
      if (src < 0) src = 0;
      i0 = std::min(int64_t(std::floor(src)), len - 1);
      l1 = std::min(std::max(src - Real(i0), Real(0)), Real(1));
      i1 = i0 + (i0 < len - 1 ? 1 : 0);
      l0 = Real(1) - l1;
    }
    const float* f0 = clip + (d.bias + i0) * s.t;
    const float* f1 = clip + (d.bias + i1) * s.t;
    for (int v = 0; v < kFeederV; ++v)
      for (int m = 0; m < kFeederM; ++m) {
        const int64_t o = v * s.v + m * s.m;
        Real p[3];
        for (int c = 0; c < 3; ++c) p[c] = Real(f0[o + c * s.c]) * l0 + Real(f1[o + c * s.c]) * l1;
        Real* dst = out + (int64_t(i) * kFeederV + v) * kFeederM + m;
        if (rot) {
          for (int c = 0; c < 3; ++c)
            dst[c * plane] = R[c * 3 + 0] * p[0] + R[c * 3 + 1] * p[1] + R[c * 3 + 2] * p[2];
        } else {
          for (int c = 0; c < 3; ++c) dst[c * plane] = p[c];
        }
      }
  }
  if (cfg.vel && stop == FeederStage::kFull) {
    const int64_t fs = kFeederV * kFeederM;  // one frame within a channel
    for (int c = 0; c < 3; ++c) {
      Real* ch = out + c * plane;
      for (int t = 0; t + 1 < W; ++t)
        for (int64_t k = 0; k < fs; ++k) ch[t * fs + k] = ch[(t + 1) * fs + k] - ch[t * fs + k];
      std::fill(ch + (W - 1) * fs, ch + W * fs, Real(0));
    }
  }
}

}  // namespace

int64_t valid_frame_count(const float* clip, ClipLayout layout, int64_t T) {
  const Strides s = strides_of(layout, T);
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) {
    double sum = 0;
    for (int v = 0; v < kFeederV; ++v)
      for (int m = 0; m < kFeederM; ++m)
        for (int c = 0; c < 3; ++c) sum += clip[t * s.t + v * s.v + m * s.m + c * s.c];
    n += (sum != 0);
  }
  return n;
}

int64_t train_crop_length(int64_t valid, double p, int64_t min_crop) {
  int64_t len = int64_t(std::floor(double(valid) * p));
  return std::min(std::max(len, min_crop), valid);
}

FeederDraws draw_train(Rng& rng, int64_t valid, const FeederConfig& cfg) {
  FeederDraws d;
  d.p = rng.uniform() * (cfg.p_max - cfg.p_min) + cfg.p_min;
  d.length = train_crop_length(valid, d.p, cfg.min_crop);
  d.bias = rng.integer(0, std::max<int64_t>(valid - d.length, 0));
  d.rotate = cfg.random_rot;
  if (cfg.random_rot)
    for (double& a : d.angles) a = rng.uniform(-cfg.rot_theta, cfg.rot_theta);
  return d;
}

FeederDraws test_draws(int64_t valid, const FeederConfig& cfg) {
  FeederDraws d;
  d.p = cfg.p_test;
  d.bias = int64_t((1.0 - cfg.p_test) * double(valid) / 2.0);  // int(): truncation
  d.length = std::max<int64_t>(valid - 2 * d.bias, 0);
  return d;
}

void rotation_matrix(const double angles[3], double R[9]) {
  const double cx = std::cos(angles[0]), sx = std::sin(angles[0]);
  const double cy = std::cos(angles[1]), sy = std::sin(angles[1]);
  const double cz = std::cos(angles[2]), sz = std::sin(angles[2]);
  const double Rx[9] = {1, 0, 0, 0, cx, sx, 0, -sx, cx};
  const double Ry[9] = {cy, 0, -sy, 0, 1, 0, sy, 0, cy};
  const double Rz[9] = {cz, sz, 0, -sz, cz, 0, 0, 0, 1};
  double ZY[9];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      ZY[i * 3 + j] = Rz[i * 3 + 0] * Ry[0 * 3 + j] + Rz[i * 3 + 1] * Ry[1 * 3 + j] +
                      Rz[i * 3 + 2] * Ry[2 * 3 + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      R[i * 3 + j] = ZY[i * 3 + 0] * Rx[0 * 3 + j] + ZY[i * 3 + 1] * Rx[1 * 3 + j] +
                     ZY[i * 3 + 2] * Rx[2 * 3 + j];
}

void feeder_apply(const float* clip, ClipLayout layout, int64_t T, const FeederDraws& d,
                  const FeederConfig& cfg, float* out, FeederStage stop) {
  apply_impl<float>(clip, layout, T, d, cfg, out, stop);
}
void feeder_apply(const float* clip, ClipLayout layout, int64_t T, const FeederDraws& d,
                  const FeederConfig& cfg, double* out, FeederStage stop) {
  apply_impl<double>(clip, layout, T, d, cfg, out, stop);
}

// ---------------------------------------------------------------------------------------------

Feeder::Feeder(const std::string& npz_path, const std::string& split, const FeederConfig& cfg,
               bool train)
    : cfg_(cfg), train_(train) {
  if (split != "train" && split != "test")
    throw InputError("feeder: split must be train or test, got '" + split + "'");
  NpzReader r(npz_path);
  x_ = r.require("x_" + split, 3);
  y_ = r.require("y_" + split);
  init(npz_path + ": x_" + split + "/y_" + split);
}

Feeder::Feeder(NdArray x, NdArray y, const FeederConfig& cfg, bool train, const std::string& what)
    : x_(std::move(x)), y_(std::move(y)), cfg_(cfg), train_(train) {
  init(what.empty() ? "feeder arrays" : what);
}

void Feeder::init(const std::string& what) {
  if (x_.dtype != DType::f4 || x_.ndim() != 3 || x_.shape[2] != kVals)
    throw InputError(what + ": x must be float32 (N, T, 150), got " +
                     std::string(dtype_name(x_.dtype)) + " " + x_.shape_str());
  n_ = x_.shape[0];
  t_ = x_.shape[1];
  if (y_.ndim() < 1 || y_.shape[0] != n_ || y_.ndim() > 2)
    throw InputError(what + ": y must be (N, K) one-hot or (N,) labels with N = " +
                     std::to_string(n_) + ", got " + y_.shape_str());
  if (cfg_.window <= 0) throw InputError(what + ": window must be positive");
  labels_.resize(size_t(n_));
  if (y_.ndim() == 2) {
    k_ = int(y_.shape[1]);
    for (int64_t i = 0; i < n_; ++i) {
      int64_t best = 0;
      for (int64_t j = 1; j < k_; ++j)
        if (y_.at_f64(i * k_ + j) > y_.at_f64(i * k_ + best)) best = j;
      labels_[size_t(i)] = best;
    }
  } else {
    int64_t mx = -1;
    for (int64_t i = 0; i < n_; ++i) {
      labels_[size_t(i)] = y_.at_i64(i);
      if (labels_[size_t(i)] < 0)
        throw InputError(what + ": negative label at row " + std::to_string(i));
      mx = std::max(mx, labels_[size_t(i)]);
    }
    k_ = int(mx + 1);
  }
  valid_.resize(size_t(n_));
  for (int64_t i = 0; i < n_; ++i) {
    std::vector<float> scratch;
    valid_[size_t(i)] =
        valid_frame_count(aligned_clip(clip(i), t_ * 150, scratch), ClipLayout::kTMVC, t_);
  }
}

FeederDraws Feeder::draws(int64_t i, Rng& rng) const {
  return train_ ? draw_train(rng, valid(i), cfg_) : test_draws(valid(i), cfg_);
}

void Feeder::get(int64_t i, Rng& rng, float* out) const {
  if (i < 0 || i >= n_) throw std::out_of_range("Feeder::get: index " + std::to_string(i));
  std::vector<float> scratch;
  feeder_apply(aligned_clip(clip(i), t_ * 150, scratch), ClipLayout::kTMVC, t_, draws(i, rng), cfg_,
               out);
}

void Feeder::get_batch(const int64_t* idx, int64_t B, uint64_t seed, float* out, int64_t* labels,
                       int threads) const {
  const int64_t per = int64_t(kFeederC) * cfg_.window * kFeederV * kFeederM;
  std::vector<std::exception_ptr> errors(size_t(std::max(threads, 1)));
  auto work = [&](int w, int64_t lo, int64_t hi) {
    try {
      for (int64_t b = lo; b < hi; ++b) {
        Rng rng = Rng::derive(seed, uint64_t(idx[b]));
        get(idx[b], rng, out + b * per);
        if (labels) labels[b] = label(idx[b]);
      }
    } catch (...) {
      errors[size_t(w)] = std::current_exception();
    }
  };
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, B)));
  std::vector<std::thread> pool;
  for (int w = 1; w < threads; ++w)
    pool.emplace_back(work, w, B * w / threads, B * (w + 1) / threads);
  work(0, 0, B / threads);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace hacm
