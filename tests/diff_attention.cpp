// Differential: the attention kernels for head dimension 32 (accelerated/kernels/attention.cu:
// forward only through accel::fused_attention, and forward + backward through
// accel::fused_attention_training, as attention_forward takes them) against float64 attention on
// the same bf16 values and against ATen's scaled_dot_product_attention. CUDA only; on the CPU the
// kernels never apply.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "accelerated/custom_kernels.h"
#include "accelerated/fused_attention.h"
#include "accelerated/precision.h"
#include "accelerated/transformer.h"
#include "tests/compare.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;

namespace {

// softmax(q kᵀ / sqrt(32)) v per head in float64 from qkv [B, N, 3d] -> [B, N, d].
at::Tensor attention_double(const at::Tensor& qkv, int64_t heads) {
  const int64_t B = qkv.size(0), N = qkv.size(1), d = qkv.size(2) / 3, hd = d / heads;
  at::Tensor x = qkv.to(at::kDouble).view({B, N, 3, heads, hd}).permute({2, 0, 3, 1, 4});
  at::Tensor q = x[0], k = x[1], v = x[2];  // [B, h, N, hd]
  at::Tensor p = at::softmax(at::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(hd)), -1);
  return at::matmul(p, v).transpose(1, 2).reshape({B, N, d});
}

// The block attention's parameters ("attn." prefix) for width d, from the caller's seed of
// at::manual_seed, scaled so that the scores spread over a few units.
accel::StateDict attention_params(int64_t d, const at::TensorOptions& opt) {
  accel::StateDict sd;
  sd["attn.qkv.weight"] = at::randn({3 * d, d}, opt) * 0.08;
  sd["attn.qkv.bias"] = at::randn({3 * d}, opt) * 0.1;
  sd["attn.proj.weight"] = at::randn({d, d}, opt) * 0.06;
  sd["attn.proj.bias"] = at::randn({d}, opt) * 0.1;
  return sd;
}

}  // namespace

// Token counts around the 64-key tiles (1, 7, 63, 64, 65, 86 = an encoder's kept tokens, 432 = a
// decoder's / the feature pass's tokens) and the model's 8 heads; scores spread over ~±6 (q, k of
// std 1.5) so the softmax is far from uniform.
// Both forward kernels: the one with the softmax in registers (mma.sync, the default) and the
// WMMA one (attention_mma off).
TEST(DifferentialAttention, CudaForwardMatchesDouble) {
  REQUIRE_CUDA();
  at::NoGradGuard no_grad;
  const auto opt = at::TensorOptions().device(at::kCUDA);
  for (const std::string off : {"", "attention_mma"}) {
    at::manual_seed(7);
    accel::set_custom_kernels_off(off);
    for (int64_t n : {1, 7, 63, 64, 65, 86, 432}) {
      const int64_t B = 3, heads = 8, d = 256;
      at::Tensor qkv = (at::randn({B, n, 3 * d}, opt) * 1.5).to(at::kBFloat16);
      ASSERT_TRUE(accel::fused_attention_applies(qkv, heads));
      const at::Tensor got = accel::fused_attention(qkv, heads);
      EXPECT_EQ(got.scalar_type(), at::kBFloat16);
      const at::Tensor want = attention_double(qkv, heads);
      // P rounded to bf16 before P V (as FlashAttention does; relative 2^-9 per weight, averaging
      // over the keys) and the output rounded to bf16 once (2^-9): bound 8e-3 normwise (a
      // float32 emulation of the register kernel's fragments gives <= 8.2e-4).
      EXPECT_CLOSE_NORMWISE((off.empty() ? "mma n=" : "wmma n=") + std::to_string(n), to_vec(got),
                            to_vec(want), 8e-3);
    }
  }
  accel::set_custom_kernels_off("");
}

// attention_forward (the block's attention with its projections) takes the kernel without
// gradient and ATen's SDPA with gradient; under bf16 autocast both agree within bf16 rounding.
TEST(DifferentialAttention, CudaNoGradPathAgreesWithSdpa) {
  REQUIRE_CUDA();
  const at::Device dev(at::kCUDA);
  at::manual_seed(8);
  const int64_t B = 4, N = 432, d = 256, heads = 8;
  auto fopt = at::TensorOptions().device(dev);
  const accel::StateDict sd = attention_params(d, fopt);
  const at::Tensor x = at::randn({B, N, d}, fopt);
  accel::Autocast autocast(accel::Precision::kBf16, dev);
  at::Tensor fused, sdpa;
  {
    at::NoGradGuard no_grad;
    fused = accel::attention_forward(x, sd, "attn.", heads);
    accel::set_custom_kernels_off("attention_forward");
    sdpa = accel::attention_forward(x, sd, "attn.", heads);
    accel::set_custom_kernels_off("");
  }
  // Two bf16 computations of the same attention (P rounded differently) followed by the same
  // projection: 1e-2 normwise.
  EXPECT_CLOSE_NORMWISE("no-grad kernel vs SDPA", to_vec(fused), to_vec(sdpa), 1e-2);
  // With gradient wanted, the forward-only kernel does not apply (the training one does).
  at::Tensor qkv = at::randn({B, N, 3 * d}, fopt).to(at::kBFloat16).requires_grad_(true);
  EXPECT_FALSE(accel::fused_attention_applies(qkv, heads));
  EXPECT_TRUE(accel::fused_attention_training_applies(qkv, heads));
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(accel::fused_attention_applies(qkv, heads));
    EXPECT_FALSE(accel::fused_attention_applies(qkv.to(at::kFloat), heads));  // bf16 only
    EXPECT_FALSE(accel::fused_attention_applies(qkv, 4));                     // head dim 64
  }
}

// The training path (forward saving the log-sum-exp, backward writing the packed qkv gradient)
// against float64 autograd of the same attention, token counts around the tiles. (One token is
// left out: its dq, dk are exactly 0 in float64 and rounding noise here, with no scale to
// compare against.)
TEST(DifferentialAttention, CudaTrainingMatchesDouble) {
  REQUIRE_CUDA();
  const auto opt = at::TensorOptions().device(at::kCUDA);
  // Every pairing of the forward (register / WMMA) and backward (register / WMMA) kernels.
  for (const std::string off :
       {"", "attention_mma", "attention_mma_backward", "attention_mma,attention_mma_backward"}) {
    at::manual_seed(9);
    accel::set_custom_kernels_off(off);
    for (int64_t n : {7, 64, 65, 86, 432}) {
      const int64_t B = 3, heads = 8, d = 256;
      const at::Tensor base = (at::randn({B, n, 3 * d}, opt) * 1.5).to(at::kBFloat16);
      const at::Tensor dout = at::randn({B, n, d}, opt).to(at::kBFloat16);
      at::Tensor qkv = base.clone().requires_grad_(true);
      ASSERT_TRUE(accel::fused_attention_training_applies(qkv, heads));
      at::Tensor out = accel::fused_attention_training(qkv, heads);
      out.backward(dout);
      at::Tensor ref_in = base.to(at::kDouble).requires_grad_(true);
      at::Tensor ref_out = attention_double(ref_in, heads);
      ref_out.backward(dout.to(at::kDouble));
      const std::string tag = "[off: " + off + "] n=" + std::to_string(n) + " ";
      // Forward: as the forward-only kernel (8e-3). Gradients: P and dS rounded to bf16 before
      // their products, then the results rounded to bf16; float32 emulations of the schemes give
      // up to 6.3e-3 (WMMA) and 3.1e-3 (registers): bound 1.5e-2 normwise for each of dq, dk, dv.
      EXPECT_CLOSE_NORMWISE(tag + "out", to_vec(out), to_vec(ref_out), 8e-3);
      const at::Tensor g = qkv.grad(), gr = ref_in.grad();
      ASSERT_EQ(g.scalar_type(), at::kBFloat16);
      for (int part = 0; part < 3; ++part)
        EXPECT_CLOSE_NORMWISE(tag + (part == 0   ? "dq"
                                     : part == 1 ? "dk"
                                                 : "dv"),
                              to_vec(g.narrow(2, part * d, d)), to_vec(gr.narrow(2, part * d, d)),
                              1.5e-2);
    }
  }
  accel::set_custom_kernels_off("");
}

// The block attention with its projections under bf16 autocast, forward and backward: the
// training kernel against ATen's SDPA (attention_training switched off). Gradients of the input
// and of the projection weights agree within bf16 rounding of two different computations.
TEST(DifferentialAttention, CudaTrainingPathAgreesWithSdpa) {
  REQUIRE_CUDA();
  const at::Device dev(at::kCUDA);
  at::manual_seed(10);
  const int64_t B = 4, N = 432, d = 256, heads = 8;
  auto fopt = at::TensorOptions().device(dev);
  const accel::StateDict init = attention_params(d, fopt);
  const at::Tensor x0 = at::randn({B, N, d}, fopt), gy = at::randn({B, N, d}, fopt);
  auto run = [&](bool kernel) {
    accel::StateDict sd;
    for (const auto& [k, v] : init) sd[k] = v.clone().requires_grad_(true);
    at::Tensor x = x0.clone().requires_grad_(true);
    accel::set_custom_kernels_off(kernel ? "" : "attention_training");
    at::Tensor y;
    {
      accel::Autocast autocast(accel::Precision::kBf16, dev);
      y = accel::attention_forward(x, sd, "attn.", heads);
    }
    y.backward(gy.to(y.scalar_type()));
    accel::set_custom_kernels_off("");
    std::vector<at::Tensor> r{y.detach().to(at::kFloat), x.grad()};
    for (const auto& [k, v] : sd) r.push_back(v.grad());
    return r;
  };
  const auto a = run(true), b = run(false);
  const char* names[] = {"y", "dx", "proj.bias", "proj.weight", "qkv.bias", "qkv.weight"};
  // bf16 activations and gradients computed two ways: 2e-2 normwise.
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_CLOSE_NORMWISE(std::string("kernel vs SDPA ") + names[i], to_vec(a[i]), to_vec(b[i]),
                          2e-2);
}

// On the CPU the kernels never apply.
TEST(DifferentialAttention, CpuNeverFused) {
  at::NoGradGuard no_grad;
  const at::Tensor qkv = at::zeros({2, 10, 768}, at::kBFloat16);
  EXPECT_FALSE(accel::fused_attention_applies(qkv, 8));
  EXPECT_THROW(accel::fused_attention(qkv, 8), std::invalid_argument);
  const at::Tensor qkv_grad = at::zeros({2, 10, 768}, at::kBFloat16).requires_grad_(true);
  at::GradMode::set_enabled(true);
  EXPECT_FALSE(accel::fused_attention_training_applies(qkv_grad, 8));
}
