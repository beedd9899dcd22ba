// Reference embedding components: backward passes against central finite differences (double).
// Everything here is linear in each argument, so central differences are exact up to round-off:
// ~1e-16·|L|/h with |L| up to ~30 and h = 1e-6 gives ~3e-9, hence atol 1e-7 + rtol 1e-7.
#include "reference/embed.h"
#include "reference/gradcheck.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::ref::Tensor;

TEST(ReferenceEmbed, PatchEmbedBackwardMatchesFiniteDifferences) {
  Rng rng(21);
  // t_patch 3 (HA-CM) and 4 (MAMP) with a non-square width.
  for (int64_t tp : {3, 4}) {
    Tensor<double> x = ref::randn({2, 2 * tp, 3, 3}, rng);
    Tensor<double> w = ref::randn({5, 3, tp, 1}, rng), b = ref::randn({5}, rng);
    Tensor<double> g = ref::randn({2, 2, 3, 5}, rng);
    auto loss = [&] { return ref::dot(ref::patch_embed_forward(x, w, b).data, g.data); };
    Tensor<double> gw, gb;
    Tensor<double> gx = ref::patch_embed_backward(x, w, g, gw, gb);
    EXPECT_CLOSE("patch gx", gx.data, ref::fd_gradient(loss, x, 1e-6), 1e-7, 1e-7, x.shape);
    EXPECT_CLOSE("patch gw", gw.data, ref::fd_gradient(loss, w, 1e-6), 1e-7, 1e-7, w.shape);
    EXPECT_CLOSE("patch gb", gb.data, ref::fd_gradient(loss, b, 1e-6), 1e-7, 1e-7, b.shape);
  }
}

// The forward is the conv formula written out: E[n,τ,v,o] = b[o] + Σ_{u,c}
// W[o,c,u,0]·x[n,tp·τ+u,v,c].
TEST(ReferenceEmbed, PatchEmbedMatchesConvFormula) {
  Rng rng(22);
  const int64_t B = 2, tp = 3, TP = 2, V = 4, C = 3, D = 6;
  Tensor<double> x = ref::randn({B, TP * tp, V, C}, rng), w = ref::randn({D, C, tp, 1}, rng),
                 b = ref::randn({D}, rng);
  Tensor<double> e = ref::patch_embed_forward(x, w, b);
  std::vector<double> want;
  for (int64_t n = 0; n < B; ++n)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v)
        for (int64_t o = 0; o < D; ++o) {
          double s = b[o];
          for (int64_t u = 0; u < tp; ++u)
            for (int64_t c = 0; c < C; ++c)
              s += w[(o * C + c) * tp + u] * x[((n * TP * tp + t * tp + u) * V + v) * C + c];
          want.push_back(s);
        }
  // Same 9 products, different summation order: a few ulps.
  EXPECT_CLOSE("patch embed formula", e.data, want, 1e-14, 1e-13, e.shape);
}

TEST(ReferenceEmbed, PosTempAndSplitBackwardMatchFiniteDifferences) {
  Rng rng(23);
  Tensor<double> e = ref::randn({2, 3, 4, 5}, rng), pos = ref::randn({1, 1, 4, 5}, rng),
                 temp = ref::randn({1, 3, 1, 5}, rng), g = ref::randn({2, 3, 4, 5}, rng);
  auto loss = [&] { return ref::dot(ref::add_pos_temp_forward(e, pos, temp).data, g.data); };
  Tensor<double> gpos, gtemp;
  Tensor<double> ge = ref::add_pos_temp_backward(g, gpos, gtemp);
  EXPECT_CLOSE("pos/temp ge", ge.data, ref::fd_gradient(loss, e, 1e-6), 1e-7, 1e-7);
  EXPECT_CLOSE("pos/temp gpos", gpos.data, ref::fd_gradient(loss, pos, 1e-6), 1e-7, 1e-7);
  EXPECT_CLOSE("pos/temp gtemp", gtemp.data, ref::fd_gradient(loss, temp, 1e-6), 1e-7, 1e-7);

  // x5 [N,C,T,J,M] -> person-major -> kept joints: backward scatters back (a joint listed twice
  // accumulates).
  Tensor<double> x5 = ref::randn({2, 3, 4, 6, 2}, rng);
  std::vector<int64_t> idx = {4, 1, 1, 5};
  Tensor<double> gs = ref::randn({4, 4, 4, 3}, rng);
  auto loss2 = [&] {
    return ref::dot(ref::select_joints_forward(ref::to_person_major_forward(x5), idx).data,
                    gs.data);
  };
  Tensor<double> gx5 = ref::to_person_major_backward(ref::select_joints_backward(gs, idx, 6), 2);
  EXPECT_CLOSE("split gx5", gx5.data, ref::fd_gradient(loss2, x5, 1e-6), 1e-7, 1e-7, x5.shape);
}
