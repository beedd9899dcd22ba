// Accelerated downstream encoder and heads against hacm_downstream.npz (eval mode) and the MAMP
// pre-training forward against mamp_forward.npz. float64, README §5 bound 1e-10 normwise.
#include <ATen/ATen.h>

#include "accelerated/downstream.h"
#include "accelerated/mamp.h"
#include "tests/accel_util.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;

namespace {
accel::StateDict load(const std::string& file, at::Device dev) {
  accel::StateDict sd = accel::load_state_dict(golden(file), at::kDouble);
  for (auto& [k, v] : sd) v = v.to(dev);
  return sd;
}
}  // namespace

TEST(AcceleratedDownstreamGolden, CpuDoubleLinprobeAndFinetuneLogits) {
  REQUIRE_FIXTURE(golden("hacm_downstream.npz"));
  NpzReader g(golden("hacm_downstream.npz"));
  accel::StateDict sd = load("weights_hacm.npz", at::kCPU);
  for (auto& [k, v] : load("weights_heads.npz", at::kCPU)) sd[k] = v;
  accel::EncoderConfig cfg;
  cfg.depth = g.get("cfg_depth").at_i64(0);
  cfg.heads = g.get("cfg_heads").at_i64(0);
  cfg.idx_kept = {2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 24};
  at::Tensor x5 = golden_tensor(g, "x5");
  at::Tensor tokens = accel::downstream_encoder_forward(sd, cfg, x5);
  at::Tensor feat = accel::linprobe_features_forward(tokens);
  EXPECT_CLOSE_NORMWISE("feat_linprobe", to_vec(feat), g.get("feat_linprobe").to_f64(), 1e-10);
  // The plain model's head is the bare fc (named head.fc in the model; the golden fc weights are
  // main_linprobe's `fc.1` inside its BatchNorm wrapper).
  at::Tensor plain = accel::linprobe_head_forward(feat, sd, "linprobe.head.fc.1.", "", false);
  EXPECT_CLOSE_NORMWISE("logits_linprobe", to_vec(plain), g.get("logits_linprobe").to_f64(), 1e-10);
  at::Tensor bn =
      accel::linprobe_head_forward(feat, sd, "linprobe.head.fc.1.", "linprobe.head.fc.0.", false);
  EXPECT_CLOSE_NORMWISE("logits_linprobe_bn", to_vec(bn), g.get("logits_linprobe_bn").to_f64(),
                        1e-10);
  at::Tensor bnb =
      accel::linprobe_head_forward(feat, sd, "linprobe.head.fc.1.", "linprobe.head.fc.0.", true);
  EXPECT_CLOSE_NORMWISE("logits_linprobe_bn_batchstats", to_vec(bnb),
                        g.get("logits_linprobe_bn_batchstats").to_f64(), 1e-10);
  at::Tensor ffeat, fc1;
  at::Tensor ft =
      accel::finetune_head_forward(tokens, sd, "finetune.head.", false, 0.0, &ffeat, &fc1);
  EXPECT_CLOSE_NORMWISE("feat_finetune", to_vec(ffeat), g.get("feat_finetune").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("finetune_fc1", to_vec(fc1), g.get("finetune_fc1").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("logits_finetune", to_vec(ft), g.get("logits_finetune").to_f64(), 1e-10);
}

namespace {
void run_mamp(at::Device dev) {
  REQUIRE_FIXTURE(golden("mamp_forward.npz"));
  NpzReader g(golden("mamp_forward.npz"));
  // MAMP-specific tensors plus the shared blocks/norms of the HA-CM weight file (README §3.3).
  accel::StateDict sd = load("weights_hacm.npz", dev);
  for (auto& [k, v] : load("weights_mamp.npz", dev)) sd[k] = v;
  accel::MampConfig cfg;
  cfg.depth = g.get("cfg_depth").at_i64(0);
  cfg.decoder_depth = g.get("cfg_decoder_depth").at_i64(0);
  cfg.mask_ratio = g.get("mask_ratio").at_f64(0);
  cfg.tau = g.get("motion_aware_tau").at_f64(0);
  accel::MampOutputs o = accel::mamp_forward(sd, cfg, golden_tensor(g, "x5", at::kDouble, dev),
                                             golden_tensor(g, "U", at::kDouble, dev));
  EXPECT_EQ(o.ids_keep.size(1), g.get("len_keep").at_i64(0));  // 74, not 75
  EXPECT_CLOSE_NORMWISE("motion_raw", to_vec(o.motion_raw), g.get("motion_raw").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("gumbel_key", to_vec(o.key), g.get("gumbel_key").to_f64(), 1e-10);
  std::vector<int64_t> a = g.get("ids_shuffle").to_i64();
  std::vector<double> b = to_vec(o.ids_shuffle);
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += double(a[i]) != b[i];
  EXPECT_EQ(bad, 0) << "ids_shuffle must match exactly";
  EXPECT_CLOSE("mask", to_vec(o.mask), g.get("mask").to_f64(), 0.0, 0.0);  // exact
  EXPECT_CLOSE_NORMWISE("pred", to_vec(o.pred), g.get("pred").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("target_norm", to_vec(o.target_norm), g.get("target_norm").to_f64(), 1e-10);
  EXPECT_CLOSE("loss", to_vec(o.loss), g.get("loss").to_f64(), 0.0, 1e-10);
}
}  // namespace

TEST(AcceleratedMampGolden, CpuDoubleForward) {
  run_mamp(at::kCPU);
}
TEST(AcceleratedMampGolden, CudaDoubleForward) {
  REQUIRE_CUDA();
  run_mamp(at::kCUDA);
}
