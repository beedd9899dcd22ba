// Differential: accel::linear_forward's CUDA path (ATen matmuls + the column-sum kernel for the
// bias gradient, accelerated/kernels/column_sum.cu) against ref::linear_forward / linear_backward
// (Eigen, double), and accel::linear_gelu_forward (fc1 + GELU; GELU backward and bias gradient by
// kernels/gelu.cu) against ref::linear_* + ref::gelu_*. CUDA only for the custom paths; on the
// CPU both are ATen's ops (checked here to be exactly those).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "accelerated/custom_kernels.h"
#include "accelerated/fused_linear.h"
#include "accelerated/precision.h"
#include "reference/transformer.h"
#include "tests/compare.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

struct Case {
  Tensor<double> x, gout;       // [B, N, in], [B, N, out]
  ref::LinearParams<double> p;  // w [out, in], b [out]
  Tensor<double> y, gx;         // reference forward and input gradient
  ref::LinearParams<double> g;  // reference weight / bias gradients
};

// Inputs rounded to `st` so both sides start from the same numbers. gelu: the reference is
// gelu(linear(x)) (fc1 + activation), with weights of std 1.5/sqrt(in) so that the
// pre-activations spread over ~1.5 and both GELU tails and its bend are exercised.
Case make_case(int64_t B, int64_t N, int64_t in, int64_t out, c10::ScalarType st, uint64_t seed,
               bool gelu = false) {
  Case c;
  c.x = ref_randn({B, N, in}, seed);
  c.gout = ref_randn({B, N, out}, seed + 1);
  c.p.w = ref_randn({out, in}, seed + 2, gelu ? 1.5 / std::sqrt(double(in)) : 0.05);
  c.p.b = ref_randn({out}, seed + 3, 0.5);
  for (Tensor<double>* t : {&c.x, &c.gout, &c.p.w, &c.p.b}) round_through(*t, st);
  const Tensor<double> h = ref::linear_forward(c.x, c.p);
  c.y = gelu ? ref::gelu_forward(h) : h;
  c.g.w = Tensor<double>({out, in});
  c.g.b = Tensor<double>({out});
  c.gx = ref::linear_backward(c.x, c.p, gelu ? ref::gelu_backward(h, c.gout) : c.gout, c.g);
  return c;
}

struct Got {
  at::Tensor y, gx, gw, gb;
};
// accel::linear_forward, or with gelu accel::linear_gelu_forward, forward and backward.
Got run(const Case& c, at::Device dev, c10::ScalarType x_dtype, bool gelu = false) {
  at::Tensor x = to_at(c.x, x_dtype, dev).requires_grad_(true);
  at::Tensor w = to_at(c.p.w, at::kFloat, dev).requires_grad_(true);
  at::Tensor b = to_at(c.p.b, at::kFloat, dev).requires_grad_(true);
  at::Tensor y = gelu ? accel::linear_gelu_forward(x, w, b) : accel::linear_forward(x, w, b);
  y.backward(to_at(c.gout, y.scalar_type(), dev));
  EXPECT_EQ(x.grad().scalar_type(), x_dtype);
  EXPECT_EQ(w.grad().scalar_type(), at::kFloat);
  EXPECT_EQ(b.grad().scalar_type(), at::kFloat);
  return {y, x.grad(), w.grad(), b.grad()};
}
// The same with custom kernels off (ATen's ops and autograd's backward), for the A/B checks.
Got run_aten(const Case& c, at::Device dev, c10::ScalarType x_dtype, bool gelu = false) {
  accel::set_custom_kernels(false);
  Got g = run(c, dev, x_dtype, gelu);
  accel::set_custom_kernels(true);
  return g;
}

}  // namespace

// float32, TF32 off: the shapes of the HA-CM decoder's four linears (rows = 2 x 216 tokens), and
// 55,296 rows for the multi-block bias sums.
TEST(DifferentialLinear, CudaFloat32MatchesReference) {
  REQUIRE_CUDA();
  strict_fp32();
  const at::Device dev(at::kCUDA);
  struct Shape {
    int64_t B, N, in, out;
  };
  for (Shape s : {Shape{2, 216, 256, 768}, Shape{2, 216, 256, 1024}, Shape{2, 216, 1024, 256},
                  Shape{1, 7, 64, 12}, Shape{128, 432, 64, 256}}) {
    const std::string tag =
        std::to_string(s.B * s.N) + " rows " + std::to_string(s.in) + "->" + std::to_string(s.out);
    Case c = make_case(s.B, s.N, s.in, s.out, at::kFloat, 700 + uint64_t(s.out + s.N));
    at::Tensor xprobe = at::empty({1, s.in}, at::TensorOptions().device(dev));
    EXPECT_TRUE(accel::fused_linear_applies(xprobe, at::empty({s.out, s.in}, xprobe.options()),
                                            at::empty({s.out}, xprobe.options())));
    Got g = run(c, dev, at::kFloat);
    // float32 matmuls over `in` terms and bias sums over up to 55,296 rows (float32 partials of
    // a few hundred rows, then a fixed-order sum): bound 1e-5 normwise, 1e-4 for the weight
    // gradient (sums over all rows of products).
    EXPECT_CLOSE_NORMWISE(tag + " y", to_vec(g.y), c.y.data, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + " dx", to_vec(g.gx), c.gx.data, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + " dw", to_vec(g.gw), c.g.w.data, 1e-4);
    EXPECT_CLOSE_NORMWISE(tag + " db", to_vec(g.gb), c.g.b.data, 1e-5);
  }
}

// bf16 autocast: operands cast to bf16 as at::linear would, bias gradient summed in float32.
TEST(DifferentialLinear, CudaBf16AutocastMatchesReference) {
  REQUIRE_CUDA();
  const at::Device dev(at::kCUDA);
  Case c = make_case(8, 432, 256, 768, at::kBFloat16, 800);
  accel::Autocast autocast(accel::Precision::kBf16, dev);
  Got g = run(c, dev, at::kBFloat16);
  EXPECT_EQ(g.y.scalar_type(), at::kBFloat16);
  // Inputs exact in bf16; y and dx rounded once to bf16 (2^-9 relative) after float32
  // accumulation: 4e-3. dw: exact products of bf16 operands summed in float32 over 3,456 rows and
  // written as float32 (not rounded to bf16): 1e-5. db: float32 sums of exact bf16 values: 1e-5.
  EXPECT_CLOSE_NORMWISE("bf16 y", to_vec(g.y), c.y.data, 4e-3);
  EXPECT_CLOSE_NORMWISE("bf16 dx", to_vec(g.gx), c.gx.data, 4e-3);
  EXPECT_CLOSE_NORMWISE("dw (float32 accumulator)", to_vec(g.gw), c.g.w.data, 1e-5);
  EXPECT_CLOSE_NORMWISE("db (float32 sum)", to_vec(g.gb), c.g.b.data, 1e-5);
}

// With custom kernels off, or an odd width, linear_forward is at::linear (autograd's own
// backward); both paths agree on CUDA within float32 rounding.
TEST(DifferentialLinear, CudaCustomAndAtenAgree) {
  REQUIRE_CUDA();
  strict_fp32();
  const at::Device dev(at::kCUDA);
  Case c = make_case(4, 100, 64, 256, at::kFloat, 850);
  Got fused = run(c, dev, at::kFloat);
  Got aten = run_aten(c, dev, at::kFloat);
  EXPECT_CLOSE_NORMWISE("y", to_vec(fused.y), to_vec(aten.y), 1e-6);
  EXPECT_CLOSE_NORMWISE("db", to_vec(fused.gb), to_vec(aten.gb), 1e-6);
  at::Tensor x = at::randn({3, 64}, at::TensorOptions().device(dev));
  EXPECT_FALSE(accel::fused_linear_applies(x, at::randn({13, 64}, x.options()),
                                           at::randn({13}, x.options())));
}

// On the CPU linear_forward is at::linear: identical bits, forward and backward.
TEST(DifferentialLinear, CpuIsAtenLinear) {
  Case c = make_case(2, 30, 64, 96, at::kFloat, 900);
  Got ours = run(c, at::kCPU, at::kFloat);
  at::Tensor x = to_at(c.x, at::kFloat, at::kCPU).requires_grad_(true);
  at::Tensor w = to_at(c.p.w, at::kFloat, at::kCPU).requires_grad_(true);
  at::Tensor b = to_at(c.p.b, at::kFloat, at::kCPU).requires_grad_(true);
  at::Tensor y = at::linear(x, w, b);
  y.backward(to_at(c.gout, at::kFloat, at::kCPU));
  EXPECT_TRUE(at::equal(ours.y, y));
  EXPECT_TRUE(at::equal(ours.gx, x.grad()));
  EXPECT_TRUE(at::equal(ours.gw, w.grad()));
  EXPECT_TRUE(at::equal(ours.gb, b.grad()));
  // And the float64 reference agrees within float32 rounding (the test's own sanity).
  EXPECT_CLOSE_NORMWISE("cpu y", to_vec(ours.y), c.y.data, 1e-5);
  EXPECT_FALSE(accel::fused_linear_applies(x, w, b));
}

// accel::column_sum directly: the kernel for float32 and bf16 (float32 sums), ATen for an odd
// width and for a view that starts 2 bytes into its storage (no 8-byte alignment). Reference: the
// float64 sum of the same (exactly representable) values.
TEST(DifferentialLinear, CudaColumnSumMatchesDouble) {
  REQUIRE_CUDA();
  const auto opt = at::TensorOptions().device(at::kCUDA);
  for (c10::ScalarType st : {at::kFloat, at::kBFloat16})
    for (int64_t cols : {int64_t(2), int64_t(256), int64_t(1024), int64_t(13)}) {
      const at::Tensor x = at::randn({11008, cols}, opt).to(st);
      const at::Tensor got = accel::column_sum(x);
      EXPECT_EQ(got.scalar_type(), at::kFloat);
      // float32 sums of 11,008 exact values (partials of a few dozen rows, then a fixed order):
      // bound 1e-5 normwise.
      EXPECT_CLOSE_NORMWISE(std::string(c10::toString(st)) + " cols=" + std::to_string(cols),
                            to_vec(got), to_vec(x.to(at::kDouble).sum(0)), 1e-5);
    }
  const at::Tensor base = at::randn({1 + 64 * 100}, opt).to(at::kBFloat16);
  const at::Tensor view = base.narrow(0, 1, 64 * 100).view({100, 64});  // 2-byte offset
  EXPECT_CLOSE_NORMWISE("misaligned view (ATen)", to_vec(accel::column_sum(view)),
                        to_vec(view.to(at::kDouble).sum(0)), 1e-5);
}

// On the CPU column_sum is ATen's float32 sum.
TEST(DifferentialLinear, CpuColumnSumIsAten) {
  const at::Tensor x = at::randn({300, 12});
  EXPECT_TRUE(at::equal(accel::column_sum(x), x.sum(0, false, at::kFloat)));
}

// float32 (TF32 off): an encoder fc1 (256 -> 1024) over 11,008 rows and a small odd-row case.
TEST(DifferentialLinear, CudaLinearGeluFloat32MatchesReference) {
  REQUIRE_CUDA();
  strict_fp32();
  const at::Device dev(at::kCUDA);
  for (int64_t rows : {int64_t(7), int64_t(11008)}) {
    const std::string tag = std::to_string(rows) + " rows: ";
    Case c = make_case(1, rows, 256, 1024, at::kFloat, 1000 + uint64_t(rows), true);
    Got g = run(c, dev, at::kFloat, true);
    // float32 matmul over 256 terms and float32 erf / exp (a few ulp): 1e-5 normwise; the weight
    // gradient sums products over all rows: 1e-4; the bias gradient float32 sums of dh: 1e-5.
    EXPECT_CLOSE_NORMWISE(tag + "y", to_vec(g.y), c.y.data, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + "dx", to_vec(g.gx), c.gx.data, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + "dw", to_vec(g.gw), c.g.w.data, 1e-4);
    EXPECT_CLOSE_NORMWISE(tag + "db", to_vec(g.gb), c.g.b.data, 1e-5);
  }
}

// bf16 autocast, a decoder fc1's shape (55,296 rows): everything stored in bf16, float32 inside.
TEST(DifferentialLinear, CudaLinearGeluBf16MatchesReference) {
  REQUIRE_CUDA();
  const at::Device dev(at::kCUDA);
  Case c = make_case(1, 55296, 256, 1024, at::kBFloat16, 1100, true);
  accel::Autocast autocast(accel::Precision::kBf16, dev);
  Got g = run(c, dev, at::kBFloat16, true);
  EXPECT_EQ(g.y.scalar_type(), at::kBFloat16);
  // Two bf16 roundings on the way (the pre-activation, then y or dh) after float32 arithmetic:
  // 2 x 2^-9 ~ 4e-3 each, bound 8e-3 normwise; dw, dx one more bf16 rounding of the summed
  // products: 8e-3. db: float32 sums of the stored bf16 dh (two roundings each): 8e-3.
  EXPECT_CLOSE_NORMWISE("bf16 y", to_vec(g.y), c.y.data, 8e-3);
  EXPECT_CLOSE_NORMWISE("bf16 dx", to_vec(g.gx), c.gx.data, 8e-3);
  EXPECT_CLOSE_NORMWISE("bf16 dw", to_vec(g.gw), c.g.w.data, 8e-3);
  EXPECT_CLOSE_NORMWISE("db", to_vec(g.gb), c.g.b.data, 8e-3);
}

// The fused backward against the unfused ATen path on CUDA (custom kernels off: at::linear, then
// at::gelu with autograd's GeluBackward and sum): float32 arithmetic both, bound 1e-6 normwise.
// Output widths: 256 (whole column blocks), 200 (a partial last block) and 99 (odd: the kernel
// declines, ATen's GELU backward and the column sum run).
TEST(DifferentialLinear, CudaLinearGeluAgreesWithAten) {
  REQUIRE_CUDA();
  strict_fp32();
  const at::Device dev(at::kCUDA);
  for (int64_t out : {int64_t(256), int64_t(200), int64_t(99)}) {
    const std::string tag = "out " + std::to_string(out) + ": ";
    Case c = make_case(1, 300, 64, out, at::kFloat, 1200 + uint64_t(out), true);
    Got fused = run(c, dev, at::kFloat, true);
    Got aten = run_aten(c, dev, at::kFloat, true);
    EXPECT_CLOSE_NORMWISE(tag + "y", to_vec(fused.y), to_vec(aten.y), 1e-6);
    EXPECT_CLOSE_NORMWISE(tag + "dx", to_vec(fused.gx), to_vec(aten.gx), 1e-6);
    EXPECT_CLOSE_NORMWISE(tag + "dw", to_vec(fused.gw), to_vec(aten.gw), 1e-6);
    EXPECT_CLOSE_NORMWISE(tag + "db", to_vec(fused.gb), to_vec(aten.gb), 1e-6);
  }
}

// On the CPU linear_gelu_forward is at::gelu(at::linear): identical bits, forward and backward;
// and within float32 rounding of the float64 reference.
TEST(DifferentialLinear, CpuLinearGeluIsAten) {
  Case c = make_case(1, 40, 64, 96, at::kFloat, 1300, true);
  Got ours = run(c, at::kCPU, at::kFloat, true);
  at::Tensor x = to_at(c.x, at::kFloat, at::kCPU).requires_grad_(true);
  at::Tensor w = to_at(c.p.w, at::kFloat, at::kCPU).requires_grad_(true);
  at::Tensor b = to_at(c.p.b, at::kFloat, at::kCPU).requires_grad_(true);
  at::Tensor y = at::gelu(at::linear(x, w, b));
  y.backward(to_at(c.gout, at::kFloat, at::kCPU));
  EXPECT_TRUE(at::equal(ours.y, y));
  EXPECT_TRUE(at::equal(ours.gx, x.grad()));
  EXPECT_TRUE(at::equal(ours.gw, w.grad()));
  EXPECT_TRUE(at::equal(ours.gb, b.grad()));
  // float32 vs double: 1e-5 forward, 1e-4 for gradients (products of rounded factors).
  EXPECT_CLOSE_NORMWISE("cpu y", to_vec(ours.y), c.y.data, 1e-5);
  EXPECT_CLOSE_NORMWISE("cpu dx", to_vec(ours.gx), c.gx.data, 1e-4);
  EXPECT_CLOSE_NORMWISE("cpu db", to_vec(ours.gb), c.g.b.data, 1e-4);
}
