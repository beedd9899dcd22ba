// Differential: the fused LayerNorm CUDA kernel (accelerated/kernels/layer_norm.cu, through
// accel::fused_layer_norm and its autograd backward) against the reference
// ref::layernorm_forward / layernorm_backward (Eigen, double); its residual form
// (accel::fused_add_layer_norm) against the reference and, bit for bit, against the unfused
// addition + fused LayerNorm it replaces. CUDA only: on the CPU layer_norm_forward is ATen's
// layer_norm, covered by diff_transformer.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <string>
#include <tuple>

#include "accelerated/fused_layer_norm.h"
#include "accelerated/precision.h"
#include "accelerated/transformer.h"
#include "reference/transformer.h"
#include "tests/compare.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

struct Case {
  Tensor<double> x, gout;          // [rows, C]
  ref::LayerNormParams<double> p;  // w, b [C]
  Tensor<double> y, gx;            // reference forward and input gradient
  ref::LayerNormParams<double> g;  // reference weight / bias gradients
};

// Values exactly representable in `stored` (float32 or bf16), so both sides start from the same
// numbers; x carries a row offset of 3 (a residual stream is not centred: tests the variance).
Case make_case(int64_t rows, int64_t C, c10::ScalarType x_stored, c10::ScalarType g_stored,
               uint64_t seed) {
  Case c;
  c.x = ref_randn({rows, C}, seed);
  for (auto& v : c.x.data) v += 3.0;
  c.gout = ref_randn({rows, C}, seed + 1);
  c.p.w = ref_randn({C}, seed + 2, 0.5);
  c.p.b = ref_randn({C}, seed + 3, 0.5);
  for (auto& v : c.p.w.data) v += 1.0;
  round_through(c.x, x_stored);
  round_through(c.gout, g_stored);
  round_through(c.p.w, at::kFloat);
  round_through(c.p.b, at::kFloat);
  ref::LayerNormCache<double> cache;
  c.y = ref::layernorm_forward(c.x, c.p, 1e-5, &cache);
  c.g.w = Tensor<double>({C});
  c.g.b = Tensor<double>({C});
  c.gx = ref::layernorm_backward(c.x, c.p, cache, c.gout, c.g);
  return c;
}

struct Got {
  at::Tensor y, gx, gw, gb;
};
Got run_fused(const Case& c, c10::ScalarType x_dtype, c10::ScalarType out_dtype,
              c10::ScalarType g_dtype) {
  const at::Device dev(at::kCUDA);
  at::Tensor x = to_at(c.x, x_dtype, dev).requires_grad_(true);
  at::Tensor w = to_at(c.p.w, at::kFloat, dev).requires_grad_(true);
  at::Tensor b = to_at(c.p.b, at::kFloat, dev).requires_grad_(true);
  EXPECT_TRUE(accel::fused_layer_norm_applies(x, w, b, out_dtype));
  at::Tensor y = accel::fused_layer_norm(x, w, b, 1e-5, out_dtype);
  EXPECT_EQ(y.scalar_type(), out_dtype);
  y.backward(to_at(c.gout, g_dtype, dev));
  EXPECT_EQ(x.grad().scalar_type(), x_dtype);
  return {y, x.grad(), w.grad(), b.grad()};
}

}  // namespace

// float32 storage throughout: the kernel's float32 arithmetic against double. Row counts cover a
// partial last block (7, 1000) and the multi-block weight-gradient sums (55296 rows = the decoder
// tokens of a 64-clip step).
TEST(DifferentialLayerNorm, CudaFloat32MatchesReference) {
  REQUIRE_CUDA();
  for (int64_t C : {64, 128, 256, 512})  // every compiled width (kernels/rows.cuh)
    for (int64_t rows : {int64_t(1), int64_t(7), int64_t(1000), int64_t(55296)}) {
      if (C != 256 && rows > 1000) continue;
      const std::string tag = "C=" + std::to_string(C) + " rows=" + std::to_string(rows);
      Case c = make_case(rows, C, at::kFloat, at::kFloat, 500 + uint64_t(rows + C));
      Got g = run_fused(c, at::kFloat, at::kFloat, at::kFloat);
      // float32 rounding of a normalised value (|y| ~ 3): ~1e-7 relative; bound 1e-5 (forward and
      // input gradient, sums of C terms).
      EXPECT_CLOSE_NORMWISE(tag + " y", to_vec(g.y), c.y.data, 1e-5);
      EXPECT_CLOSE_NORMWISE(tag + " dx", to_vec(g.gx), c.gx.data, 1e-5);
      // Weight / bias gradients sum over all rows in float32 (partials of ~100 rows, then blocks):
      // error grows like sqrt(rows) x 6e-8; bound 1e-5 normwise.
      EXPECT_CLOSE_NORMWISE(tag + " dw", to_vec(g.gw), c.g.w.data, 1e-5);
      EXPECT_CLOSE_NORMWISE(tag + " db", to_vec(g.gb), c.g.b.data, 1e-5);
    }
}

// The autocast form: float32 residual stream in, bf16 matmul input out, bf16 gradient in.
TEST(DifferentialLayerNorm, CudaBf16OutputAndGradient) {
  REQUIRE_CUDA();
  Case c = make_case(4096, 256, at::kFloat, at::kBFloat16, 900);
  Got g = run_fused(c, at::kFloat, at::kBFloat16, at::kBFloat16);
  // y is the float32 result rounded once to bf16 (8-bit mantissa): relative error <= 2^-9;
  // bound 4e-3 normwise.
  EXPECT_CLOSE_NORMWISE("bf16 y", to_vec(g.y), c.y.data, 4e-3);
  // The bf16 gradient values are exact inputs (made representable above); dx, dw, db are float32
  // arithmetic: same bounds as the float32 case.
  EXPECT_CLOSE_NORMWISE("dx (float32)", to_vec(g.gx), c.gx.data, 1e-5);
  EXPECT_CLOSE_NORMWISE("dw", to_vec(g.gw), c.g.w.data, 1e-5);
  EXPECT_CLOSE_NORMWISE("db", to_vec(g.gb), c.g.b.data, 1e-5);
}

// bf16 in and out (dx stored as bf16 too).
TEST(DifferentialLayerNorm, CudaBf16InputAndOutput) {
  REQUIRE_CUDA();
  Case c = make_case(1000, 256, at::kBFloat16, at::kBFloat16, 950);
  Got g = run_fused(c, at::kBFloat16, at::kBFloat16, at::kBFloat16);
  // One bf16 rounding of y and of dx: bound 4e-3 normwise; dw, db float32 sums.
  EXPECT_CLOSE_NORMWISE("bf16 y", to_vec(g.y), c.y.data, 4e-3);
  EXPECT_CLOSE_NORMWISE("bf16 dx", to_vec(g.gx), c.gx.data, 4e-3);
  EXPECT_CLOSE_NORMWISE("dw", to_vec(g.gw), c.g.w.data, 1e-5);
  EXPECT_CLOSE_NORMWISE("db", to_vec(g.gb), c.g.b.data, 1e-5);
}

// Dispatch of layer_norm_forward / layer_norm_matmul_input: the storage types ATen's autocast
// would give, the fused kernel only where it applies, and ATen's result within float32 rounding.
TEST(DifferentialLayerNorm, CudaDispatchMatchesAten) {
  REQUIRE_CUDA();
  strict_fp32();
  Case c = make_case(300, 256, at::kFloat, at::kFloat, 990);
  const at::Device dev(at::kCUDA);
  at::Tensor x = to_at(c.x, at::kFloat, dev), w = to_at(c.p.w, at::kFloat, dev),
             b = to_at(c.p.b, at::kFloat, dev);
  at::Tensor aten = at::layer_norm(x, {256}, w, b, 1e-5);
  at::Tensor fused = accel::layer_norm_forward(x, w, b);
  EXPECT_EQ(fused.scalar_type(), at::kFloat);
  // Two float32 computations of the same normalisation (different summation order): 1e-6.
  EXPECT_CLOSE_NORMWISE("fused vs ATen", to_vec(fused), to_vec(aten), 1e-6);
  {
    accel::Autocast autocast(accel::Precision::kBf16, dev);
    EXPECT_EQ(accel::layer_norm_forward(x, w, b).scalar_type(), at::kFloat);
    EXPECT_EQ(accel::layer_norm_matmul_input(x, w, b).scalar_type(), at::kBFloat16);
    EXPECT_EQ(accel::layer_norm_matmul_input(x.to(at::kBFloat16), w, b).scalar_type(),
              at::kBFloat16);
  }
  // No kernel for float64 or for a width without one: ATen (float64 stays float64).
  EXPECT_FALSE(accel::fused_layer_norm_applies(x.to(at::kDouble), w, b, at::kDouble));
  EXPECT_EQ(accel::layer_norm_forward(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble))
                .scalar_type(),
            at::kDouble);
  at::Tensor x96 = at::randn({10, 96}, x.options());
  EXPECT_FALSE(accel::fused_layer_norm_applies(x96, at::ones({96}, x.options()),
                                               at::zeros({96}, x.options()), at::kFloat));
  accel::set_custom_kernels(false);
  EXPECT_FALSE(accel::fused_layer_norm_applies(x, w, b, at::kFloat));
  accel::set_custom_kernels(true);
}

namespace {

// The residual form's case: stream x (float32, offset 3), branch r, the gradient gs that the sum
// receives from its other consumers (the next residual addition) and the LayerNorm's gradient gy.
struct AddCase {
  Tensor<double> x, r, gs, gy;
  ref::LayerNormParams<double> p;
  Tensor<double> sum, y, gsum;  // reference: sum = x + r, y = LN(sum), gsum = gs + LN's dx
  ref::LayerNormParams<double> g;
};

AddCase make_add_case(int64_t rows, int64_t C, c10::ScalarType r_stored, c10::ScalarType gy_stored,
                      uint64_t seed) {
  AddCase c;
  c.x = ref_randn({rows, C}, seed);
  for (auto& v : c.x.data) v += 3.0;
  c.r = ref_randn({rows, C}, seed + 1, 0.5);
  c.gs = ref_randn({rows, C}, seed + 2);
  c.gy = ref_randn({rows, C}, seed + 3);
  c.p.w = ref_randn({C}, seed + 4, 0.5);
  c.p.b = ref_randn({C}, seed + 5, 0.5);
  for (auto& v : c.p.w.data) v += 1.0;
  round_through(c.x, at::kFloat);
  round_through(c.r, r_stored);
  round_through(c.gs, at::kFloat);
  round_through(c.gy, gy_stored);
  round_through(c.p.w, at::kFloat);
  round_through(c.p.b, at::kFloat);
  c.sum = c.x;
  for (int64_t i = 0; i < c.sum.numel(); ++i) c.sum[i] += c.r[i];
  ref::LayerNormCache<double> cache;
  c.y = ref::layernorm_forward(c.sum, c.p, 1e-5, &cache);
  c.g.w = Tensor<double>({C});
  c.g.b = Tensor<double>({C});
  c.gsum = ref::layernorm_backward(c.sum, c.p, cache, c.gy, c.g);
  for (int64_t i = 0; i < c.gsum.numel(); ++i) c.gsum[i] += c.gs[i];
  return c;
}

struct AddGot {
  at::Tensor sum, y, gx, gr, gw, gb;
};
// fused: accel::fused_add_layer_norm; else x + r, then accel::fused_layer_norm (what a block ran
// before the fusion). with_gs: the sum also feeds something else (gradient gs), as in a block.
AddGot run_add(const AddCase& c, c10::ScalarType r_dtype, c10::ScalarType out_dtype,
               c10::ScalarType gy_dtype, bool with_gs, bool fused) {
  const at::Device dev(at::kCUDA);
  at::Tensor x = to_at(c.x, at::kFloat, dev).requires_grad_(true);
  at::Tensor r = to_at(c.r, r_dtype, dev).requires_grad_(true);
  at::Tensor w = to_at(c.p.w, at::kFloat, dev).requires_grad_(true);
  at::Tensor b = to_at(c.p.b, at::kFloat, dev).requires_grad_(true);
  at::Tensor sum, y;
  if (fused) {
    EXPECT_TRUE(accel::fused_add_layer_norm_applies(x, r, w, b, out_dtype));
    std::tie(sum, y) = accel::fused_add_layer_norm(x, r, w, b, 1e-5, out_dtype);
  } else {
    sum = x + r;
    y = accel::fused_layer_norm(sum, w, b, 1e-5, out_dtype);
  }
  EXPECT_EQ(sum.scalar_type(), at::kFloat);
  EXPECT_EQ(y.scalar_type(), out_dtype);
  const at::Tensor gy = to_at(c.gy, gy_dtype, dev);
  if (with_gs)
    torch::autograd::backward({sum, y}, {to_at(c.gs, at::kFloat, dev), gy});
  else
    torch::autograd::backward({y}, {gy});
  EXPECT_EQ(x.grad().scalar_type(), at::kFloat);
  EXPECT_EQ(r.grad().scalar_type(), r_dtype);
  return {sum, y, x.grad(), r.grad(), w.grad(), b.grad()};
}

}  // namespace

// Against the float64 reference: a bf16 branch and bf16 LayerNorm output / gradient (the autocast
// form of every block) and float32 throughout; rows = one decoder LayerNorm of a 64-clip step at
// width 256, 1,000 rows at the other widths.
TEST(DifferentialLayerNorm, CudaAddLayerNormMatchesReference) {
  REQUIRE_CUDA();
  // Width 256 at the step's row count; the other compiled widths with a partial last block.
  for (int64_t C : {int64_t(256), int64_t(64), int64_t(128), int64_t(512)})
    for (bool bf16 : {true, false}) {
      const auto t = bf16 ? at::kBFloat16 : at::kFloat;
      const std::string tag =
          "C=" + std::to_string(C) + (bf16 ? " bf16 branch / output: " : " float32: ");
      const int64_t rows = C == 256 ? 55296 : 1000;
      AddCase c = make_add_case(rows, C, t, t, (bf16 ? 1100 : 1200) + uint64_t(C));
      AddGot g = run_add(c, t, t, t, /*with_gs=*/true, /*fused=*/true);
      // The sum is x + r rounded once to float32: 1e-6 normwise.
      EXPECT_CLOSE_NORMWISE(tag + "sum", to_vec(g.sum), c.sum.data, 1e-6);
      // y: float32 arithmetic (1e-5), or one bf16 rounding (2^-9: 4e-3).
      EXPECT_CLOSE_NORMWISE(tag + "y", to_vec(g.y), c.y.data, bf16 ? 4e-3 : 1e-5);
      // The stream's gradient is float32 arithmetic on exact inputs: 1e-5; the branch's is the
      // same value rounded to the branch's type (4e-3 for bf16).
      EXPECT_CLOSE_NORMWISE(tag + "d stream", to_vec(g.gx), c.gsum.data, 1e-5);
      EXPECT_CLOSE_NORMWISE(tag + "d branch", to_vec(g.gr), c.gsum.data, bf16 ? 4e-3 : 1e-5);
      // Weight / bias gradients: float32 sums over 55,296 rows (as the plain form): 1e-5.
      EXPECT_CLOSE_NORMWISE(tag + "dw", to_vec(g.gw), c.g.w.data, 1e-5);
      EXPECT_CLOSE_NORMWISE(tag + "db", to_vec(g.gb), c.g.b.data, 1e-5);
    }
}

// The fusion changes no bit: forward and every gradient equal those of `x + r` followed by the
// fused LayerNorm under autograd (add, gradient accumulation, cast), for each storage type of the
// branch and of the output, with and without a second consumer of the sum, a partial last block
// (1000 rows) and the step's largest LayerNorm (55,296 rows).
TEST(DifferentialLayerNorm, CudaAddLayerNormEqualsUnfused) {
  REQUIRE_CUDA();
  for (auto rt : {at::kFloat, at::kBFloat16})
    for (auto yt : {at::kFloat, at::kBFloat16})
      for (bool with_gs : {true, false})
        for (int64_t rows : {int64_t(1000), int64_t(55296)}) {
          const std::string tag = std::string("branch ") + c10::toString(rt) + ", out " +
                                  c10::toString(yt) + (with_gs ? ", sum used twice" : "") +
                                  ", rows " + std::to_string(rows) + ": ";
          AddCase c = make_add_case(rows, 256, rt, yt, 1300 + uint64_t(rows));
          AddGot f = run_add(c, rt, yt, yt, with_gs, true);
          AddGot u = run_add(c, rt, yt, yt, with_gs, false);
          EXPECT_TRUE(at::equal(f.sum, u.sum)) << tag << "sum";
          EXPECT_TRUE(at::equal(f.y, u.y)) << tag << "y";
          EXPECT_TRUE(at::equal(f.gx, u.gx)) << tag << "d stream";
          EXPECT_TRUE(at::equal(f.gr, u.gr)) << tag << "d branch";
          EXPECT_TRUE(at::equal(f.gw, u.gw)) << tag << "dw";
          EXPECT_TRUE(at::equal(f.gb, u.gb)) << tag << "db";
        }
}

// Where the residual form does not apply: a bf16 stream (the sum would be bf16), shapes that
// differ (a broadcast), custom kernels off.
TEST(DifferentialLayerNorm, CudaAddLayerNormAppliesOnlyToItsForm) {
  REQUIRE_CUDA();
  const auto opt = at::TensorOptions().device(at::kCUDA);
  at::Tensor x = at::randn({10, 256}, opt), r = at::randn({10, 256}, opt).to(at::kBFloat16);
  at::Tensor w = at::ones({256}, opt), b = at::zeros({256}, opt);
  EXPECT_TRUE(accel::fused_add_layer_norm_applies(x, r, w, b, at::kBFloat16));
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x.to(at::kBFloat16), r, w, b, at::kBFloat16));
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x, r.slice(0, 0, 1), w, b, at::kBFloat16));
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x, r.to(at::kDouble), w, b, at::kFloat));
  accel::set_custom_kernels(false);
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x, r, w, b, at::kBFloat16));
  accel::set_custom_kernels(true);
  // The residual form runs the LayerNorm kernel: turning layer_norm off turns it off too.
  accel::set_custom_kernels_off("layer_norm");
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x, r, w, b, at::kBFloat16));
  accel::set_custom_kernels_off("add_layer_norm");
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x, r, w, b, at::kBFloat16));
  EXPECT_TRUE(accel::fused_layer_norm_applies(x, w, b, at::kBFloat16));
  accel::set_custom_kernels_off("");
}

// Without a GPU the fused kernel never applies (ATen's layer_norm runs); this part runs anywhere.
TEST(DifferentialLayerNorm, CpuNeverFused) {
  at::Tensor x = at::randn({4, 256}), w = at::ones({256}), b = at::zeros({256});
  EXPECT_FALSE(accel::fused_layer_norm_applies(x, w, b, at::kFloat));
  EXPECT_THROW(accel::fused_layer_norm(x, w, b, 1e-5, at::kFloat), std::invalid_argument);
  EXPECT_FALSE(accel::fused_add_layer_norm_applies(x, x, w, b, at::kFloat));
  EXPECT_THROW(accel::fused_add_layer_norm(x, x, w, b, 1e-5, at::kFloat), std::invalid_argument);
}
