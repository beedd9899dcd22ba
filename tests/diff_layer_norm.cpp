// Differential: the fused LayerNorm CUDA kernel (accelerated/kernels/layer_norm.cu, through
// accel::fused_layer_norm and its autograd backward) against the reference
// ref::layernorm_forward / layernorm_backward (Eigen, double). CUDA only: on the CPU
// layer_norm_forward is ATen's layer_norm, covered by diff_transformer.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

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
  for (int64_t C : {64, 256, 512})
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

// Without a GPU the fused kernel never applies (ATen's layer_norm runs); this part runs anywhere.
TEST(DifferentialLayerNorm, CpuNeverFused) {
  at::Tensor x = at::randn({4, 256}), w = at::ones({256}), b = at::zeros({256});
  EXPECT_FALSE(accel::fused_layer_norm_applies(x, w, b, at::kFloat));
  EXPECT_THROW(accel::fused_layer_norm(x, w, b, 1e-5, at::kFloat), std::invalid_argument);
}
