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
