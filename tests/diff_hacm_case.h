// Inputs shared by the differential model tests (tests/diff_model.cpp, tests/diff_autocast.cpp):
// values rounded to float32 so both backends see the same numbers, and the small HA-CM case
// (width 32, 4 heads, depth 1 / decoder depth 1, T = 12, N = 2 clips, M = 2) with the reference's
// double forward and backward computed once.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "accelerated/hacm.h"
#include "core/model_init.h"
#include "reference/hacm_model.h"
#include "tests/diff_util.h"

namespace hacm::test {

// Round to float32 (the values the float backend will see).
inline ref::Tensor<double> f32(ref::Tensor<double> t) {
  for (auto& v : t.data) v = double(float(v));
  return t;
}

// float32-exact uniforms in [0, 1), drawn from `rng` (or from Rng(seed)).
inline ref::Tensor<double> uniforms(const std::vector<int64_t>& shape, Rng& rng) {
  ref::Tensor<double> t(shape);
  for (auto& v : t.data) v = double(float(rng.uniform()));
  return t;
}
inline ref::Tensor<double> uniforms(const std::vector<int64_t>& shape, uint64_t seed) {
  Rng rng(seed);
  return uniforms(shape, rng);
}

// A reference index list as an int64 tensor [rows, -1] on `dev`.
inline at::Tensor ids(const std::vector<int64_t>& v, int64_t rows, at::Device dev) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).reshape({rows, -1}).to(dev);
}

// float32 state dict from the reference's (float-exact) double weights; l1/l2 (no gradient in
// the released model) get requires_grad only when `all_trainable`.
inline accel::StateDict state_dict(
    const std::vector<std::pair<std::string, ref::Tensor<double>*>>& named, at::Device dev,
    bool all_trainable = true) {
  accel::StateDict sd;
  for (const auto& [n, t] : named) {
    const bool trainable = all_trainable || (n.rfind("l1.", 0) != 0 && n.rfind("l2.", 0) != 0);
    sd[n] = to_at(*t, at::kFloat, dev).requires_grad_(trainable);
  }
  return sd;
}

// The small HA-CM model: both backends' configs, core/model_init.h weights from `seed` and the
// input x5 [2, 3, 12, 25, 2] from seed+1.
struct SmallHacmModel {
  ref::HacmConfig rc;
  accel::HacmConfig ac;
  ref::HacmWeights<double> w;
  ref::Tensor<double> x5;
};

inline SmallHacmModel small_hacm_model(const std::string& variant, uint64_t seed) {
  ModelShape s;
  s.dim = s.decoder_dim = 32;
  s.depth = s.decoder_depth = 1;
  s.frames = 12;
  SmallHacmModel m;
  m.rc.heads = 4;
  m.rc.variant = variant;
  m.w = ref::HacmWeights<double>::load(
      ref::checkpoint_from_arrays<double>(init_pretrain_params(s, seed)), m.rc);
  m.x5 = f32(ref_randn({2, 3, 12, 25, 2}, seed + 1, 0.3));
  m.ac.dim = 32;
  m.ac.heads = 4;
  m.ac.depth = m.ac.decoder_depth = 1;
  m.ac.variant = variant;
  return m;
}

// The small model with U_t / U_s from seed+2, seed+3 and the reference's double forward and
// backward.
struct SmallHacmCase {
  ref::HacmConfig rc;
  accel::HacmConfig ac;
  ref::HacmWeights<double> w;
  ref::Tensor<double> x5, ut, us;
  ref::HacmForward<double> f;
  ref::HacmGrads<double> g;
};

inline SmallHacmCase small_hacm_case(const std::string& variant, uint64_t seed) {
  SmallHacmModel m = small_hacm_model(variant, seed);
  SmallHacmCase c{m.rc, m.ac, m.w, m.x5, uniforms({4, 36}, seed + 2), uniforms({4, 36}, seed + 3),
                  {},   {}};
  c.f = ref::hacm_forward(c.x5, c.ut, c.us, c.w, c.rc);
  c.g = ref::hacm_backward(c.f, c.x5, c.w, c.rc);
  return c;
}

}  // namespace hacm::test
