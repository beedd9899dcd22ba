// Optimisers and schedules of reference/optim.h against hand-computed steps.
#include <gtest/gtest.h>

#include <cmath>

#include "reference/optim.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::ref::Tensor;

namespace {
std::vector<double> v1(double x) {
  return {x};
}
}  // namespace

// Scalar AdamW (β = 0.9/0.999, eps 1e-8, lr 0.1, wd 0.05), gradients 0.5, −0.25, 0.125.
// Step 1 by hand: p = 1·(1 − 0.005) − 0.1·0.5/(0.5 + 1e-8) = 0.895000002; steps 2-3 from the
// torch.optim.AdamW update written out in double (Python, independent of this code).
TEST(ReferenceOptim, AdamWMatchesHandComputedSteps) {
  Tensor<double> p({1, 1}, 1.0), g({1, 1});
  std::vector<std::pair<std::string, Tensor<double>*>> ps{{"w", &p}}, gs{{"w", &g}};
  auto refs = ref::make_param_refs<double>(ps, gs, 0.05);
  ASSERT_EQ(refs[0].weight_decay, 0.05);  // 2-D: decayed
  ref::AdamW<double> opt;
  const double want[] = {0.895000002, 0.8638912986978463, 0.8255289284131649};
  const double grads[] = {0.5, -0.25, 0.125};
  for (int s = 0; s < 3; ++s) {
    g[0] = grads[s];
    opt.step(refs, 0.1);
    // 1e-15: a few double roundings of O(1) values.
    EXPECT_CLOSE("adamw step " + std::to_string(s + 1), v1(p[0]), v1(want[s]), 1e-15, 0.0);
  }
}

// Biases and 1-D tensors get no weight decay (zero gradient: only the decay could move them,
// and Adam's update of a zero gradient is 0/(0 + eps) = 0).
TEST(ReferenceOptim, AdamWGroupsSkipDecayForBiasesAnd1D) {
  Tensor<double> w({2, 2}, 1.0), b({2}, 1.0), gw({2, 2}), gb({2});
  std::vector<std::pair<std::string, Tensor<double>*>> ps{{"fc.weight", &w}, {"fc.bias", &b}},
      gs{{"fc.weight", &gw}, {"fc.bias", &gb}};
  auto refs = ref::make_param_refs<double>(ps, gs, 0.05);
  ref::AdamW<double> opt(0.9, 0.95);
  opt.step(refs, 1e-3);
  EXPECT_EQ(b[0], 1.0);
  EXPECT_EQ(w[0], 1.0 - 1e-3 * 0.05);
  EXPECT_TRUE(ref::no_weight_decay("temp_embed", {24}));
  EXPECT_FALSE(ref::no_weight_decay("temp_embed", {1, 24, 1, 256}));  // >= 2-D: decayed (§5.2)
  EXPECT_TRUE(ref::no_weight_decay("decoder_pred.bias", {9, 1}));
}

// SGD momentum 0.9, lr 0.1: b = 0.5, p = 0.95; b = 0.45 − 0.25 = 0.2, p = 0.93.
TEST(ReferenceOptim, SgdMomentumMatchesHandComputedSteps) {
  Tensor<double> p({1}, 1.0), g({1});
  std::vector<std::pair<std::string, Tensor<double>*>> ps{{"head.fc.weight", &p}},
      gs{{"head.fc.weight", &g}};
  auto refs = ref::make_param_refs<double>(ps, gs, 0.0);
  ref::SgdMomentum<double> opt(0.9);
  g[0] = 0.5;
  opt.step(refs, 0.1);
  EXPECT_CLOSE("sgd step 1", v1(p[0]), v1(0.95), 1e-15, 0.0);  // one rounding
  g[0] = -0.25;
  opt.step(refs, 0.1);
  EXPECT_CLOSE("sgd step 2", v1(p[0]), v1(0.93), 1e-15, 0.0);
}

// hacm-spec §5.2: lr·e/20 in warmup, then min_lr + (lr − min_lr)·0.5·(1 + cos(π(e−20)/(E−20))).
TEST(ReferenceOptim, WarmupCosineSchedule) {
  const double lr = 1e-3, mn = 5e-4;
  EXPECT_CLOSE("e=0", v1(ref::lr_at(0, lr, mn, 20, 400)), v1(0.0), 1e-18, 0.0);
  EXPECT_CLOSE("e=10", v1(ref::lr_at(10, lr, mn, 20, 400)), v1(5e-4), 0.0, 1e-15);
  EXPECT_CLOSE("e=20", v1(ref::lr_at(20, lr, mn, 20, 400)), v1(1e-3), 0.0, 1e-15);
  EXPECT_CLOSE("e=210 (half way)", v1(ref::lr_at(210, lr, mn, 20, 400)), v1(7.5e-4), 0.0, 1e-15);
  EXPECT_CLOSE("e=400", v1(ref::lr_at(400, lr, mn, 20, 400)), v1(5e-4), 0.0, 1e-15);
  // Per-iteration e = epoch + it/iters: iteration 5 of 10 in epoch 3 -> e = 3.5.
  EXPECT_CLOSE("e=3.5", v1(ref::lr_at(3 + 5.0 / 10, lr, mn, 20, 400)), v1(1.75e-4), 0.0, 1e-15);
}

// hacm-spec §5.4: depth 8 -> 9 layers, scale 0.8^(9 − id).
TEST(ReferenceOptim, LayerwiseLrDecay) {
  EXPECT_EQ(ref::layer_id("joints_embed.proj.weight", 8), 0);
  EXPECT_EQ(ref::layer_id("pos_embed", 8), 0);
  EXPECT_EQ(ref::layer_id("temp_embed", 8), 0);
  EXPECT_EQ(ref::layer_id("blocks.0.norm1.weight", 8), 1);
  EXPECT_EQ(ref::layer_id("blocks.7.mlp.fc2.bias", 8), 8);
  EXPECT_EQ(ref::layer_id("norm.weight", 8), 9);
  EXPECT_EQ(ref::layer_id("head.fc1.weight", 8), 9);
  EXPECT_CLOSE("embed scale", v1(ref::layer_lr_scale("pos_embed", 8, 0.8)), v1(0.134217728), 0.0,
               1e-14);
  EXPECT_CLOSE("blocks.3 scale", v1(ref::layer_lr_scale("blocks.3.attn.qkv.weight", 8, 0.8)),
               v1(0.32768), 0.0, 1e-14);
  EXPECT_EQ(ref::layer_lr_scale("head.fc2.bias", 8, 0.8), 1.0);
  // The scale multiplies the lr of the step: SGD without momentum history on a blocks.7 weight.
  Tensor<double> p({1}, 0.0), g({1}, 1.0);
  std::vector<std::pair<std::string, Tensor<double>*>> ps{{"blocks.7.mlp.fc1.weight", &p}},
      gs{{"blocks.7.mlp.fc1.weight", &g}};
  auto refs = ref::make_param_refs<double>(ps, gs, 0.0, 0.8, 8);
  ref::SgdMomentum<double> opt;
  opt.step(refs, 1.0);
  EXPECT_CLOSE("scaled step", v1(p[0]), v1(-0.8), 0.0, 1e-15);
}
