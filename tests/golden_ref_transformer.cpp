// Reference attention / block forward and backward against the authors' float64 tensors:
// hacm_attention_block_fwd.npz (width 256, forward) and hacm_attention_block.npz (width 64,
// gradients of the real loss through block 0; parameter gradients are hacm_grads.npz
// grad.blocks.0.*).
#include "core/npz.h"
#include "reference/checkpoint.h"
#include "reference/transformer.h"
#include "tests/compare.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

Tensor<double> get(const NpzReader& r, const std::string& k) {
  return ref::from_ndarray<double>(r.get(k));
}

// attn_probs_row0: the first sequence's [H, N, N] slice of the cache.
std::vector<double> probs_row0(const ref::AttentionCache<double>& c) {
  const int64_t n = c.probs.numel() / c.probs.dim(0);
  return std::vector<double>(c.probs.data.begin(), c.probs.data.begin() + n);
}

}  // namespace

// README §5: float64 default 1e-10 normwise (measured here: ~1e-15).
TEST(ReferenceTransformer, Width256ForwardMatchesGolden) {
  REQUIRE_FIXTURE(golden("hacm_attention_block_fwd.npz"));
  NpzReader r(golden("hacm_attention_block_fwd.npz"));
  auto ck = ref::load_checkpoint<double>(golden("weights_hacm.npz"));
  const int heads = int(r.get("cfg_heads").at_i64(0));
  auto p = ref::load_block(ck, "blocks.0");
  Tensor<double> x = get(r, "block_x");
  ref::BlockCache<double> c;
  Tensor<double> y = ref::block_forward(x, p, heads, &c);
  EXPECT_CLOSE_NORMWISE("attn_x", c.a_in.data, r.get("attn_x").to_f64(), 1e-10);
  Tensor<double> a = ref::attention_forward(c.a_in, p.qkv, p.proj, heads);
  EXPECT_CLOSE_NORMWISE("attn_out", a.data, r.get("attn_out").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("attn_probs_row0", probs_row0(c.attn), r.get("attn_probs_row0").to_f64(),
                        1e-10);
  EXPECT_CLOSE_NORMWISE("block_out", y.data, r.get("block_out").to_f64(), 1e-10, y.shape);
}

// Width 64, 4 heads, 4×42 tokens: forward 1e-10, input gradients 1e-10 (README §5
// `hacm_attention_block *_gin`), parameter gradients 1e-9 (README §5 `hacm_grads grad.*`).
TEST(ReferenceTransformer, Width64BackwardMatchesGolden) {
  REQUIRE_FIXTURE(golden("hacm_attention_block.npz"));
  REQUIRE_FIXTURE(golden("hacm_grads.npz"));
  NpzReader r(golden("hacm_attention_block.npz")), rg(golden("hacm_grads.npz"));
  auto ck = ref::load_checkpoint<double>(golden("weights_hacm_d64.npz"));
  const int heads = int(r.get("cfg_heads").at_i64(0));
  auto p = ref::load_block(ck, "blocks.0");
  Tensor<double> x = get(r, "block_x");

  ref::BlockCache<double> c;
  Tensor<double> y = ref::block_forward(x, p, heads, &c);
  EXPECT_CLOSE_NORMWISE("block_out", y.data, r.get("block_out").to_f64(), 1e-10, y.shape);
  EXPECT_CLOSE_NORMWISE("attn_x", c.a_in.data, r.get("attn_x").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("attn_probs_row0", probs_row0(c.attn), r.get("attn_probs_row0").to_f64(),
                        1e-10);

  ref::BlockParams<double> g = ref::zeros_like(p);
  Tensor<double> gin = ref::block_backward(x, p, heads, c, get(r, "block_gout"), g);
  EXPECT_CLOSE_NORMWISE("block_gin", gin.data, r.get("block_gin").to_f64(), 1e-10, gin.shape);
  std::map<std::string, Tensor<double>> named;
  ref::export_block(g, "blocks.0", named);
  for (const auto& [name, t] : named)
    EXPECT_CLOSE_NORMWISE("grad." + name, t.data, rg.get("grad." + name).to_f64(), 1e-9, t.shape);

  // Attention alone, on its own golden input and upstream gradient.
  Tensor<double> ax = get(r, "attn_x");
  ref::AttentionCache<double> ac;
  Tensor<double> ay = ref::attention_forward(ax, p.qkv, p.proj, heads, &ac);
  EXPECT_CLOSE_NORMWISE("attn_out", ay.data, r.get("attn_out").to_f64(), 1e-10);
  ref::LinearParams<double> gq, gp;
  Tensor<double> agin =
      ref::attention_backward(ax, p.qkv, p.proj, heads, ac, get(r, "attn_gout"), gq, gp);
  EXPECT_CLOSE_NORMWISE("attn_gin", agin.data, r.get("attn_gin").to_f64(), 1e-10);
  EXPECT_CLOSE_NORMWISE("grad attn.qkv.weight", gq.w.data,
                        rg.get("grad.blocks.0.attn.qkv.weight").to_f64(), 1e-9);
  EXPECT_CLOSE_NORMWISE("grad attn.qkv.bias", gq.b.data,
                        rg.get("grad.blocks.0.attn.qkv.bias").to_f64(), 1e-9);
  EXPECT_CLOSE_NORMWISE("grad attn.proj.weight", gp.w.data,
                        rg.get("grad.blocks.0.attn.proj.weight").to_f64(), 1e-9);
  EXPECT_CLOSE_NORMWISE("grad attn.proj.bias", gp.b.data,
                        rg.get("grad.blocks.0.attn.proj.bias").to_f64(), 1e-9);
}

// float32 forward at width 256: README §5 float32 bound for activations 1e-4 (expected ~1e-6).
TEST(ReferenceTransformer, FloatWidth256ForwardMatchesGolden) {
  REQUIRE_FIXTURE(golden("hacm_attention_block_fwd.npz"));
  NpzReader r(golden("hacm_attention_block_fwd.npz"));
  auto ck = ref::load_checkpoint<float>(golden("weights_hacm.npz"));
  auto p = ref::load_block(ck, "blocks.0");
  Tensor<float> y = ref::block_forward(ref::from_ndarray<float>(r.get("block_x")), p,
                                       int(r.get("cfg_heads").at_i64(0)));
  EXPECT_CLOSE_NORMWISE("block_out float", ref::to_f64(y), r.get("block_out").to_f64(), 1e-4);
}
