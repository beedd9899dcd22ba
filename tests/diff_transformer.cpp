// Differential: one pre-LN block forward and backward, reference (Eigen, double) against
// accelerated (LibTorch float32, CPU and CUDA when present; autograd).
#include <ATen/ATen.h>

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
