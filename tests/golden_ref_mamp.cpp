// Reference MAMP baseline forward against mamp_forward.npz (width 256, depth 2/1, 25 joints,
// t_patch 4, T = 120, NM = 2 with a zero-padded second person). Weights: weights_mamp.npz plus
// the shared tensors of weights_hacm.npz (README §3.3).
#include "core/npz.h"
#include "reference/mamp.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

template <class T>
ref::Checkpoint<T> mamp_checkpoint() {
  auto ck = ref::load_checkpoint<T>(golden("weights_hacm.npz"));
  for (auto& [k, t] : ref::load_checkpoint<T>(golden("weights_mamp.npz")).tensors)
    ck.tensors[k] = t;
  ck.source = golden("weights_mamp.npz");
  return ck;
}

ref::MampConfig config_of(const NpzReader& r) {
  ref::MampConfig cfg;
  cfg.heads = int(r.get("cfg_heads").at_i64(0));
  cfg.mask_ratio = r.get("mask_ratio").at_f64(0);
  cfg.tau = r.get("motion_aware_tau").at_f64(0);
  return cfg;
}

}  // namespace

// README §5: float64 1e-10 normwise downstream of identical ids; ids/mask exact.
TEST(ReferenceMamp, ForwardMatchesGolden) {
  REQUIRE_FIXTURE(golden("mamp_forward.npz"));
  NpzReader r(golden("mamp_forward.npz"));
  ref::MampConfig cfg = config_of(r);
  auto w = ref::MampWeights<double>::load(mamp_checkpoint<double>(), cfg);
  EXPECT_EQ(cfg.depth, r.get("cfg_depth").at_i64(0));
  auto f = ref::mamp_forward(ref::from_ndarray<double>(r.get("x5")),
                             ref::from_ndarray<double>(r.get("U")), w, cfg);
  EXPECT_EQ(f.sel.keep, r.get("len_keep").at_i64(0));
  EXPECT_CLOSE_NORMWISE("motion_raw", f.motion_raw.data, r.get("motion_raw").to_f64(), 1e-12);
  EXPECT_CLOSE_NORMWISE("motion_norm", f.sel.score_norm.data, r.get("motion_norm").to_f64(), 1e-12);
  EXPECT_CLOSE_NORMWISE("motion_prob", f.sel.prob.data, r.get("motion_prob").to_f64(), 1e-12);
  EXPECT_CLOSE_NORMWISE("gumbel_key", f.sel.key.data, r.get("gumbel_key").to_f64(), 1e-12);
  EXPECT_EQ(f.sel.ids_shuffle, r.get("ids_shuffle").to_i64());
  EXPECT_EQ(f.sel.ids_keep, r.get("ids_keep").to_i64());
  EXPECT_EQ(f.sel.ids_restore, r.get("ids_restore").to_i64());
  EXPECT_CLOSE("mask", f.sel.mask.data, r.get("mask").to_f64(), 0.0, 0.0);
  EXPECT_CLOSE_NORMWISE("pred", f.pred.data, r.get("pred").to_f64(), 1e-10, f.pred.shape);
  EXPECT_CLOSE_NORMWISE("target_norm", f.target_norm.data, r.get("target_norm").to_f64(), 1e-10);
  EXPECT_CLOSE("loss", std::vector<double>{f.loss}, r.get("loss").to_f64(), 0.0, 1e-10);
}

// float32 with the golden order injected: README §5 float32 bounds (pred 1e-4, loss 1e-5).
TEST(ReferenceMamp, FloatForwardWithInjectedSelectionMatchesGolden) {
  REQUIRE_FIXTURE(golden("mamp_forward.npz"));
  NpzReader r(golden("mamp_forward.npz"));
  ref::MampConfig cfg = config_of(r);
  auto w = ref::MampWeights<float>::load(mamp_checkpoint<float>(), cfg);
  std::vector<int64_t> order = r.get("ids_shuffle").to_i64();
  auto f = ref::mamp_forward(ref::from_ndarray<float>(r.get("x5")),
                             ref::from_ndarray<float>(r.get("U")), w, cfg, &order);
  EXPECT_CLOSE_NORMWISE("pred float", ref::to_f64(f.pred), r.get("pred").to_f64(), 1e-4);
  EXPECT_CLOSE("loss float", std::vector<double>{double(f.loss)}, r.get("loss").to_f64(), 0.0,
               1e-5);
}
