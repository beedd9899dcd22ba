// Accelerated (LibTorch, float64 CPU) unit stages against the authors' tensors: the patch
// embedding (hacm_embed), the temporal and spatial criteria (hacm_temporal, hacm_spatial), the
// Gumbel top-k selection (hacm_mask), and the attention / block forward and backward
// (hacm_attention_block_fwd at width 256, hacm_attention_block at width 64). The full-model
// cases are in golden_hacm_accel.cpp. Tolerances: ../shared/golden/README.md §5.
#include <ATen/ATen.h>

#include "accelerated/hacm.h"
#include "accelerated/hyperbolic.h"
#include "accelerated/transformer.h"
#include "core/skeleton.h"
#include "tests/accel_util.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;

namespace {

accel::StateDict weights(const std::string& file) {
  return accel::load_state_dict(golden(file), at::kDouble);
}

at::Tensor index_of(const std::array<int, kKeptJoints>& a) {
  return at::tensor(std::vector<int64_t>(a.begin(), a.end()), at::kLong);
}

void expect_exact_ids(const std::string& name, const at::Tensor& got, const NdArray& ref) {
  std::vector<int64_t> r = ref.to_i64();
  at::Tensor g = got.to(at::kLong).contiguous();
  ASSERT_EQ(int64_t(r.size()), g.numel()) << name;
  int64_t bad = 0;
  for (int64_t i = 0; i < g.numel(); ++i) bad += g.data_ptr<int64_t>()[i] != r[size_t(i)];
  std::printf("  %s: %lld of %lld differ\n", name.c_str(), (long long)bad, (long long)g.numel());
  EXPECT_EQ(bad, 0) << name << " must match exactly";
}

// The unit cases' embeddings: emb_kept/emb_null of hacm_embed.npz recomputed from x5.
struct Embedded {
  at::Tensor E, En, mc;  // [NM,24,18,d], [NM,24,7,d], E + pos + temp
};
Embedded embed(const NpzReader& g, const accel::StateDict& sd) {
  at::Tensor x5 = golden_tensor(g, "x5");
  const int64_t N = x5.size(0), T = x5.size(2), M = x5.size(4);
  at::Tensor x = x5.permute({0, 4, 2, 3, 1}).reshape({N * M, T, 25, 3});
  at::Tensor kept = x.index_select(2, index_of(hacm_kept_joints()));
  std::vector<int64_t> nulls(hacm_root_joints().begin(), hacm_root_joints().end());
  at::Tensor null = x.index_select(2, at::tensor(nulls, at::kLong));
  Embedded e;
  e.E = accel::patch_embed_forward(kept, sd.at("joints_embed.proj.weight"),
                                   sd.at("joints_embed.proj.bias"));
  e.En = accel::patch_embed_forward(null, sd.at("joints_embed.proj.weight"),
                                    sd.at("joints_embed.proj.bias"));
  e.mc = e.E + sd.at("pos_embed") + sd.at("temp_embed");
  return e;
}

}  // namespace

// float64: README §5 default bound 1e-10 normwise.
TEST(AcceleratedUnitsGolden, CpuDoubleEmbedding) {
  REQUIRE_FIXTURE(golden("hacm_embed.npz"));
  NpzReader g(golden("hacm_embed.npz"));
  Embedded e = embed(g, weights("weights_hacm.npz"));
  EXPECT_CLOSE_NORMWISE("emb_kept", to_vec(e.E), g.get("emb_kept").to_f64(), 1e-10, shape_of(e.E));
  EXPECT_CLOSE_NORMWISE("emb_null", to_vec(e.En), g.get("emb_null").to_f64(), 1e-10,
                        shape_of(e.En));
}

TEST(AcceleratedUnitsGolden, CpuDoubleTemporalAndSpatialCriteria) {
  REQUIRE_FIXTURE(golden("hacm_temporal.npz"));
  REQUIRE_FIXTURE(golden("hacm_spatial.npz"));
  accel::StateDict sd = weights("weights_hacm.npz");
  NpzReader emb(golden("hacm_embed.npz")), gt(golden("hacm_temporal.npz")),
      gs(golden("hacm_spatial.npz"));
  Embedded e = embed(emb, sd);
  const int64_t NM = e.mc.size(0), TP = e.mc.size(1), V = e.mc.size(2);
  at::Tensor att = accel::temporal_scores_forward(e.mc.slice(1, 0, TP, 2), sd,
                                                  gt.get("cfg_t_logit_scale").at_f64(0));
  // 1e-10 normwise (float64, README §5).
  EXPECT_CLOSE_NORMWISE("t_att", to_vec(att), gt.get("t_att").to_f64(), 1e-10, shape_of(att));
  EXPECT_CLOSE_NORMWISE("score_t", to_vec(att.sum(2).reshape({NM, -1})), gt.get("score_t").to_f64(),
                        1e-10);
  at::Tensor H = accel::expmap_with_projection_forward(e.mc);
  at::Tensor Hs = H.slice(1, 1, TP, 2);
  at::Tensor father = accel::expmap_with_projection_forward(e.En).mean(2).slice(1, 1, TP, 2);
  EXPECT_CLOSE_NORMWISE("father", to_vec(father), gs.get("father").to_f64(), 1e-10);
  at::Tensor D, Df;
  accel::spatial_distances_forward(Hs, father, 4.0, &D, &Df);
  // Distances near the ball boundary: README §5 per-entry rule 1e-10|b| + 1e-14(1/(1-|u|^2) +
  // 1/(1-|v|^2)).
  std::vector<double> omn = gs.get("hs_one_minus_norm2").to_f64(),
                      fomn = gs.get("father_one_minus_norm2").to_f64();
  std::vector<double> atol_d(size_t(NM * (TP / 2) * V * V)), atol_f(size_t(NM * (TP / 2) * V));
  for (int64_t r = 0; r < NM * (TP / 2); ++r)
    for (int64_t i = 0; i < V; ++i) {
      atol_f[size_t(r * V + i)] = 1e-14 * (1 / fomn[size_t(r)] + 1 / omn[size_t(r * V + i)]);
      for (int64_t j = 0; j < V; ++j)
        atol_d[size_t((r * V + i) * V + j)] =
            1e-14 * (1 / omn[size_t(r * V + i)] + 1 / omn[size_t(r * V + j)]);
    }
  EXPECT_CLOSE_EACH("D", to_vec(D), gs.get("D").to_f64(), atol_d, 1e-10, shape_of(D));
  EXPECT_CLOSE_EACH("Df", to_vec(Df), gs.get("Df").to_f64(), atol_f, 1e-10);
  // Scores (sums of ~19 distances): README §5 says err <= 1e-6 at width 256.
  at::Tensor ss = D.sum(2) + 0.01 * Df;  // [NM, TPh, V] (τ', j)
  EXPECT_CLOSE_NORMWISE("score_s (released order)", to_vec(ss.permute({0, 2, 1}).reshape({NM, -1})),
                        gs.get("score_s").to_f64(), 1e-6);
}

TEST(AcceleratedUnitsGolden, CpuDoubleGumbelTopK) {
  REQUIRE_FIXTURE(golden("hacm_mask.npz"));
  NpzReader g(golden("hacm_mask.npz"));
  for (std::string p : {"t_", "s_", "syn_"}) {
    at::Tensor matrix = golden_tensor(g, p + "matrix");
    const int64_t B = matrix.size(0);
    at::Tensor score = matrix.sum(-2).reshape({B, -1});
    const int64_t L = score.size(1), K = int64_t(0.1 * double(L));
    accel::Selection sel =
        accel::gumbel_topk_forward(score, golden_tensor(g, p + "U"), K, 0.9, true);
    if (g.has(p + "score_norm")) {
      EXPECT_CLOSE_NORMWISE(p + "score_norm", to_vec(sel.score_norm),
                            g.get(p + "score_norm").to_f64(), 1e-10);
      EXPECT_CLOSE_NORMWISE(p + "prob", to_vec(sel.prob), g.get(p + "prob").to_f64(), 1e-10);
      expect_exact_ids(p + "ids_shuffle", sel.ids_shuffle, g.get(p + "ids_shuffle"));
    }
    EXPECT_CLOSE_NORMWISE(p + "gumbel_key", to_vec(sel.key), g.get(p + "gumbel_key").to_f64(),
                          1e-10);
    expect_exact_ids(p + "ids_keep", sel.ids_keep, g.get(p + "ids_keep"));
    expect_exact_ids(p + "ids_restore", sel.ids_restore, g.get(p + "ids_restore"));
    EXPECT_CLOSE(p + "mask", to_vec(sel.mask), g.get(p + "mask").to_f64(), 0.0, 0.0);  // exact
    at::Tensor x = golden_tensor(g, p + "x");
    at::Tensor vis = at::gather(x, 1, sel.ids_keep.unsqueeze(-1).expand({B, K, x.size(2)}));
    EXPECT_CLOSE(p + "x_vis", to_vec(vis), g.get(p + "x_vis").to_f64(), 0.0,
                 0.0);  // a gather: exact
  }
}

TEST(AcceleratedUnitsGolden, CpuDoubleAttentionAndBlockForwardWidth256) {
  REQUIRE_FIXTURE(golden("hacm_attention_block_fwd.npz"));
  NpzReader g(golden("hacm_attention_block_fwd.npz"));
  accel::StateDict sd = weights("weights_hacm.npz");
  at::Tensor x = golden_tensor(g, "block_x");
  at::Tensor ax =
      accel::layer_norm_forward(x, sd.at("blocks.0.norm1.weight"), sd.at("blocks.0.norm1.bias"));
  at::Tensor probs;
  at::Tensor ao = accel::attention_forward(ax, sd, "blocks.0.attn.", 8, &probs);
  EXPECT_CLOSE_NORMWISE("attn_x", to_vec(ax), g.get("attn_x").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("attn_out", to_vec(ao), g.get("attn_out").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("attn_probs_row0", to_vec(probs[0]), g.get("attn_probs_row0").to_f64(),
                        1e-10);
  at::Tensor bo = accel::block_forward(x, sd, "blocks.0.", 8);
  EXPECT_CLOSE_NORMWISE("block_out", to_vec(bo), g.get("block_out").to_f64(), 1e-10);
}

// Backward through autograd with the authors' upstream gradient; parameter gradients of block 0
// equal grad.blocks.0.* of hacm_grads.npz (README: block 0 is used once in the model).
TEST(AcceleratedUnitsGolden, CpuDoubleBlockBackwardWidth64) {
  REQUIRE_FIXTURE(golden("hacm_attention_block.npz"));
  NpzReader g(golden("hacm_attention_block.npz")), gg(golden("hacm_grads.npz"));
  accel::StateDict sd = weights("weights_hacm_d64.npz");
  for (auto& [k, v] : sd)
    if (k.rfind("blocks.0.", 0) == 0) v.requires_grad_(true);
  at::Tensor x = golden_tensor(g, "block_x").requires_grad_(true);
  at::Tensor out = accel::block_forward(x, sd, "blocks.0.", 4);
  EXPECT_CLOSE_NORMWISE("block_out", to_vec(out), g.get("block_out").to_f64(), 1e-10);
  out.backward(golden_tensor(g, "block_gout"));
  // README §5: *_gin 1e-10, parameter gradients 1e-9 per tensor.
  EXPECT_CLOSE_NORMWISE("block_gin", to_vec(x.grad()), g.get("block_gin").to_f64(), 1e-10);
  int checked = 0;
  for (const auto& [k, v] : sd) {
    if (k.rfind("blocks.0.", 0) != 0) continue;
    EXPECT_CLOSE_NORMWISE("grad." + k, to_vec(v.grad()), gg.get("grad." + k).to_f64(), 1e-9);
    ++checked;
  }
  EXPECT_EQ(checked, 12);
  at::Tensor ax = golden_tensor(g, "attn_x").requires_grad_(true);
  at::Tensor probs;
  at::Tensor ao = accel::attention_forward(ax, sd, "blocks.0.attn.", 4, &probs);
  EXPECT_CLOSE_NORMWISE("attn_out", to_vec(ao), g.get("attn_out").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("attn_probs_row0", to_vec(probs[0]), g.get("attn_probs_row0").to_f64(),
                        1e-10);
  ao.backward(golden_tensor(g, "attn_gout"));
  EXPECT_CLOSE_NORMWISE("attn_gin", to_vec(ax.grad()), g.get("attn_gin").to_f64(), 1e-10);
}
