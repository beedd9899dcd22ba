// Differential, without a GPU: the custom CUDA kernels' real source (accelerated/kernels/*.cu)
// run by the CPU emulator of tests/cuda_emu (every CUDA thread a fiber, warp shuffles, WMMA and
// mma.sync emulated lane by lane) against the float64 reference, on every machine and in CI.
// The CUDA tests (diff_layer_norm, diff_linear, diff_hyperbolic, diff_attention) check the same
// kernels on a GPU; these catch index, fragment-layout, tiling and launch-configuration errors
// before a GPU sees the code, and the emulator fails a test on a shuffle with missing lanes, a
// misaligned WMMA tile or a deadlock at a barrier. Bounds are the CUDA tests' (the arithmetic is
// the same float32; only tensor-core summation order and a few ulps of exp/tanh differ).
#include <cuda_bf16.h>
#include <emu_memory.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "accelerated/kernels/attention.h"
#include "accelerated/kernels/column_sum.h"
#include "accelerated/kernels/gelu.h"
#include "accelerated/kernels/hyperbolic.h"
#include "accelerated/kernels/layer_norm.h"
#include "core/rng.h"
#include "reference/hyperbolic.h"
#include "reference/transformer.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::cuda::Dtype;
using hacm::ref::Tensor;

namespace {

using bf16 = __nv_bfloat16;

float round_bf16(double v) {
  return __bfloat162float(__float2bfloat16_rn(float(v)));
}

// Normal values (scale `s`, offset `o`) rounded to what `t` stores, as double.
std::vector<double> normals(size_t n, uint64_t seed, double s = 1.0, double o = 0.0,
                            Dtype t = Dtype::kF32) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (double& x : v) {
    const double r = o + s * rng.normal();
    x = t == Dtype::kBF16 ? double(round_bf16(r)) : double(float(r));
  }
  return v;
}

// Kernel buffers: guarded at their end (tests/cuda_emu/include/emu_memory.h), so that an access
// past the end stops the test naming the kernel.
using F32 = hacm_emu::Guarded<float>;

std::vector<double> dbl(const F32& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Kernel-side storage of a double vector as float32 or bf16 (exact: values come from normals).
struct Buf {
  Dtype t;
  F32 f;
  hacm_emu::Guarded<bf16> h;
  // At least 8-byte aligned, as the kernels' pair accesses require (torch's allocations are).
  Buf(const std::vector<double>& v, Dtype type)
      : t(type),
        f(type == Dtype::kF32 ? v.size() : 0, 0.f, 8),
        h(type == Dtype::kBF16 ? v.size() : 0, bf16{}, 8) {
    for (size_t i = 0; i < v.size(); ++i)
      if (t == Dtype::kF32)
        f[i] = float(v[i]);
      else
        h[i] = __float2bfloat16_rn(float(v[i]));
  }
  Buf(size_t n, Dtype type)
      : t(type),
        f(type == Dtype::kF32 ? n : 0, NAN, 8),
        h(type == Dtype::kBF16 ? n : 0, __float2bfloat16_rn(NAN), 8) {}
  void* data() { return t == Dtype::kF32 ? static_cast<void*>(f.data()) : h.data(); }
  std::vector<double> values() const {
    if (t == Dtype::kF32) return dbl(f);
    std::vector<double> v;
    for (bf16 x : h) v.push_back(__bfloat162float(x));
    return v;
  }
};

Tensor<double> tensor(std::vector<int64_t> shape, const std::vector<double>& v) {
  Tensor<double> t(std::move(shape));
  t.data = v;
  return t;
}

// Column sums of a row-major [rows, cols] matrix, in double.
std::vector<double> column_sums(const std::vector<double>& v, int64_t rows, int64_t cols) {
  std::vector<double> s(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) s[size_t(c)] += v[size_t(r * cols + c)];
  return s;
}

const char* name(Dtype t) {
  return t == Dtype::kF32 ? "f32" : "bf16";
}

}  // namespace

// ---- LayerNorm (kernels/layer_norm.cu, kernels/partial_sums.cu) ----

// Every compiled width; row counts with a partial last block and several blocks of weight-gradient
// partials (400 rows: more than 48 partial rows, the partial sums' main loop, and, at one
// multiprocessor, several rows per warp in the backward); storage float32, the autocast form
// (float32 in, bf16 out and bf16 gradient) and bf16 throughout.
TEST(EmuLayerNorm, MatchesReference) {
  struct Storage {
    Dtype x, y;
  };
  for (int sms : {132, 1}) {
    hacm_emu::set_multiprocessors(sms);
    for (int64_t C : {64, 128, 256, 512})
      for (int64_t rows : {int64_t(1), int64_t(7), int64_t(70), int64_t(400)})
        for (Storage st : {Storage{Dtype::kF32, Dtype::kF32}, Storage{Dtype::kF32, Dtype::kBF16},
                           Storage{Dtype::kBF16, Dtype::kBF16}}) {
          if ((rows == 400 && C != 64) || (sms == 1 && rows < 70)) continue;
          const std::string tag = "sms=" + std::to_string(sms) + " C=" + std::to_string(C) +
                                  " rows=" + std::to_string(rows) + " x " + name(st.x) + " y/dy " +
                                  name(st.y) + " ";
          const uint64_t seed = 100 + uint64_t(C + rows) + (st.y == Dtype::kBF16 ? 7 : 0) +
                                (st.x == Dtype::kBF16 ? 13 : 0);
          const size_t n = size_t(rows * C);
          const auto x = normals(n, seed, 1.0, 3.0, st.x),
                     dy = normals(n, seed + 1, 1.0, 0.0, st.y);
          const auto w = normals(size_t(C), seed + 2, 0.5, 1.0),
                     b = normals(size_t(C), seed + 3, 0.5);
          ref::LayerNormParams<double> p{tensor({C}, w), tensor({C}, b)};
          ref::LayerNormCache<double> cache;
          const Tensor<double> xr = tensor({rows, C}, x);
          const Tensor<double> y_ref = ref::layernorm_forward(xr, p, 1e-5, &cache);
          ref::LayerNormParams<double> g{Tensor<double>({C}), Tensor<double>({C})};
          const Tensor<double> dx_ref =
              ref::layernorm_backward(xr, p, cache, tensor({rows, C}, dy), g);

          F32 wf(w), bf(b);
          F32 mean(size_t(rows), NAN), rstd(size_t(rows), NAN), dw(size_t(C), NAN),
              db(size_t(C), NAN);
          Buf xb(x, st.x), y(n, st.y), dyb(dy, st.y), dx(n, st.x);
          cuda::layer_norm_forward(xb.data(), st.x, wf.data(), bf.data(), y.data(), st.y,
                                   mean.data(), rstd.data(), rows, C, 1e-5f, nullptr);
          F32 scratch(size_t(cuda::layer_norm_backward_scratch(rows, C)), NAN);
          cuda::layer_norm_backward(dyb.data(), st.y, xb.data(), st.x, wf.data(), mean.data(),
                                    rstd.data(), dx.data(), dw.data(), db.data(), scratch.data(),
                                    rows, C, nullptr);
          // float32 arithmetic: 1e-5 normwise (as diff_layer_norm); a value stored as bf16 is
          // rounded once (2^-9 relative): 4e-3.
          EXPECT_CLOSE_NORMWISE(tag + "y", y.values(), y_ref.data,
                                st.y == Dtype::kF32 ? 1e-5 : 4e-3);
          EXPECT_CLOSE_NORMWISE(tag + "dx", dx.values(), dx_ref.data,
                                st.x == Dtype::kF32 ? 1e-5 : 4e-3);
          EXPECT_CLOSE_NORMWISE(tag + "dw", dbl(dw), g.w.data, 1e-5);
          EXPECT_CLOSE_NORMWISE(tag + "db", dbl(db), g.b.data, 1e-5);
          const std::vector<double> mean_ref(cache.mean.begin(), cache.mean.end()),
              rstd_ref(cache.rstd.begin(), cache.rstd.end());
          EXPECT_CLOSE_NORMWISE(tag + "mean", dbl(mean), mean_ref, 1e-6);
          EXPECT_CLOSE_NORMWISE(tag + "rstd", dbl(rstd), rstd_ref, 1e-6);
        }
  }
  hacm_emu::set_multiprocessors(132);
}

// The residual form against the unfused addition + LayerNorm it replaces, bit for bit (the
// promise of kernels/layer_norm.h), forward and backward, with and without the sum's other
// gradient, the branch in bf16 (autocast) and float32.
TEST(EmuLayerNorm, ResidualFormIsBitIdenticalToAddThenNorm) {
  const int64_t rows = 37, C = 256;
  const size_t n = size_t(rows * C);
  for (Dtype tr : {Dtype::kF32, Dtype::kBF16})
    for (bool with_ds : {false, true}) {
      const std::string tag = std::string("branch ") + name(tr) + (with_ds ? " +ds " : " ");
      const auto x = normals(n, 300, 1.0, 2.0), r = normals(n, 301, 0.5, 0.0, tr);
      const auto dy = normals(n, 302, 1.0, 0.0, Dtype::kBF16), ds = normals(n, 303);
      const auto w = normals(size_t(C), 304, 0.5, 1.0), b = normals(size_t(C), 305, 0.5);
      F32 xf(x), wf(w), bf(b), dsf(ds);
      Buf rb(r, tr), dyb(dy, Dtype::kBF16);
      F32 scratch(size_t(cuda::layer_norm_backward_scratch(rows, C)));
      // Fused.
      F32 sum(n), mean(size_t(rows), 0.f), rstd(size_t(rows), 0.f), dx(n), dw(size_t(C), 0.f),
          db(size_t(C), 0.f);
      Buf y(n, Dtype::kBF16), dr(n, tr);
      cuda::add_layer_norm_forward(xf.data(), rb.data(), tr, sum.data(), wf.data(), bf.data(),
                                   y.data(), Dtype::kBF16, mean.data(), rstd.data(), rows, C, 1e-5f,
                                   nullptr);
      cuda::add_layer_norm_backward(dyb.data(), Dtype::kBF16, sum.data(), wf.data(), mean.data(),
                                    rstd.data(), with_ds ? dsf.data() : nullptr, dx.data(),
                                    dr.data(), tr, dw.data(), db.data(), scratch.data(), rows, C,
                                    nullptr);
      // Unfused: s = x + r (float32), LayerNorm(s); ds + dLN, and its cast to the branch's type.
      F32 s(n), mean2(size_t(rows), 0.f), rstd2(size_t(rows), 0.f), dln(n), dw2(size_t(C), 0.f),
          db2(size_t(C), 0.f);
      const auto rv = rb.values();
      for (size_t i = 0; i < n; ++i) s[i] = xf[i] + float(rv[i]);
      Buf y2(n, Dtype::kBF16);
      cuda::layer_norm_forward(s.data(), Dtype::kF32, wf.data(), bf.data(), y2.data(), Dtype::kBF16,
                               mean2.data(), rstd2.data(), rows, C, 1e-5f, nullptr);
      cuda::layer_norm_backward(dyb.data(), Dtype::kBF16, s.data(), Dtype::kF32, wf.data(),
                                mean2.data(), rstd2.data(), dln.data(), dw2.data(), db2.data(),
                                scratch.data(), rows, C, nullptr);
      std::vector<double> dx2(n), dr2(n);
      for (size_t i = 0; i < n; ++i) {
        dx2[i] = with_ds ? double(dsf[i] + dln[i]) : double(dln[i]);
        dr2[i] = tr == Dtype::kBF16 ? double(round_bf16(float(dx2[i]))) : dx2[i];
      }
      auto same = [&](const std::string& what, const std::vector<double>& a,
                      const std::vector<double>& b2) {
        EXPECT_CLOSE(tag + what, a, b2, 0.0, 0.0);  // bit for bit
      };
      same("sum", dbl(sum), dbl(s));
      same("y", y.values(), y2.values());
      same("dx", dbl(dx), dx2);
      same("dr", dr.values(), dr2);
      same("dw", dbl(dw), dbl(dw2));
      same("db", dbl(db), dbl(db2));
    }
}

// ---- Column sums (kernels/column_sum.cu, column_reduce.cuh, partial_sums.cu) ----

// Widths with a partial last column block (200, 1030) and rows below, at and above one row per
// warp; the launch heuristics at 132 multiprocessors (an H100) and at 1 (a single row slice).
TEST(EmuColumnSum, MatchesDoubleSums) {
  for (int sms : {132, 1}) {
    hacm_emu::set_multiprocessors(sms);
    for (int64_t cols : {2, 64, 200, 256, 1030})
      for (int64_t rows : {1, 9, 300})
        for (Dtype t : {Dtype::kF32, Dtype::kBF16}) {
          const std::string tag = "sms=" + std::to_string(sms) + " " + std::to_string(rows) + "x" +
                                  std::to_string(cols) + " " + name(t);
          const auto x = normals(size_t(rows * cols), 400 + uint64_t(rows * 7 + cols), 1.0, 0.5, t);
          Buf xb(x, t);
          ASSERT_TRUE(cuda::column_sum_supports(cols, xb.data()));
          F32 out(size_t(cols), NAN), scratch(size_t(cuda::column_sum_scratch(rows, cols)), NAN);
          cuda::column_sum(xb.data(), t, rows, cols, out.data(), scratch.data(), nullptr);
          const std::vector<double> want = column_sums(x, rows, cols);
          // float32 sums of exact values over <= 300 rows: ~1e-7 relative; bound 1e-5 normwise.
          EXPECT_CLOSE_NORMWISE(tag, dbl(out), want, 1e-5);
        }
  }
  hacm_emu::set_multiprocessors(132);
}

// ---- fc1's GELU backward with its bias gradient (kernels/gelu.cu) ----

TEST(EmuGeluBackward, MatchesReference) {
  for (int64_t cols : {256, 200})
    for (Dtype t : {Dtype::kF32, Dtype::kBF16}) {
      const int64_t rows = 45;
      const size_t n = size_t(rows * cols);
      const std::string tag =
          std::to_string(rows) + "x" + std::to_string(cols) + " " + name(t) + " ";
      const auto h = normals(n, 500 + uint64_t(cols), 1.5, 0.0, t),
                 dg = normals(n, 501, 1.0, 0.0, t);
      const Tensor<double> dh_ref =
          ref::gelu_backward(tensor({rows, cols}, h), tensor({rows, cols}, dg));
      Buf hb(h, t), dgb(dg, t), dh(n, t);
      ASSERT_TRUE(cuda::gelu_backward_supports(cols, dgb.data(), hb.data(), dh.data()));
      F32 db(size_t(cols), NAN), scratch(size_t(cuda::gelu_backward_scratch(rows, cols)), NAN);
      cuda::gelu_backward_column_sum(dgb.data(), hb.data(), t, dh.data(), rows, cols, db.data(),
                                     scratch.data(), nullptr);
      // dh: float32 arithmetic (1e-5), rounded once to bf16 when stored so (4e-3); db sums the
      // stored dh in float32: against the sums of the reference's dh, the same bounds.
      const double bound = t == Dtype::kF32 ? 1e-5 : 4e-3;
      EXPECT_CLOSE_NORMWISE(tag + "dh", dh.values(), dh_ref.data, bound);
      EXPECT_CLOSE_NORMWISE(tag + "db", dbl(db), column_sums(dh_ref.data, rows, cols), bound);
    }
}

// ---- The Poincaré map of the tokens (kernels/hyperbolic.cu) ----

// Rows of norms from ~1e-3 (the backward's Taylor branch, below 0.1) to ~7e3 (where float32's
// tanh is 1 and the projection fires) and a zero row, at every compiled width.
TEST(EmuExpmapProjection, MatchesReference) {
  for (int64_t C : {64, 128, 256, 512}) {
    const int64_t rows = 24;
    std::vector<double> x = normals(size_t(rows * C), 600 + uint64_t(C));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c)
        x[size_t(r * C + c)] = double(
            float(x[size_t(r * C + c)] * (r == 0 ? 0.0 : 1e-4 * std::pow(2.0, double(r - 1)))));
    const auto dy = normals(size_t(rows * C), 601);
    const Tensor<double> xr = tensor({rows, C}, x);
    const Tensor<double> y_ref = ref::expmap_with_projection_forward(xr);
    const Tensor<double> dx_ref = ref::expmap_with_projection_backward(xr, tensor({rows, C}, dy));
    F32 xf(x), dyf(dy), y(x.size(), NAN), dx(x.size(), NAN);
    ASSERT_TRUE(cuda::expmap_projection_supports(C));
    cuda::expmap_projection_forward(xf.data(), y.data(), rows, C, nullptr);
    cuda::expmap_projection_backward(xf.data(), dyf.data(), dx.data(), rows, C, nullptr);
    const std::string tag = "C=" + std::to_string(C) + " ";
    // Rows below norm 8 take the same branch in float32 and double: float32 rounding of tanh and
    // the norm, 1e-5 (y) and 1e-4 (dx, with the Taylor series below 0.1). Rows above 12 are
    // saturated in float32 (tanh = 1): y on the ball's boundary, norm 1 - 1e-5 if the projection
    // fired, else just below 1; dx against the double evaluation of the same limit, the
    // projection's gradient g1 = k (g - (u·g) u) with u = x / n, k = 1 - 1e-5, then
    // dx = g1 / n - (x·g1) x / n³ (1e-4: k or 1 where float32's |y| fell just below 1).
    std::vector<double> yg, yw, dg, dw, sat_got, sat_want;
    int taylor_rows = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double norm = 0;
      for (int64_t c = 0; c < C; ++c) norm += x[size_t(r * C + c)] * x[size_t(r * C + c)];
      norm = std::sqrt(norm);
      if (norm > 0 && norm < 0.1) ++taylor_rows;
      if (norm <= 8.0) {
        for (int64_t c = 0; c < C; ++c) {
          const size_t i = size_t(r * C + c);
          yg.push_back(y[i]), yw.push_back(y_ref.data[i]), dg.push_back(dx[i]),
              dw.push_back(dx_ref.data[i]);
        }
      } else if (norm >= 12.0) {
        double ym = 0, ug = 0, xg1 = 0;
        for (int64_t c = 0; c < C; ++c) {
          const size_t i = size_t(r * C + c);
          ym += double(y[i]) * y[i];
          ug += x[i] / norm * dy[i];
        }
        std::vector<double> g1(static_cast<size_t>(C));
        for (int64_t c = 0; c < C; ++c) {
          const size_t i = size_t(r * C + c);
          g1[size_t(c)] = (1 - 1e-5) * (dy[i] - ug * x[i] / norm);
          xg1 += x[i] * g1[size_t(c)];
        }
        for (int64_t c = 0; c < C; ++c) {
          const size_t i = size_t(r * C + c);
          sat_got.push_back(dx[i]);
          sat_want.push_back(g1[size_t(c)] / norm - xg1 * x[i] / (norm * norm * norm));
        }
        EXPECT_GE(std::sqrt(ym), 1.0 - 1e-5 - 1e-6) << tag << "row " << r;
        EXPECT_LT(std::sqrt(ym), 1.0) << tag << "row " << r;
      }
    }
    ASSERT_GE(taylor_rows, 3) << tag;
    ASSERT_GE(yg.size(), size_t(12 * C));
    ASSERT_GE(sat_got.size(), size_t(6 * C));
    EXPECT_CLOSE_NORMWISE(tag + "y", yg, yw, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + "dx", dg, dw, 1e-4);
    EXPECT_CLOSE_NORMWISE(tag + "saturated dx", sat_got, sat_want, 1e-4);
  }
}

// ---- Attention for head dimension 32 (kernels/attention.cu) ----

namespace {

// The reference attention (ref::attention_core_forward / _backward, float64) of qkv [B, N, 3d]:
// out [B, N, d], the gradient of qkv for dout [B, N, d], and each row's log2 of the softmax
// denominator in the kernel's units (log2 sum 2^(s · log2(e) / sqrt(32))), from a key j where
// P_ij is largest: s_ij / sqrt(32) - ln P_ij, over ln 2.
struct AttentionRef {
  std::vector<double> out, lse, dqkv;
};
AttentionRef attention_double(const std::vector<double>& qkv, const std::vector<double>& dout,
                              int64_t B, int64_t N, int64_t heads) {
  const int64_t d = 32 * heads;
  const Tensor<double> q = tensor({B, N, 3 * d}, qkv);
  Tensor<double> probs;
  AttentionRef r;
  r.out = ref::attention_core_forward(q, int(heads), &probs).data;
  r.dqkv = ref::attention_core_backward(q, probs, tensor({B, N, d}, dout), int(heads)).data;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < N; ++i) {
        const double* p = probs.data.data() + ((b * heads + h) * N + i) * N;
        const int64_t j = std::max_element(p, p + N) - p;
        double s = 0;
        for (int64_t c = 0; c < 32; ++c)
          s += qkv[size_t((b * N + i) * 3 * d + h * 32 + c)] *
               qkv[size_t((b * N + j) * 3 * d + d + h * 32 + c)];
        r.lse.push_back((s / std::sqrt(32.0) - std::log(p[j])) / std::log(2.0));
      }
  return r;
}

// One part (0 q, 1 k, 2 v) of a packed [B, N, 3d] tensor.
std::vector<double> part_of(const std::vector<double>& packed, int part, int64_t rows, int64_t d) {
  std::vector<double> v;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < d; ++c) v.push_back(packed[size_t(r * 3 * d + part * d + c)]);
  return v;
}

}  // namespace

// Token counts around the 64-token tiles with two heads (d = 64) and two sequences, the model's
// eight heads (d = 256) at an encoder's 86 tokens, one head at the decoder's 432 (seven tiles);
// scores spread over ~±6 so the softmax is far from uniform. Both forward kernels (registers /
// WMMA) and, for training, every pairing with both backward kernels (the lse units are shared).
TEST(EmuAttention, ForwardAndBackwardMatchDouble) {
  struct Shape {
    int64_t B, heads, n;
  };
  const std::vector<Shape> shapes = {{2, 2, 1},   {2, 2, 7},  {2, 2, 64}, {2, 2, 65},
                                     {2, 2, 100}, {1, 8, 86}, {1, 1, 432}};
  // Between barriers the threads run in index order, then in reverse (a missing barrier shows
  // in one of the two).
  for (bool reverse : {false, true}) {
    hacm_emu::set_reverse_order(reverse);
    for (const Shape& shape : shapes) {
      const int64_t B = shape.B, heads = shape.heads, n = shape.n, d = 32 * heads;
      const auto qkv = normals(size_t(B * n * 3 * d), 700 + uint64_t(n), 1.5, 0.0, Dtype::kBF16);
      const auto dout = normals(size_t(B * n * d), 701 + uint64_t(n), 1.0, 0.0, Dtype::kBF16);
      const AttentionRef want = attention_double(qkv, dout, B, n, heads);
      ASSERT_TRUE(cuda::attention_forward_supports(d, heads, B, n));
      Buf qkvb(qkv, Dtype::kBF16), doutb(dout, Dtype::kBF16);
      for (bool mma_fwd : {true, false}) {
        Buf out(size_t(B * n * d), Dtype::kBF16);
        F32 lse(size_t(B * heads * n), NAN);
        const int64_t launched = hacm_emu::launches("attention_forward_mma_kernel");
        cuda::attention_forward(qkvb.data(), out.data(), B, n, heads, nullptr, lse.data(), mma_fwd);
        ASSERT_EQ(hacm_emu::launches("attention_forward_mma_kernel") - launched, mma_fwd ? 1 : 0);
        const std::string fwd = std::string(reverse ? "[reverse order] " : "") +
                                (mma_fwd ? "mma" : "wmma") + " heads=" + std::to_string(heads) +
                                " n=" + std::to_string(n);
        // As diff_attention: P rounded to bf16 before P V, the output rounded once: 8e-3 normwise;
        // lse: float32 sums of exact bf16 products, 1e-4 absolute in log2 units.
        EXPECT_CLOSE_NORMWISE(fwd + " out", out.values(), want.out, 8e-3);
        EXPECT_CLOSE(fwd + " lse", dbl(lse), want.lse, 1e-4, 0.0);
        for (bool mma_bwd : {true, false}) {
          Buf dqkv(size_t(B * n * 3 * d), Dtype::kBF16);
          F32 dvec(size_t(B * heads * n), NAN), dq_acc(size_t(B * n * d), NAN);
          const int64_t bwd_launched = hacm_emu::launches("attention_backward_mma_kernel");
          cuda::attention_backward(qkvb.data(), out.data(), doutb.data(), lse.data(), dqkv.data(),
                                   dvec.data(), dq_acc.data(), B, n, heads, nullptr, mma_bwd);
          ASSERT_EQ(hacm_emu::launches("attention_backward_mma_kernel") - bwd_launched,
                    mma_bwd ? 1 : 0);
          const std::string tag = fwd + (mma_bwd ? " / mma backward " : " / wmma backward ");
          const auto got = dqkv.values();
          // P and dS rounded to bf16 before their products, results rounded to bf16: 1.5e-2
          // normwise each (diff_attention). n = 1: dq, dk are exactly 0 (one key), compared
          // absolutely.
          for (int part = 0; part < 3; ++part) {
            const char* pn = part == 0 ? "dq" : part == 1 ? "dk" : "dv";
            const auto g = part_of(got, part, B * n, d), w = part_of(want.dqkv, part, B * n, d);
            if (n == 1 && part < 2)
              EXPECT_CLOSE(tag + pn, g, w, 1e-6, 0.0);
            else
              EXPECT_CLOSE_NORMWISE(tag + pn, g, w, 1.5e-2);
          }
        }
      }
    }
  }
  hacm_emu::set_reverse_order(false);
}

// ---- The emulator itself: it must catch what it promises to catch ----

namespace {
__global__ void divergent_shuffle(float* out) {
  if (threadIdx.x % 32 == 5) return;  // one lane leaves before the shuffle
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, float(threadIdx.x), 1);
}
__global__ void divergent_barrier(float* out) {
  if (threadIdx.x < 32) {
    __syncwarp();
    __syncthreads();
  } else {
    __syncwarp();
  }
  out[threadIdx.x] = 1.f;
}
__global__ void mismatched_barriers(float* out) {
  if (threadIdx.x < 32)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1.f;
}
__global__ void butterfly(float* out) {
  float v = float(threadIdx.x);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}
}  // namespace

TEST(EmuSelf, ShufflesBarriersAndErrors) {
  F32 out(64, NAN);
  hacm_emu::launch("butterfly", dim3(1), dim3(64), [&] { butterfly(out.data()); });
  for (int i = 0; i < 64; ++i)  // each warp's lane sum: 0 + .. + 31, 32 + .. + 63
    EXPECT_EQ(out[size_t(i)], i < 32 ? 496.f : 1520.f) << i;
  try {
    hacm_emu::launch("divergent_shuffle", dim3(1), dim3(32),
                     [&] { divergent_shuffle(out.data()); });
    ADD_FAILURE() << "a shuffle with a missing lane passed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("divergent_shuffle"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lanes of the warp have returned"), std::string::npos)
        << e.what();
  }
  // Warp 0 waits at __syncthreads, warp 1 has returned: exited threads count as arrived, so the
  // barrier opens (as on the hardware) and every thread writes.
  for (float& v : out) v = NAN;
  hacm_emu::launch("divergent_barrier", dim3(1), dim3(64), [&] { divergent_barrier(out.data()); });
  for (float v : out) EXPECT_EQ(v, 1.f);
  try {
    hacm_emu::launch("mismatched_barriers", dim3(1), dim3(64),
                     [&] { mismatched_barriers(out.data()); });
    ADD_FAILURE() << "threads at two different __syncthreads passed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("wait at different places"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(hacm_emu::launch("too_big", dim3(1), dim3(2048), [&] {}), std::runtime_error);
  EXPECT_THROW(hacm_emu::launch("partial_warp", dim3(1), dim3(48), [&] {}), std::runtime_error);
}
