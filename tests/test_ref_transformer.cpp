// Reference transformer components: every backward against central finite differences (double),
// all entries of small random inputs and parameters.
//
// Tolerance (all tests): h = 1e-6; central-difference truncation O(h²)·|f'''| ~ 1e-12 and round-off
// ~ 1e-16·|L|/h ~ 1e-10 for |L| ~ 1, so atol 1e-8 + rtol 1e-6 has ~100× margin yet fails on any
// missing or wrong term (those are O(1e-2) or larger here).
#include <functional>

#include "reference/gradcheck.h"
#include "reference/transformer.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::ref::Tensor;

namespace {

constexpr double kH = 1e-6, kAtol = 1e-8, kRtol = 1e-6;

ref::LinearParams<double> rand_linear(int64_t in, int64_t out, Rng& rng) {
  return {ref::randn({out, in}, rng, 1.0 / std::sqrt(double(in))), ref::randn({out}, rng, 0.1)};
}
ref::LayerNormParams<double> rand_ln(int64_t C, Rng& rng) {
  ref::LayerNormParams<double> p{ref::randn({C}, rng, 0.1), ref::randn({C}, rng, 0.05)};
  for (auto& v : p.w.data) v += 1;
  return p;
}
ref::BlockParams<double> rand_block(int64_t C, int64_t hidden, Rng& rng) {
  ref::BlockParams<double> p;
  p.norm1 = rand_ln(C, rng);
  p.qkv = rand_linear(C, 3 * C, rng);
  p.proj = rand_linear(C, C, rng);
  p.norm2 = rand_ln(C, rng);
  p.fc1 = rand_linear(C, hidden, rng);
  p.fc2 = rand_linear(hidden, C, rng);
  return p;
}

// FD gradient of loss() w.r.t. tensor t vs the analytic gradient `got`.
void check(const std::string& name, const std::function<double()>& loss, Tensor<double>& t,
           const Tensor<double>& got) {
  EXPECT_CLOSE(name, got.data, ref::fd_gradient(loss, t, kH), kAtol, kRtol, t.shape);
}

}  // namespace

TEST(ReferenceTransformer, LinearBackwardMatchesFiniteDifferences) {
  Rng rng(11);
  Tensor<double> x = ref::randn({2, 3, 4}, rng);
  auto p = rand_linear(4, 5, rng);
  Tensor<double> g = ref::randn({2, 3, 5}, rng);
  auto loss = [&] { return ref::dot(ref::linear_forward(x, p).data, g.data); };
  ref::LinearParams<double> gp;
  Tensor<double> gx = ref::linear_backward(x, p, g, gp);
  check("linear gx", loss, x, gx);
  check("linear gw", loss, p.w, gp.w);
  check("linear gb", loss, p.b, gp.b);
}

TEST(ReferenceTransformer, LayerNormBackwardMatchesFiniteDifferences) {
  Rng rng(12);
  Tensor<double> x = ref::randn({3, 7}, rng, 2.0);
  auto p = rand_ln(7, rng);
  Tensor<double> g = ref::randn({3, 7}, rng);
  auto loss = [&] { return ref::dot(ref::layernorm_forward(x, p, 1e-5).data, g.data); };
  ref::LayerNormCache<double> c;
  ref::layernorm_forward(x, p, 1e-5, &c);
  ref::LayerNormParams<double> gp;
  Tensor<double> gx = ref::layernorm_backward(x, p, c, g, gp);
  check("layernorm gx", loss, x, gx);
  check("layernorm gw", loss, p.w, gp.w);
  check("layernorm gb", loss, p.b, gp.b);
}

TEST(ReferenceTransformer, GeluBackwardMatchesFiniteDifferences) {
  Rng rng(13);
  Tensor<double> x = ref::randn({4, 5}, rng, 2.0);
  Tensor<double> g = ref::randn({4, 5}, rng);
  auto loss = [&] { return ref::dot(ref::gelu_forward(x).data, g.data); };
  check("gelu gx", loss, x, ref::gelu_backward(x, g));
}

TEST(ReferenceTransformer, AttentionBackwardMatchesFiniteDifferences) {
  Rng rng(14);
  const int64_t B = 2, N = 5, C = 8;
  const int H = 2;
  Tensor<double> x = ref::randn({B, N, C}, rng);
  auto qkv = rand_linear(C, 3 * C, rng), proj = rand_linear(C, C, rng);
  Tensor<double> g = ref::randn({B, N, C}, rng);
  auto loss = [&] { return ref::dot(ref::attention_forward(x, qkv, proj, H).data, g.data); };
  ref::AttentionCache<double> c;
  ref::attention_forward(x, qkv, proj, H, &c);
  ref::LinearParams<double> gq, gp;
  Tensor<double> gx = ref::attention_backward(x, qkv, proj, H, c, g, gq, gp);
  check("attention gx", loss, x, gx);
  check("attention g qkv.w", loss, qkv.w, gq.w);
  check("attention g qkv.b", loss, qkv.b, gq.b);
  check("attention g proj.w", loss, proj.w, gp.w);
  check("attention g proj.b", loss, proj.b, gp.b);
}

TEST(ReferenceTransformer, BlockBackwardMatchesFiniteDifferences) {
  Rng rng(15);
  const int64_t B = 2, N = 4, C = 8, hidden = 16;
  const int H = 2;
  Tensor<double> x = ref::randn({B, N, C}, rng);
  auto p = rand_block(C, hidden, rng);
  Tensor<double> g = ref::randn({B, N, C}, rng);
  auto loss = [&] { return ref::dot(ref::block_forward(x, p, H).data, g.data); };
  ref::BlockCache<double> c;
  ref::block_forward(x, p, H, &c);
  ref::BlockParams<double> gp = ref::zeros_like(p);
  Tensor<double> gx = ref::block_backward(x, p, H, c, g, gp);
  check("block gx", loss, x, gx);
  std::map<std::string, Tensor<double>> pn, gn;
  ref::export_block(p, "b", pn);
  ref::export_block(gp, "b", gn);
  // export_block copies, so perturb the live parameters through a name -> tensor table.
  std::map<std::string, Tensor<double>*> live = {
      {"b.norm1.weight", &p.norm1.w},    {"b.norm1.bias", &p.norm1.b},
      {"b.attn.qkv.weight", &p.qkv.w},   {"b.attn.qkv.bias", &p.qkv.b},
      {"b.attn.proj.weight", &p.proj.w}, {"b.attn.proj.bias", &p.proj.b},
      {"b.norm2.weight", &p.norm2.w},    {"b.norm2.bias", &p.norm2.b},
      {"b.mlp.fc1.weight", &p.fc1.w},    {"b.mlp.fc1.bias", &p.fc1.b},
      {"b.mlp.fc2.weight", &p.fc2.w},    {"b.mlp.fc2.bias", &p.fc2.b}};
  ASSERT_EQ(live.size(), gn.size());
  for (auto& [name, t] : live) check("block grad " + name, loss, *t, gn.at(name));
}

// Backward accumulates: running it twice doubles the parameter gradients (shared-weight use).
TEST(ReferenceTransformer, BackwardAccumulatesParameterGradients) {
  Rng rng(16);
  Tensor<double> x = ref::randn({1, 3, 4}, rng);
  auto p = rand_block(4, 8, rng);
  Tensor<double> g = ref::randn({1, 3, 4}, rng);
  ref::BlockCache<double> c;
  ref::block_forward(x, p, 2, &c);
  ref::BlockParams<double> once = ref::zeros_like(p), twice = ref::zeros_like(p);
  ref::block_backward(x, p, 2, c, g, once);
  ref::block_backward(x, p, 2, c, g, twice);
  ref::block_backward(x, p, 2, c, g, twice);
  std::vector<double> doubled = once.qkv.w.data;
  for (auto& v : doubled) v *= 2;
  // Same operations twice: exact up to one rounding of the sum.
  EXPECT_CLOSE("accumulated qkv.w", twice.qkv.w.data, doubled, 0.0, 1e-15);
}

// float instantiation runs and agrees with double to float precision.
TEST(ReferenceTransformer, FloatBlockAgreesWithDouble) {
  Rng rng(17);
  Tensor<double> x = ref::randn({2, 6, 8}, rng);
  auto p = rand_block(8, 32, rng);
  auto to_f = [](const Tensor<double>& t) {
    Tensor<float> f(t.shape);
    for (int64_t i = 0; i < t.numel(); ++i) f[i] = float(t[i]);
    return f;
  };
  ref::BlockParams<float> pf;
  pf.norm1 = {to_f(p.norm1.w), to_f(p.norm1.b)};
  pf.qkv = {to_f(p.qkv.w), to_f(p.qkv.b)};
  pf.proj = {to_f(p.proj.w), to_f(p.proj.b)};
  pf.norm2 = {to_f(p.norm2.w), to_f(p.norm2.b)};
  pf.fc1 = {to_f(p.fc1.w), to_f(p.fc1.b)};
  pf.fc2 = {to_f(p.fc2.w), to_f(p.fc2.b)};
  // float32 rounding through two LayerNorms and an attention: ~1e-6 of O(1) values.
  EXPECT_CLOSE("block float vs double", ref::block_forward(to_f(x), pf, 2).data,
               ref::block_forward(x, p, 2).data, 1e-5, 1e-5);
}
