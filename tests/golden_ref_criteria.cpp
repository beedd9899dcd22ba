// Reference masking criteria and Gumbel top-k selection against the authors' float64 tensors:
// hacm_temporal.npz, hacm_spatial.npz, hacm_mask.npz (inputs from hacm_embed.npz +
// weights_hacm.npz).
#include <cmath>

#include "core/npz.h"
#include "reference/checkpoint.h"
#include "reference/criteria.h"
#include "reference/embed.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

Tensor<double> get(const NpzReader& r, const std::string& k) {
  return ref::from_ndarray<double>(r.get(k));
}

// mc = golden emb_kept + pos + temp (isolates the criteria from the embedding).
Tensor<double> golden_mc(const NpzReader& emb, const ref::Checkpoint<double>& ck) {
  return ref::add_pos_temp_forward(get(emb, "emb_kept"), ck.at("pos_embed"), ck.at("temp_embed"));
}

bool have_all() {
  for (const char* f : {"hacm_embed.npz", "weights_hacm.npz", "hacm_temporal.npz",
                        "hacm_spatial.npz", "hacm_mask.npz"})
    if (!file_exists(golden(f))) return false;
  return true;
}

}  // namespace

// README §5 float64 default 1e-10 normwise: q·k sums of D terms scaled by √D, then a softmax.
TEST(ReferenceCriteria, TemporalScoresMatchGolden) {
  if (!have_all()) GTEST_SKIP() << "golden files missing in " << golden_dir();
  NpzReader emb(golden("hacm_embed.npz")), r(golden("hacm_temporal.npz"));
  auto ck = ref::load_checkpoint<double>(golden("weights_hacm.npz"));
  auto l1 = ref::load_linear(ck, "l1"), l2 = ref::load_linear(ck, "l2");
  const double scale = r.get("cfg_t_logit_scale").at_f64(0);
  EXPECT_EQ(scale, std::sqrt(double(l1.w.dim(0))));  // ×√d, the released multiplier
  auto t = ref::temporal_scores_forward(golden_mc(emb, ck), l1, l2, scale);
  EXPECT_EQ(t.logits.shape, r.get("t_logits").shape);
  EXPECT_CLOSE_NORMWISE("t_logits", t.logits.data, r.get("t_logits").to_f64(), 1e-10,
                        t.logits.shape);
  EXPECT_CLOSE_NORMWISE("t_att", t.att.data, r.get("t_att").to_f64(), 1e-10, t.att.shape);
  EXPECT_CLOSE_NORMWISE("score_t", t.score.data, r.get("score_t").to_f64(), 1e-10, t.score.shape);
  // Default logit_scale (0) means √D': same result.
  auto t0 = ref::temporal_scores_forward(golden_mc(emb, ck), l1, l2);
  EXPECT_EQ(t0.score.data, t.score.data);
}

// Distances: README §5 per-entry rule |a-b| <= 1e-10|b| + 1e-14(1/(1-|u|²) + 1/(1-|v|²));
// matrix_s / score_s: normwise 1e-6 (tokens with 1-|H|² ~ 1e-11 make two correct float64
// implementations differ by up to ~1e-6 relative, README §5).
TEST(ReferenceCriteria, SpatialScoresMatchGolden) {
  if (!have_all()) GTEST_SKIP() << "golden files missing in " << golden_dir();
  NpzReader emb(golden("hacm_embed.npz")), r(golden("hacm_spatial.npz"));
  auto ck = ref::load_checkpoint<double>(golden("weights_hacm.npz"));
  auto s = ref::spatial_scores_forward(golden_mc(emb, ck), get(emb, "emb_null"), 4.0);
  const int64_t NM = s.hs.dim(0), TO = s.hs.dim(1), V = s.hs.dim(2), D = s.hs.dim(3);

  std::vector<double> hs_norm, hs_omn, f_omn;
  for (int64_t i = 0; i < NM * TO * V; ++i) {
    double n2 = 0;
    for (int64_t d = 0; d < D; ++d) n2 += s.hs[i * D + d] * s.hs[i * D + d];
    hs_norm.push_back(std::sqrt(n2));
    hs_omn.push_back(1 - n2);
  }
  for (int64_t i = 0; i < NM * TO; ++i) {
    double n2 = 0;
    for (int64_t d = 0; d < D; ++d) n2 += s.father[i * D + d] * s.father[i * D + d];
    f_omn.push_back(1 - n2);
  }
  // Norms of ball points: a few ulps of 1 (1 - |H|² is a difference of numbers near 1).
  EXPECT_CLOSE("hs_norm", hs_norm, r.get("hs_norm").to_f64(), 1e-14, 0.0);
  EXPECT_CLOSE("hs_one_minus_norm2", hs_omn, r.get("hs_one_minus_norm2").to_f64(), 1e-14, 0.0);
  // Father: mean of 7 ball points of moderate norm, a few ulps.
  EXPECT_CLOSE_NORMWISE("father", s.father.data, r.get("father").to_f64(), 1e-13, s.father.shape);
  EXPECT_CLOSE("father_one_minus_norm2", f_omn, r.get("father_one_minus_norm2").to_f64(), 1e-14,
               0.0);

  std::vector<double> omn = r.get("hs_one_minus_norm2").to_f64(),
                      fomn = r.get("father_one_minus_norm2").to_f64();
  std::vector<double> atol_d, atol_f;
  for (int64_t nt = 0; nt < NM * TO; ++nt)
    for (int64_t i = 0; i < V; ++i) {
      for (int64_t j = 0; j < V; ++j)
        atol_d.push_back(1e-14 * (1 / omn[nt * V + i] + 1 / omn[nt * V + j]));
      atol_f.push_back(1e-14 * (1 / fomn[nt] + 1 / omn[nt * V + i]));
    }
  EXPECT_CLOSE_EACH("D", s.dist.data, r.get("D").to_f64(), atol_d, 1e-10, s.dist.shape);
  EXPECT_CLOSE_EACH("Df", s.dist_f.data, r.get("Df").to_f64(), atol_f, 1e-10);
  EXPECT_EQ(s.matrix.shape, r.get("matrix_s").shape);
  EXPECT_CLOSE_NORMWISE("matrix_s", s.matrix.data, r.get("matrix_s").to_f64(), 1e-6,
                        s.matrix.shape);
  EXPECT_CLOSE_NORMWISE("score_s", s.score.data, r.get("score_s").to_f64(), 1e-6, s.score.shape);
}

// Selection: keys normwise 1e-12 (softmax + logs of O(1) numbers, measured ~1e-16); ids, masks
// exact (README §5); x_vis is a gather of float32 values: exact.
TEST(ReferenceCriteria, GumbelSelectionMatchesGolden) {
  if (!have_all()) GTEST_SKIP() << "golden files missing in " << golden_dir();
  NpzReader r(golden("hacm_mask.npz"));
  for (std::string p : {"t_", "s_", "syn_"}) {
    SCOPED_TRACE(p);
    Tensor<double> score = ref::matrix_score_forward(get(r, p + "matrix"));
    auto sel = ref::gumbel_topk_forward(score, get(r, p + "U"), 0.1, 0.9);
    if (p != "syn_") {
      EXPECT_CLOSE_NORMWISE(p + "score", score.data, r.get(p + "score").to_f64(), 1e-12);
      EXPECT_CLOSE_NORMWISE(p + "score_norm", sel.score_norm.data, r.get(p + "score_norm").to_f64(),
                            1e-12);
      EXPECT_CLOSE_NORMWISE(p + "prob", sel.prob.data, r.get(p + "prob").to_f64(), 1e-12);
      EXPECT_EQ(sel.ids_shuffle, r.get(p + "ids_shuffle").to_i64());
    }
    EXPECT_CLOSE_NORMWISE(p + "gumbel_key", sel.key.data, r.get(p + "gumbel_key").to_f64(), 1e-12);
    EXPECT_EQ(sel.keep, r.get(p + "ids_keep").shape[1]);
    EXPECT_EQ(sel.ids_keep, r.get(p + "ids_keep").to_i64());
    EXPECT_EQ(sel.ids_restore, r.get(p + "ids_restore").to_i64());
    EXPECT_CLOSE(p + "mask", sel.mask.data, r.get(p + "mask").to_f64(), 0.0, 0.0);
    Tensor<double> xv = ref::gather_tokens_forward(get(r, p + "x"), sel.ids_keep, sel.keep);
    EXPECT_CLOSE(p + "x_vis", xv.data, r.get(p + "x_vis").to_f64(), 0.0, 0.0, xv.shape);
  }
}
