// Downstream encoder, BatchNorm and head backwards against central finite differences of the
// cross-entropy loss (small encoder: width 32, 4 heads, depth 2, T = 12, N = 3 clips).
#include <gtest/gtest.h>

#include <functional>

#include "core/model_init.h"
#include "reference/downstream.h"
#include "reference/gradcheck.h"
#include "tests/compare.h"

using namespace hacm;
using hacm::ref::Tensor;

namespace {

struct DownSetup {
  ref::EncoderConfig cfg;
  ref::EncoderWeights<double> w;
  ref::LinprobeHead<double> lp;
  ref::FinetuneHead<double> ft;
  Tensor<double> x5;
  std::vector<int64_t> labels{1, 4, 2};
};

DownSetup setup() {
  ModelShape s;
  s.dim = s.decoder_dim = 32;
  s.depth = 2;
  s.decoder_depth = 1;
  s.frames = 12;
  DownSetup st;
  st.cfg.heads = 4;
  st.w = ref::EncoderWeights<double>::load(
      ref::checkpoint_from_arrays<double>(init_pretrain_params(s, 31)), st.cfg);
  Rng rng(32);
  for (auto& [n, t] : st.w.named())
    for (auto& v : t->data) v += 0.05 * rng.normal();
  st.x5 = ref::randn({3, 3, 12, 25, 2}, rng, 0.3);
  st.lp.norm.running_mean = ref::randn({32}, rng, 0.1);
  st.lp.norm.running_var = Tensor<double>({32}, 0.5);
  st.lp.fc = {ref::randn({5, 32}, rng, 0.2), ref::randn({5}, rng, 0.1)};
  st.ft.fc1 = {ref::randn({6, 18 * 32}, rng, 0.05), ref::randn({6}, rng, 0.1)};
  st.ft.bn = {ref::randn({6}, rng, 0.1), ref::randn({6}, rng, 0.1), Tensor<double>({6}),
              Tensor<double>({6}, 1.0)};
  for (auto& v : st.ft.bn.w.data) v += 1.0;
  st.ft.fc2 = {ref::randn({5, 6}, rng, 0.3), ref::randn({5}, rng, 0.1)};
  return st;
}

void expect_fd(const std::string& name, const Tensor<double>& g, Tensor<double>& p,
               const std::function<double()>& loss, Rng& rng) {
  std::vector<double> d(p.data.size());
  for (auto& v : d) v = rng.normal();
  // h = 1e-5 central differences on |L| ~ 2: truncation + round-off ~1e-10.
  EXPECT_CLOSE(name, std::vector<double>{ref::dot(g.data, d)},
               std::vector<double>{ref::fd_directional(loss, p, d, 1e-5)}, 1e-8, 1e-6);
}

}  // namespace

// Fine-tuning step: encoder + finetune head (BN with batch statistics), label smoothing 0.1.
TEST(ReferenceDownstream, FinetuneBackwardMatchesFiniteDifferences) {
  DownSetup s = setup();
  auto loss = [&]() {
    auto tok = ref::encoder_forward(s.x5, s.w, s.cfg);
    return ref::cross_entropy(ref::finetune_head_forward(ref::finetune_features(tok), s.ft, true),
                              s.labels, 0.1);
  };
  ref::EncoderCache<double> ec;
  ref::HeadCache<double> hc;
  auto tok = ref::encoder_forward(s.x5, s.w, s.cfg, &ec);
  Tensor<double> gl;
  ref::cross_entropy(ref::finetune_head_forward(ref::finetune_features(tok), s.ft, true, 0.0, &hc),
                     s.labels, 0.1, &gl);
  ref::FinetuneHead<double> gh;
  auto gfeat = ref::finetune_head_backward(s.ft, hc, true, gl, gh);
  auto gw = s.w.zeros_like();
  ref::encoder_backward(s.w, s.cfg, ec, ref::finetune_features_backward(gfeat, tok.shape), gw);
  Rng rng(5);
  expect_fd("fc1.weight", gh.fc1.w, s.ft.fc1.w, loss, rng);
  expect_fd("bn.weight", gh.bn.w, s.ft.bn.w, loss, rng);
  expect_fd("bn.bias", gh.bn.b, s.ft.bn.b, loss, rng);
  expect_fd("fc2.weight", gh.fc2.w, s.ft.fc2.w, loss, rng);
  expect_fd("fc2.bias", gh.fc2.b, s.ft.fc2.b, loss, rng);
  auto gn = gw.named();
  auto wn = s.w.named();
  for (size_t i = 0; i < wn.size(); ++i)
    expect_fd(wn[i].first, *gn[i].second, *wn[i].second, loss, rng);
}

// Linear probe with BN batch statistics (training) and with running statistics.
TEST(ReferenceDownstream, LinprobeBackwardMatchesFiniteDifferences) {
  DownSetup s = setup();
  Tensor<double> feat = ref::linprobe_features(ref::encoder_forward(s.x5, s.w, s.cfg));
  for (bool batch : {true, false}) {
    auto loss = [&]() {
      return ref::cross_entropy(ref::linprobe_head_forward(feat, s.lp, batch), s.labels, 0.0);
    };
    ref::HeadCache<double> hc;
    Tensor<double> gl;
    ref::cross_entropy(ref::linprobe_head_forward(feat, s.lp, batch, 0.0, &hc), s.labels, 0.0, &gl);
    ref::LinprobeHead<double> g;
    auto gfeat = ref::linprobe_head_backward(s.lp, hc, batch, gl, g);
    Rng rng(6);
    const std::string tag = batch ? " (batch stats)" : " (running stats)";
    expect_fd("fc.weight" + tag, g.fc.w, s.lp.fc.w, loss, rng);
    expect_fd("fc.bias" + tag, g.fc.b, s.lp.fc.b, loss, rng);
    expect_fd("feat" + tag, gfeat, feat, loss, rng);
  }
}

// BN momentum update (PyTorch): running ← 0.9·running + 0.1·batch, variance unbiased.
TEST(ReferenceDownstream, BatchNormRunningUpdate) {
  ref::BatchNormParams<double> p{{}, {}, Tensor<double>({1}, 1.0), Tensor<double>({1}, 2.0)};
  Tensor<double> x({3, 1});
  x[0] = 1, x[1] = 2, x[2] = 6;  // mean 3, unbiased var 7, biased 14/3
  auto y = ref::batchnorm_forward(x, p, 0.0, true, 0.1);
  EXPECT_CLOSE("running_mean", p.running_mean.data, std::vector<double>{1.2}, 1e-15, 0.0);
  EXPECT_CLOSE("running_var", p.running_var.data, std::vector<double>{2.5}, 1e-15, 0.0);
  EXPECT_CLOSE("normalised", y.data,
               (std::vector<double>{-2 / std::sqrt(14.0 / 3), -1 / std::sqrt(14.0 / 3),
                                    3 / std::sqrt(14.0 / 3)}),
               1e-15, 0.0);
}

namespace {

// Fine-tuning loss with drop-path scales `drop` (one per block, [N·M] each) and a token dropout
// mask (empty = none); grads into gw / gh when non-null.
double finetune_loss(DownSetup& s, const std::vector<ref::BranchScales<double>>* drop,
                     const Tensor<double>& mask, ref::EncoderWeights<double>* gw = nullptr,
                     ref::FinetuneHead<double>* gh = nullptr) {
  ref::EncoderCache<double> ec;
  ref::HeadCache<double> hc;
  Tensor<double> tok = ref::encoder_forward(s.x5, s.w, s.cfg, &ec, drop);
  Tensor<double> td = mask.numel() ? ref::dropout_forward(tok, mask) : tok;
  Tensor<double> gl;
  const double l = ref::cross_entropy(
      ref::finetune_head_forward(ref::finetune_features(td), s.ft, true, 0.0, &hc), s.labels, 0.1,
      gw ? &gl : nullptr);
  if (!gw) return l;
  Tensor<double> gtok = ref::finetune_features_backward(
      ref::finetune_head_backward(s.ft, hc, true, gl, *gh), tok.shape);
  if (mask.numel()) gtok = ref::dropout_backward(mask, gtok);
  ref::encoder_backward(s.w, s.cfg, ec, gtok, *gw);
  return l;
}

}  // namespace

// Drop-path on both branches of both blocks and dropout on the tokens, with FIXED masks (a mix of
// dropped and kept samples / elements, the kept ones scaled by 1/(1 − p)): the backward is the
// derivative of that fixed-mask forward.
TEST(ReferenceDownstream, DropPathBackwardMatchesFiniteDifferences) {
  DownSetup s = setup();
  const double k1 = 1 / (1 - 0.2), k2 = 1 / (1 - 0.4);  // per-block keep scales
  // 3 clips x 2 persons = 6 samples per block; every branch drops some and keeps some.
  std::vector<ref::BranchScales<double>> drop = {{{k1, 0, k1, k1, 0, k1}, {0, k1, k1, 0, k1, k1}},
                                                 {{k2, k2, 0, k2, 0, 0}, {k2, 0, k2, k2, k2, 0}}};
  Rng mrng(9);
  Tensor<double> mask = ref::dropout_mask<double>({3, 2, 4, 18, 32}, 0.3, mrng);
  int dropped = 0;
  for (double v : mask.data) dropped += v == 0;
  ASSERT_GT(dropped, 0);
  ASSERT_LT(dropped, mask.numel());
  ref::EncoderWeights<double> gw = s.w.zeros_like();
  ref::FinetuneHead<double> gh;
  finetune_loss(s, &drop, mask, &gw, &gh);
  auto loss = [&]() { return finetune_loss(s, &drop, mask); };
  Rng rng(7);
  expect_fd("fc1.weight", gh.fc1.w, s.ft.fc1.w, loss, rng);
  expect_fd("bn.weight", gh.bn.w, s.ft.bn.w, loss, rng);
  auto gn = gw.named();
  auto wn = s.w.named();
  for (size_t i = 0; i < wn.size(); ++i)
    expect_fd(wn[i].first + " (drop-path + dropout)", *gn[i].second, *wn[i].second, loss, rng);
  // The masks matter: the loss differs from the eval forward's.
  const double l_masked = loss(), l_eval = finetune_loss(s, nullptr, Tensor<double>());
  std::printf("  loss with masks %.6f, without %.6f\n", l_masked, l_eval);
  EXPECT_GT(std::abs(l_masked - l_eval), 1e-3);
}

// Rate 0: drop_path_scales gives empty scales and draws nothing, dropout_mask gives ones, and
// the forward and every gradient are bitwise those of the plain (eval) path; explicit scales of
// exactly 1 (= 1/(1 − 0)) change nothing either.
TEST(ReferenceDownstream, ZeroRatesChangeNothing) {
  DownSetup s = setup();
  Rng rng(11), fresh(11);
  auto drop0 = ref::drop_path_scales<double>(2, 6, 0.0, rng);
  ASSERT_EQ(drop0.size(), 2u);
  for (const auto& b : drop0) EXPECT_TRUE(b.attn.empty() && b.mlp.empty());
  Tensor<double> ones = ref::dropout_mask<double>({3, 2, 4, 18, 32}, 0.0, rng);
  EXPECT_EQ(rng.uniform(), fresh.uniform());  // no draws were taken
  for (double v : ones.data) ASSERT_EQ(v, 1.0);
  std::vector<ref::BranchScales<double>> unit = {
      {std::vector<double>(6, 1.0), std::vector<double>(6, 1.0)},
      {std::vector<double>(6, 1.0), {}}};
  ref::EncoderWeights<double> g_ref = s.w.zeros_like(), g0 = s.w.zeros_like(),
                              g1 = s.w.zeros_like();
  ref::FinetuneHead<double> h_ref, h0, h1;
  const double l_ref = finetune_loss(s, nullptr, Tensor<double>(), &g_ref, &h_ref);
  const double l0 = finetune_loss(s, &drop0, ones, &g0, &h0);
  const double l1 = finetune_loss(s, &unit, ones, &g1, &h1);
  // Bitwise: multiplying by exactly 1 and adding the same terms in the same order.
  EXPECT_CLOSE("loss, rate 0", std::vector<double>{l0}, std::vector<double>{l_ref}, 0.0, 0.0);
  EXPECT_CLOSE("loss, unit scales", std::vector<double>{l1}, std::vector<double>{l_ref}, 0.0, 0.0);
  auto nr = g_ref.named(), n0 = g0.named(), n1 = g1.named();
  for (size_t i = 0; i < nr.size(); ++i) {
    // Bitwise, as above.
    EXPECT_CLOSE(nr[i].first + " (rate 0)", n0[i].second->data, nr[i].second->data, 0.0, 0.0);
    EXPECT_CLOSE(nr[i].first + " (unit scales)", n1[i].second->data, nr[i].second->data, 0.0, 0.0);
  }
  // Bitwise, as above.
  EXPECT_CLOSE("head fc1.weight grad (rate 0)", h0.fc1.w.data, h_ref.fc1.w.data, 0.0, 0.0);
}

// The drawn masks: block i of depth 4 at rate 0.3·i/3, each value exactly 0 or 1/(1 − p), the
// dropped fraction near p (B = 20000 draws: binomial sd <= 0.0035), so E[mask] ≈ 1.
TEST(ReferenceDownstream, MasksFollowTheirRates) {
  Rng rng(21);
  const int64_t B = 20000;
  auto drop = ref::drop_path_scales<float>(4, B, 0.3, rng);
  ASSERT_EQ(drop.size(), 4u);
  EXPECT_TRUE(drop[0].attn.empty() && drop[0].mlp.empty());  // linspace starts at 0
  for (int i = 1; i < 4; ++i) {
    const double p = 0.1 * i;
    for (const auto* br : {&drop[size_t(i)].attn, &drop[size_t(i)].mlp}) {
      ASSERT_EQ(int64_t(br->size()), B);
      int64_t zeros = 0;
      for (float v : *br) {
        ASSERT_TRUE(v == 0.f || v == float(1 / (1 - p))) << v;
        zeros += v == 0.f;
      }
      // 5 binomial standard deviations (sqrt(0.3·0.7/20000) = 0.0032).
      EXPECT_CLOSE("drop-path rate, block " + std::to_string(i),
                   std::vector<double>{double(zeros) / double(B)}, std::vector<double>{p}, 0.016,
                   0.0);
    }
  }
  // The two branches of a block are independent draws.
  EXPECT_NE(drop[3].attn, drop[3].mlp);
  Tensor<float> m = ref::dropout_mask<float>({B}, 0.3, rng);
  double mean = 0;
  for (float v : m.data) mean += v;
  mean /= double(B);
  // Inverted dropout keeps the expectation: sd of the mean sqrt(0.3/0.7/B) = 0.0046; 5 sd.
  EXPECT_CLOSE("dropout mask mean", std::vector<double>{mean}, std::vector<double>{1.0}, 0.025,
               0.0);
}
