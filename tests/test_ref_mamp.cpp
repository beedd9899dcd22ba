// MAMP reference backward against central finite differences along random directions (order held
// fixed), small model: width 32, 4 heads, depth 1/1, 25 joints, t_patch 4, T = 16, NM = 4.
#include <gtest/gtest.h>

#include "core/model_init.h"
#include "reference/gradcheck.h"
#include "reference/mamp.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using hacm::ref::Tensor;

TEST(ReferenceMamp, BackwardMatchesFiniteDifferences) {
  const ModelShape s = test::small_mamp_shape();
  ref::MampConfig cfg;
  cfg.heads = 4;
  auto w = ref::MampWeights<double>::load(
      ref::checkpoint_from_arrays<double>(init_pretrain_params(s, 21)), cfg);
  Rng rng(22);
  for (auto& [name, t] : w.named())
    for (auto& v : t->data) v += 0.05 * rng.normal();
  Tensor<double> x5 = ref::randn({2, 3, 16, 25, 2}, rng, 0.3), U({4, 100});
  for (auto& v : U.data) v = rng.uniform();
  auto f0 = ref::mamp_forward(x5, U, w, cfg);
  ASSERT_EQ(f0.sel.keep, 9);  // int(100 · (1 − 0.9)) = int(9.999…) = 9
  const std::vector<int64_t> order = f0.sel.ids_shuffle;
  auto g = ref::mamp_backward(f0, x5, w, cfg);
  auto loss = [&]() { return ref::mamp_forward(x5, U, w, cfg, &order).loss; };
  auto gn = g.w.named();
  auto wn = w.named();
  for (size_t i = 0; i < wn.size(); ++i) {
    std::vector<double> d(wn[i].second->data.size());
    for (auto& v : d) v = rng.normal();
    // h = 1e-5 central differences: ~1e-10 truncation and round-off on |L| ~ 1.
    EXPECT_CLOSE("d/d " + wn[i].first, std::vector<double>{ref::dot(gn[i].second->data, d)},
                 std::vector<double>{ref::fd_directional(loss, *wn[i].second, d, 1e-5)}, 1e-8,
                 1e-6);
  }
  std::vector<double> dx(x5.data.size());
  for (auto& v : dx) v = rng.normal();
  EXPECT_CLOSE("d/d x5", std::vector<double>{ref::dot(g.x5.data, dx)},
               std::vector<double>{ref::fd_directional(loss, x5, dx, 1e-5)}, 1e-8, 1e-6);
}
