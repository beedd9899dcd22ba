// Differential: one pre-LN block forward and backward, reference (Eigen, double) against
// accelerated (LibTorch float32, CPU and CUDA when present; autograd); and the accelerated block
// stack (fused residual additions) against its unfused composition.
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "accelerated/precision.h"
#include "accelerated/transformer.h"
#include "core/model_init.h"
#include "reference/hacm_model.h"
#include "tests/compare.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

TEST(DifferentialTransformer, BlockForwardBackward) {
  ModelShape s;
  s.dim = s.decoder_dim = 64;
  s.depth = s.decoder_depth = 1;
  s.frames = 12;
  ref::HacmConfig rc;
  rc.heads = 4;
  auto w = ref::HacmWeights<double>::load(
      ref::checkpoint_from_arrays<double>(init_pretrain_params(s, 81)), rc);
  ref::BlockParams<double>& p = w.blocks[0];
  // Off the 0 / 1 init, float-exact.
  Rng rng(82);
  for (Tensor<double>* t :
       {&p.norm1.w, &p.norm1.b, &p.qkv.b, &p.proj.b, &p.norm2.w, &p.norm2.b, &p.fc1.b, &p.fc2.b})
    for (auto& v : t->data) v = double(float(v + 0.05 * rng.normal()));
  Tensor<double> x = ref_randn({2, 20, 64}, 83), gout = ref_randn({2, 20, 64}, 84);
  for (auto& v : x.data) v = double(float(v));
  ref::BlockCache<double> cache;
  Tensor<double> y = ref::block_forward(x, p, 4, &cache);
  ref::BlockParams<double> g = ref::zeros_like(p);
  Tensor<double> gx = ref::block_backward(x, p, 4, cache, gout, g);
  std::map<std::string, Tensor<double>> pw, gw;
  ref::export_block(p, "blocks.0", pw);
  ref::export_block(g, "blocks.0", gw);
  for (at::Device dev : test_devices()) {
    if (dev.is_cuda()) strict_fp32();
    const std::string tag = dev_name(dev);
    accel::StateDict sd;
    for (const auto& [n, t] : pw) sd[n] = to_at(t, at::kFloat, dev).requires_grad_(true);
    at::Tensor xa = to_at(x, at::kFloat, dev).requires_grad_(true);
    at::Tensor ya = accel::block_forward(xa, sd, "blocks.0.", 4);
    ya.backward(to_at(gout, at::kFloat, dev));
    // float32 vs double through LN, attention and MLP: ~1e-7 relative, bound 1e-5 (forward),
    // 1e-4 (backward: products of two rounded factors, sums over 40 tokens).
    EXPECT_CLOSE_NORMWISE(tag + " block out", to_vec(ya), y.data, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + " block gin", to_vec(xa.grad()), gx.data, 1e-4);
    for (const auto& [n, t] : gw)
      EXPECT_CLOSE_NORMWISE(tag + " grad " + n, to_vec(sd.at(n).grad()), t.data, 1e-4);
  }
}

// block_stack_forward (residual additions deferred into the next LayerNorm, fused on CUDA) against
// block_forward `depth` times and the final LayerNorm: the same value and gradients. CPU: the
// same ATen ops in the same order, so equal to the bit. CUDA float32 and bf16 autocast: the
// forward equal to the bit (the fused kernel rounds as the unfused add + LayerNorm;
// diff_layer_norm checks that op alone, gradients included); the gradients within 1e-6 normwise,
// since cuDNN / cuBLAS backward kernels need not be run-to-run deterministic.
TEST(DifferentialTransformer, BlockStackIsBlocksThenNorm) {
  ModelShape s;
  s.dim = s.decoder_dim = 64;
  s.depth = 3;
  s.decoder_depth = 1;
  s.frames = 12;
  const auto params = init_pretrain_params(s, 91);
  // Drop path (the fine-tuning encoder's stochastic depth): the same masks in both runs, from
  // torch's generator seeded alike and drawn in the same order.
  const std::vector<double> rates{0.1, 0.2, 0.3};
  for (at::Device dev : test_devices())
    for (bool bf16 : {false, true})
      for (bool drop : {false, true}) {
        if (bf16 && !dev.is_cuda()) continue;
        if (dev.is_cuda()) strict_fp32();
        const std::string tag =
            std::string(dev_name(dev)) + (bf16 ? " bf16" : "") + (drop ? " drop path" : "");
        auto run = [&](bool stacked) {
          at::manual_seed(5);
          accel::StateDict sd;
          for (const auto& [n, a] : params) {
            if (n.rfind("blocks.", 0) != 0 && n.rfind("norm.", 0) != 0) continue;
            at::Tensor t = accel::to_tensor(a, at::kFloat);
            // Off the 1 / 0 init of the LayerNorms and biases, the same values for both runs.
            if (t.dim() == 1) t = t + 0.1 * at::arange(t.numel(), t.options()).sin();
            sd[n] = t.to(dev).requires_grad_(true);
          }
          at::Tensor x = to_at(ref_randn({2, 20, 64}, 93), at::kFloat, dev).requires_grad_(true);
          at::Tensor y;
          {
            accel::Autocast ac(bf16 ? accel::Precision::kBf16 : accel::Precision::kFp32, dev);
            if (stacked) {
              y = accel::block_stack_forward(x, sd, "blocks.", 3, 4, "norm.", false,
                                             drop ? rates : std::vector<double>{});
            } else {
              at::Tensor z = x;
              for (int i = 0; i < 3; ++i)
                z = accel::block_forward(z, sd, "blocks." + std::to_string(i) + ".", 4,
                                         drop ? rates[size_t(i)] : 0.0);
              y = accel::layer_norm_forward(z, sd.at("norm.weight"), sd.at("norm.bias"));
            }
          }
          y.backward(to_at(ref_randn({2, 20, 64}, 94), at::kFloat, dev).to(y.scalar_type()));
          std::map<std::string, at::Tensor> out{{"y", y.detach()}, {"dx", x.grad()}};
          for (const auto& [n, t] : sd) out["d " + n] = t.grad();
          return out;
        };
        const auto a = run(true), b = run(false);
        ASSERT_EQ(a.size(), b.size());
        EXPECT_TRUE(at::equal(a.at("y"), b.at("y"))) << tag << " forward";
        for (const auto& [n, t] : a) {
          ASSERT_TRUE(t.defined()) << tag << " " << n;
          if (dev.is_cuda())
            EXPECT_CLOSE_NORMWISE(tag + " " + n, to_vec(t), to_vec(b.at(n)), 1e-6);
          else
            EXPECT_TRUE(at::equal(t, b.at(n))) << tag << " " << n;
        }
      }
}
