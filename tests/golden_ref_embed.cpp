// Reference joint split + patch embedding against the authors' float64 tensors (hacm_embed.npz).
#include "core/npz.h"
#include "reference/checkpoint.h"
#include "reference/embed.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

// Layout changes and joint selection are copies: exact.
TEST(ReferenceEmbed, JointSplitMatchesGolden) {
  REQUIRE_FIXTURE(golden("hacm_embed.npz"));
  NpzReader r(golden("hacm_embed.npz"));
  Tensor<double> x5 = ref::from_ndarray<double>(r.get("x5"));
  Tensor<double> x = ref::to_person_major_forward(x5);
  EXPECT_CLOSE("x_nm", x.data, r.get("x_nm").to_f64(), 0.0, 0.0, x.shape);
  std::vector<int64_t> kept = r.get("idx_kept").to_i64(), null = r.get("idx_null").to_i64();
  EXPECT_EQ(kept, ref::ntu_kept_joints());
  EXPECT_EQ(null, ref::ntu_null_joints());
  EXPECT_CLOSE("x_kept", ref::select_joints_forward(x, kept).data, r.get("x_kept").to_f64(), 0.0,
               0.0);
  EXPECT_CLOSE("x_null", ref::select_joints_forward(x, null).data, r.get("x_null").to_f64(), 0.0,
               0.0);
}

// Conv patch embedding: 9-term dot products summed in another order than PyTorch's conv, so a
// few ulps; normwise 1e-12 (README default 1e-10) still catches any index or layout error.
template <class T>
void check_patch_embed(double tol) {
  NpzReader r(golden("hacm_embed.npz"));
  auto ck = ref::load_checkpoint<T>(golden("weights_hacm.npz"));
  const auto& w = ck.at("joints_embed.proj.weight");
  const auto& b = ck.at("joints_embed.proj.bias");
  Tensor<T> x = ref::from_ndarray<T>(r.get("x_kept")), xn = ref::from_ndarray<T>(r.get("x_null"));
  Tensor<T> e = ref::patch_embed_forward(x, w, b), en = ref::patch_embed_forward(xn, w, b);
  EXPECT_EQ(e.shape, r.get("emb_kept").shape);
  EXPECT_CLOSE_NORMWISE("emb_kept", ref::to_f64(e), r.get("emb_kept").to_f64(), tol, e.shape);
  EXPECT_CLOSE_NORMWISE("emb_null", ref::to_f64(en), r.get("emb_null").to_f64(), tol, en.shape);
}

TEST(ReferenceEmbed, DoublePatchEmbeddingMatchesGolden) {
  REQUIRE_FIXTURE(golden("hacm_embed.npz"));
  check_patch_embed<double>(1e-12);
}

// float32: inputs and weights are float32 values already; 9-term sums round at ~1e-7.
TEST(ReferenceEmbed, FloatPatchEmbeddingMatchesGolden) {
  REQUIRE_FIXTURE(golden("hacm_embed.npz"));
  check_patch_embed<float>(1e-6);
}
