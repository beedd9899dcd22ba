// Reference criteria and selection: invariants on random inputs, and the token gather's backward
// against central finite differences.
#include <algorithm>
#include <cmath>

#include "reference/criteria.h"
#include "reference/gradcheck.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::ref::Tensor;

// K = int(ratio·L) (truncation), ids_keep = first K of the descending key order, restore is the
// inverse permutation, mask has exactly L - K ones and is 0 exactly on ids_keep.
TEST(ReferenceCriteria, SelectionInvariants) {
  Rng rng(31);
  const int64_t B = 3, L = 216;
  Tensor<double> score = ref::randn({B, L}, rng), U({B, L});
  for (auto& u : U.data) u = rng.uniform();
  for (double ratio : {0.1, 0.25, 0.5}) {
    auto sel = ref::gumbel_topk_forward(score, U, ratio, 0.9);
    EXPECT_EQ(sel.keep, int64_t(ratio * L));
    for (int64_t b = 0; b < B; ++b) {
      double ones = 0;
      for (int64_t l = 0; l < L; ++l) {
        ones += sel.mask[b * L + l];
        EXPECT_EQ(sel.ids_shuffle[size_t(b * L + sel.ids_restore[size_t(b * L + l)])], l);
      }
      EXPECT_EQ(ones, double(L - sel.keep));
      for (int64_t k = 0; k < sel.keep; ++k) {
        const int64_t tok = sel.ids_keep[size_t(b * sel.keep + k)];
        EXPECT_EQ(sel.mask[b * L + tok], 0.0);
        if (k > 0) {
          EXPECT_GE(sel.key[b * L + sel.ids_keep[size_t(b * sel.keep + k - 1)]],
                    sel.key[b * L + tok]);
        }
      }
    }
  }
}

// The temperature scales the normalised score: s̃ = s / (τ·max s + 1e-10).
TEST(ReferenceCriteria, TemperatureNormalisation) {
  Tensor<double> score({1, 4}), U({1, 4}, 0.5);
  score.data = {1, 2, 3, 4};
  auto sel = ref::gumbel_topk_forward(score, U, 0.5, 0.8);
  std::vector<double> want = {1 / 3.2, 2 / 3.2, 3 / 3.2, 4 / 3.2};
  // 1e-10 in the denominator is the only difference: relative 3e-11.
  EXPECT_CLOSE("score_norm", sel.score_norm.data, want, 0.0, 1e-10);
}

// Gather is linear: central differences are exact up to round-off (~1e-10): atol 1e-8.
TEST(ReferenceCriteria, GatherBackwardMatchesFiniteDifferences) {
  Rng rng(32);
  Tensor<double> x = ref::randn({2, 6, 3}, rng), g = ref::randn({2, 3, 3}, rng);
  std::vector<int64_t> ids = {5, 0, 2, 1, 4, 3};
  auto loss = [&] { return ref::dot(ref::gather_tokens_forward(x, ids, 3).data, g.data); };
  EXPECT_CLOSE("gather gx", ref::gather_tokens_backward(g, ids, 6).data,
               ref::fd_gradient(loss, x, 1e-6), 1e-8, 1e-8, x.shape);
}

// Temporal attention is a softmax over joints: for every (n, t, u) the V weights sum to 1, so
// each score row sums to TE·TE.
TEST(ReferenceCriteria, TemporalAttentionNormalisedOverJoints) {
  Rng rng(33);
  const int64_t NM = 2, TP = 6, V = 5, D = 8;
  Tensor<double> mc = ref::randn({NM, TP, V, D}, rng);
  ref::LinearParams<double> l1{ref::randn({D, D}, rng, 0.3), ref::randn({D}, rng, 0.1)};
  ref::LinearParams<double> l2{ref::randn({D, D}, rng, 0.3), ref::randn({D}, rng, 0.1)};
  auto t = ref::temporal_scores_forward(mc, l1, l2);
  const int64_t TE = 3;
  std::vector<double> sums(static_cast<size_t>(NM), 0.0),
      want(static_cast<size_t>(NM), double(TE * TE));
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t k = 0; k < V * TE; ++k) sums[size_t(n)] += t.score[n * V * TE + k];
  // Sums of TE² softmax columns: a few ulps.
  EXPECT_CLOSE("temporal score row sums", sums, want, 1e-12, 0.0);
}

// The spatial distance factor is a setting: factor 2 gives the standard Poincaré distance, which
// is smaller than the released factor-4 one everywhere off the diagonal.
TEST(ReferenceCriteria, SpatialDistanceFactorIsASetting) {
  Rng rng(34);
  Tensor<double> mc = ref::randn({1, 4, 3, 6}, rng, 0.3), en = ref::randn({1, 4, 2, 6}, rng, 0.3);
  auto s4 = ref::spatial_scores_forward(mc, en, 4.0), s2 = ref::spatial_scores_forward(mc, en, 2.0);
  for (int64_t i = 0; i < s4.dist.numel(); ++i)
    if (s4.dist[i] > 0) {
      EXPECT_GT(s4.dist[i], s2.dist[i]);
    }
  // acosh(1 + 2a) vs acosh(1 + a): check one entry by formula.
  const double d4 = s4.dist[1], d2 = s2.dist[1];
  EXPECT_NEAR(std::cosh(d4) - 1, 2 * (std::cosh(d2) - 1), 1e-12);
}
