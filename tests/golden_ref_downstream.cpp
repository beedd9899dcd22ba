// Reference downstream encoder and heads against hacm_downstream.npz (encoder = weights_hacm.npz,
// heads = weights_heads.npz, eval mode).
#include "core/npz.h"
#include "reference/downstream.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;

// README §5: float64 1e-10 normwise for every array.
TEST(ReferenceDownstream, EncoderAndHeadsMatchGolden) {
  REQUIRE_FIXTURE(golden("hacm_downstream.npz"));
  NpzReader r(golden("hacm_downstream.npz"));
  auto ck = ref::load_checkpoint<double>(golden("weights_hacm.npz"));
  auto hk = ref::load_checkpoint<double>(golden("weights_heads.npz"));
  ref::EncoderConfig cfg;
  cfg.heads = int(r.get("cfg_heads").at_i64(0));
  auto w = ref::EncoderWeights<double>::load(ck, cfg);
  EXPECT_EQ(cfg.depth, r.get("cfg_depth").at_i64(0));
  auto tok = ref::encoder_forward(ref::from_ndarray<double>(r.get("x5")), w, cfg);

  auto feat = ref::linprobe_features(tok);
  EXPECT_CLOSE_NORMWISE("feat_linprobe", feat.data, r.get("feat_linprobe").to_f64(), 1e-10);
  auto lp = ref::load_linprobe_head(hk, "linprobe.head.");
  ASSERT_TRUE(lp.bn);
  EXPECT_CLOSE_NORMWISE("logits_linprobe_bn", ref::linprobe_head_forward(feat, lp, false).data,
                        r.get("logits_linprobe_bn").to_f64(), 1e-10);
  const auto rm = lp.norm.running_mean.data;
  EXPECT_CLOSE_NORMWISE("logits_linprobe_bn_batchstats",
                        ref::linprobe_head_forward(feat, lp, true).data,
                        r.get("logits_linprobe_bn_batchstats").to_f64(), 1e-10);
  EXPECT_EQ(lp.norm.running_mean.data, rm);  // momentum 0: running statistics untouched
  lp.bn = false;                             // the model's own ActionHeadLinprobe: mean -> fc
  EXPECT_CLOSE_NORMWISE("logits_linprobe", ref::linprobe_head_forward(feat, lp, false).data,
                        r.get("logits_linprobe").to_f64(), 1e-10);

  auto ff = ref::finetune_features(tok);
  EXPECT_CLOSE_NORMWISE("feat_finetune", ff.data, r.get("feat_finetune").to_f64(), 1e-10);
  auto ft = ref::load_finetune_head(hk, "finetune.head.");
  ref::HeadCache<double> c;
  auto logits = ref::finetune_head_forward(ff, ft, false, 0.0, &c);
  EXPECT_CLOSE_NORMWISE("finetune_fc1", c.h1.data, r.get("finetune_fc1").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("logits_finetune", logits.data, r.get("logits_finetune").to_f64(), 1e-10);
}
