// Differential: whole models, reference (Eigen, double, hand-written backward) against
// accelerated (LibTorch float32 on CPU, and on CUDA when present; autograd). Small config:
// width 32, 4 heads, depth 1 / decoder depth 1, T = 12 (HA-CM) / 16 (MAMP), N = 2 clips, M = 2.
// Identical initial weights from core/model_init.h; inputs and uniforms from our generator,
// rounded to float32 so both backends see the same values; the reference's selection is injected
// into the accelerated run so float32 rounding cannot flip it.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "accelerated/downstream.h"
#include "accelerated/hacm.h"
#include "accelerated/mamp.h"
#include "core/model_init.h"
#include "reference/downstream.h"
#include "reference/hacm_model.h"
#include "reference/mamp.h"
#include "tests/compare.h"
#include "tests/diff_hacm_case.h"
#include "tests/diff_util.h"
#include "tests/fixtures.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

// Gradient of each reference tensor against the autograd one (undefined = 0).
void compare_grads(const std::string& tag,
                   const std::vector<std::pair<std::string, Tensor<double>*>>& ref_grads,
                   const accel::StateDict& sd) {
  for (const auto& [n, g] : ref_grads) {
    const at::Tensor& p = sd.at(n);
    std::vector<double> got =
        p.grad().defined() ? to_vec(p.grad()) : std::vector<double>(g->data.size(), 0.0);
    double mx = 0;
    for (double v : g->data) mx = std::max(mx, std::fabs(v));
    if (mx == 0) {
      // l1/l2: no gradient in either backend.
      EXPECT_CLOSE(tag + " grad " + n, got, g->data, 0.0, 0.0);
      continue;
    }
    // float32 vs double backward through ~10 layers: README §5 float32 gradient bound 1e-3
    // normwise per tensor (measured by the authors' float32 run ≤ 1.3e-6).
    EXPECT_CLOSE_NORMWISE(tag + " grad " + n, got, g->data, 1e-3);
  }
}

void hacm_case(const std::string& variant) {
  SmallHacmCase c = small_hacm_case(variant, 41);
  auto& [rc, ac, w, x5, ut, us, f, g] = c;
  for (at::Device dev : test_devices()) {
    if (dev.is_cuda()) strict_fp32();
    const std::string tag = variant + " " + dev_name(dev);
    accel::StateDict sd = state_dict(w.named(), dev);
    at::Tensor xa = to_at(x5, at::kFloat, dev).requires_grad_(true);
    accel::HacmInject inj{ids(f.sel_t.ids_shuffle, 4, dev), ids(f.sel_s.ids_shuffle, 4, dev)};
    accel::HacmOutputs o = accel::hacm_forward(sd, ac, xa, to_at(ut, at::kFloat, dev),
                                               to_at(us, at::kFloat, dev), &inj);
    // Forward, float32 vs double: ~1e-6 relative accumulated rounding; bounds 1e-5 / 1e-4.
    EXPECT_CLOSE(tag + " loss", to_vec(o.loss), std::vector<double>{f.loss}, 0.0, 1e-5);
    EXPECT_CLOSE(tag + " loss_rec", to_vec(o.loss_rec), std::vector<double>{f.loss_rec}, 0.0, 1e-5);
    // loss_cc is a difference of softmax entries: README §5 float32 1e-3 rel or 1e-6 abs.
    EXPECT_CLOSE(tag + " loss_cc", to_vec(o.loss_cc), std::vector<double>{f.loss_cc}, 1e-6, 1e-3);
    EXPECT_CLOSE(tag + " mask", to_vec(o.mask), f.mask.data, 0.0, 0.0);
    EXPECT_CLOSE_NORMWISE(tag + " enc_in", to_vec(o.enc_in), f.enc_in.data, 1e-5);
    EXPECT_CLOSE_NORMWISE(tag + " pred", to_vec(o.pred), f.pred.data, 1e-4);
    EXPECT_CLOSE_NORMWISE(tag + " target_norm", to_vec(o.target_norm), f.target_norm.data, 1e-4);
    o.loss.backward();
    compare_grads(tag, g.w.named(), sd);
    EXPECT_CLOSE_NORMWISE(tag + " grad x5", to_vec(xa.grad()), g.x5.data, 1e-3);
  }
}

}  // namespace

TEST(DifferentialModel, ReleasedLossAndGradients) {
  hacm_case("released");
}
TEST(DifferentialModel, CorrectedLossAndGradients) {
  hacm_case("corrected");
}

TEST(DifferentialModel, MampLossAndGradients) {
  const ModelShape s = small_mamp_shape();
  ref::MampConfig rc;
  rc.heads = 4;
  auto w = ref::MampWeights<double>::load(
      ref::checkpoint_from_arrays<double>(init_pretrain_params(s, 51)), rc);
  Tensor<double> x5 = f32(ref_randn({2, 3, 16, 25, 2}, 52, 0.3)), U = uniforms({4, 100}, 53);
  auto f = ref::mamp_forward(x5, U, w, rc);
  auto g = ref::mamp_backward(f, x5, w, rc);
  accel::MampConfig ac;
  ac.dim = 32;
  ac.heads = 4;
  ac.depth = ac.decoder_depth = 1;
  for (at::Device dev : test_devices()) {
    if (dev.is_cuda()) strict_fp32();
    const std::string tag = std::string("mamp ") + dev_name(dev);
    accel::StateDict sd = state_dict(w.named(), dev);
    at::Tensor order = ids(f.sel.ids_shuffle, 4, dev);
    accel::MampOutputs o =
        accel::mamp_forward(sd, ac, to_at(x5, at::kFloat, dev), to_at(U, at::kFloat, dev), &order);
    // Motion scores: float32 differences of O(1) coordinates, ~1e-7 relative.
    EXPECT_CLOSE_NORMWISE(tag + " motion_raw", to_vec(o.motion_raw), f.motion_raw.data, 1e-5);
    EXPECT_CLOSE(tag + " mask", to_vec(o.mask), f.sel.mask.data, 0.0, 0.0);
    EXPECT_CLOSE(tag + " loss", to_vec(o.loss), std::vector<double>{f.loss}, 0.0,
                 1e-5);  // as HA-CM
    EXPECT_CLOSE_NORMWISE(tag + " pred", to_vec(o.pred), f.pred.data, 1e-4);
    o.loss.backward();
    compare_grads(tag, g.w.named(), sd);
  }
}

// Downstream encoder (every token) and both heads in eval mode, plus the linear probe with BN
// batch statistics.
TEST(DifferentialModel, DownstreamLogits) {
  ModelShape s;
  s.dim = s.decoder_dim = 32;
  s.depth = 2;
  s.decoder_depth = 1;
  s.frames = 12;
  ref::EncoderConfig rc;
  rc.heads = 4;
  auto w = ref::EncoderWeights<double>::load(
      ref::checkpoint_from_arrays<double>(init_pretrain_params(s, 61)), rc);
  Tensor<double> x5 = f32(ref_randn({3, 3, 12, 25, 2}, 62, 0.3));
  ref::LinprobeHead<double> lp;
  lp.norm.running_mean = f32(ref_randn({32}, 63, 0.1));
  lp.norm.running_var = Tensor<double>({32}, 0.5);
  lp.fc = {f32(ref_randn({7, 32}, 64, 0.2)), f32(ref_randn({7}, 65, 0.1))};
  ref::FinetuneHead<double> ft;
  ft.fc1 = {f32(ref_randn({6, 18 * 32}, 66, 0.05)), f32(ref_randn({6}, 67, 0.1))};
  ft.bn = {f32(ref_randn({6}, 68, 0.1)), f32(ref_randn({6}, 69, 0.1)), f32(ref_randn({6}, 70, 0.1)),
           Tensor<double>({6}, 0.75)};
  ft.fc2 = {f32(ref_randn({7, 6}, 71, 0.3)), f32(ref_randn({7}, 72, 0.1))};
  auto tok = ref::encoder_forward(x5, w, rc);
  auto feat = ref::linprobe_features(tok);
  auto lp_run = ref::linprobe_head_forward(feat, lp, false),
       lp_bat = ref::linprobe_head_forward(feat, lp, true);
  auto ft_log = ref::finetune_head_forward(ref::finetune_features(tok), ft, false);

  accel::EncoderConfig ac;
  ac.dim = 32;
  ac.heads = 4;
  ac.depth = 2;
  ac.idx_kept = rc.kept;
  for (at::Device dev : test_devices()) {
    if (dev.is_cuda()) strict_fp32();
    const std::string tag = std::string("downstream ") + dev_name(dev);
    accel::StateDict sd = state_dict(w.named(), dev);
    auto put = [&](const std::string& n, const Tensor<double>& t) {
      sd[n] = to_at(t, at::kFloat, dev);
    };
    put("lp.fc.0.running_mean", lp.norm.running_mean);
    put("lp.fc.0.running_var", lp.norm.running_var);
    put("lp.fc.1.weight", lp.fc.w);
    put("lp.fc.1.bias", lp.fc.b);
    put("ft.fc1.weight", ft.fc1.w);
    put("ft.fc1.bias", ft.fc1.b);
    put("ft.bn.weight", ft.bn.w);
    put("ft.bn.bias", ft.bn.b);
    put("ft.bn.running_mean", ft.bn.running_mean);
    put("ft.bn.running_var", ft.bn.running_var);
    put("ft.fc2.weight", ft.fc2.w);
    put("ft.fc2.bias", ft.fc2.b);
    at::NoGradGuard no_grad;
    at::Tensor t = accel::downstream_encoder_forward(sd, ac, to_at(x5, at::kFloat, dev));
    // Forward through 2 blocks in float32: ~1e-6 relative; bound 1e-5 normwise (logits 1e-4).
    EXPECT_CLOSE_NORMWISE(tag + " tokens", to_vec(t), tok.data, 1e-5);
    at::Tensor fa = accel::linprobe_features_forward(t);
    EXPECT_CLOSE_NORMWISE(
        tag + " linprobe running",
        to_vec(accel::linprobe_head_forward(fa, sd, "lp.fc.1.", "lp.fc.0.", false)), lp_run.data,
        1e-4);
    EXPECT_CLOSE_NORMWISE(
        tag + " linprobe batch",
        to_vec(accel::linprobe_head_forward(fa, sd, "lp.fc.1.", "lp.fc.0.", true)), lp_bat.data,
        1e-4);
    EXPECT_CLOSE_NORMWISE(tag + " finetune",
                          to_vec(accel::finetune_head_forward(t, sd, "ft.", false, 0.0)),
                          ft_log.data, 1e-4);
  }
}
