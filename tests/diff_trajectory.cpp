// Differential training: a 10-step AdamW pre-training trajectory, reference (Eigen, double,
// hand-written backward) against accelerated (LibTorch float32, autograd) on CPU, and on CUDA in
// the *Cuda cases (skipped with a printed reason when no GPU is present). Tiny config: width 32,
// 4 heads, depth 1, decoder depth 1, T = 12, N = 2 clips (M = 2), both HA-CM variants.
// Both sides start from the same core/model_init.h weights, see the same clips and the same
// uniforms at every step, and the accelerated forward gets the reference's ids_shuffle injected
// (HacmInject), so float32 rounding cannot flip a selection and the two runs stay on one path.
// AdamW (β 0.9/0.95, wd 0.05 on ≥2-D non-bias tensors, eps 1e-8) with a warmup + cosine lr,
// each side using its own schedule function. l1/l2 receive no gradient, so AdamW must leave them
// untouched on both sides (torch skips parameters whose .grad is None: hacm-spec §4.3).
//
// Also here (DifferentialOptim): the optimiser pieces on both backends in double, where they must
// agree to rounding — AdamW and SGD steps, the lr schedule, weight-decay and layer-decay groups —
// and the label-smoothing cross-entropy.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "accelerated/custom_kernels.h"
#include "accelerated/hacm.h"
#include "accelerated/train.h"
#include "core/model_init.h"
#include "reference/downstream.h"
#include "reference/hacm_model.h"
#include "reference/optim.h"
#include "tests/compare.h"
#include "tests/diff_hacm_case.h"
#include "tests/diff_util.h"

using namespace hacm;
using namespace hacm::test;
using hacm::ref::Tensor;

namespace {

constexpr int kSteps = 10;
constexpr double kLr = 1e-3, kMinLr = 1e-5, kWarmup = 0.4, kEpochs = 2.0, kItersPerEpoch = 5;
constexpr double kBeta1 = 0.9, kBeta2 = 0.95, kWd = 0.05;

bool criterion_param(const std::string& n) {
  return n.rfind("l1.", 0) == 0 || n.rfind("l2.", 0) == 0;
}
// Fractional epoch after step `it` (warmup covers the first two steps).
double epoch_at(int it) {
  return double(it + 1) / kItersPerEpoch;
}

struct Setup {
  ref::HacmConfig rc;
  accel::HacmConfig ac;
  ref::HacmWeights<double> w0;
  Tensor<double> x5;                   // [2, 3, 12, 25, 2]
  std::vector<Tensor<double>> ut, us;  // kSteps x [4, 36]
};

Setup make_setup(const std::string& variant) {
  SmallHacmModel m = small_hacm_model(variant, 91);  // x5 from seed 92
  Setup s{m.rc, m.ac, m.w, m.x5, {}, {}};
  Rng rng(93);
  for (int it = 0; it < kSteps; ++it) {
    s.ut.push_back(uniforms({4, 36}, rng));
    s.us.push_back(uniforms({4, 36}, rng));
  }
  return s;
}

struct Run {
  std::vector<double> loss, loss_rec, loss_cc, lr;
  std::vector<std::vector<int64_t>> ids_t, ids_s;           // per step, [4, 36] (reference only)
  std::map<std::string, std::vector<double>> final_params;  // state_dict name -> values
};

Run run_reference(const Setup& s) {
  ref::HacmWeights<double> w = s.w0;
  ref::HacmWeights<double> g = w.zeros_like();
  auto pn = w.named(), gn = g.named();
  std::vector<std::pair<std::string, Tensor<double>*>> pt, gt;
  for (size_t i = 0; i < pn.size(); ++i)
    if (!criterion_param(pn[i].first)) pt.push_back(pn[i]), gt.push_back(gn[i]);
  auto refs = ref::make_param_refs<double>(pt, gt, kWd);
  ref::AdamW<double> opt(kBeta1, kBeta2);
  Run r;
  for (int it = 0; it < kSteps; ++it) {
    auto f = ref::hacm_forward(s.x5, s.ut[size_t(it)], s.us[size_t(it)], w, s.rc);
    auto gr = ref::hacm_backward(f, s.x5, w, s.rc);
    auto src = gr.w.named();
    for (size_t i = 0; i < src.size(); ++i) *gn[i].second = *src[i].second;
    const double lr = ref::lr_at(epoch_at(it), kLr, kMinLr, kWarmup, kEpochs);
    opt.step(refs, lr);
    r.loss.push_back(f.loss), r.loss_rec.push_back(f.loss_rec), r.loss_cc.push_back(f.loss_cc),
        r.lr.push_back(lr);
    r.ids_t.push_back(f.sel_t.ids_shuffle), r.ids_s.push_back(f.sel_s.ids_shuffle);
  }
  for (const auto& [n, t] : w.named()) r.final_params[n] = t->data;
  return r;
}

at::Tensor ids(const std::vector<int64_t>& v, at::Device dev) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).reshape({4, -1}).to(dev);
}

Run run_accelerated(const Setup& s, const Run& ref_run, at::Device dev) {
  accel::StateDict sd;
  for (const auto& [n, t] : s.w0.named())
    sd[n] = to_at(*t, at::kFloat, dev).requires_grad_(!criterion_param(n));
  accel::AdamW opt(sd, accel::weight_decay_groups(sd, kWd), kBeta1, kBeta2);
  const at::Tensor xa = to_at(s.x5, at::kFloat, dev);
  Run r;
  for (int it = 0; it < kSteps; ++it) {
    opt.zero_grad();
    accel::HacmInject inj{ids(ref_run.ids_t[size_t(it)], dev), ids(ref_run.ids_s[size_t(it)], dev)};
    accel::HacmOutputs o =
        accel::hacm_forward(sd, s.ac, xa, to_at(s.ut[size_t(it)], at::kFloat, dev),
                            to_at(s.us[size_t(it)], at::kFloat, dev), &inj);
    o.loss.backward();
    const double lr = accel::cosine_lr(epoch_at(it), kLr, kMinLr, kWarmup, kEpochs);
    opt.step(lr);
    r.loss.push_back(o.loss.item<double>()), r.loss_rec.push_back(o.loss_rec.item<double>());
    r.loss_cc.push_back(o.loss_cc.item<double>()), r.lr.push_back(lr);
  }
  for (const auto& [n, t] : sd) r.final_params[n] = to_vec(t);
  return r;
}

void trajectory_case(const std::string& variant, at::Device dev) {
  if (dev.is_cuda()) strict_fp32();
  const Setup s = make_setup(variant);
  const Run r = run_reference(s);
  const Run a = run_accelerated(s, r, dev);
  const std::string tag = variant + " " + dev_name(dev);
  for (int it = 0; it < kSteps; ++it)
    std::printf("  %s step %d lr %.6g loss ref %.12f acc %.12f rel %.2e\n", tag.c_str(), it,
                r.lr[size_t(it)], r.loss[size_t(it)], a.loss[size_t(it)],
                std::fabs(a.loss[size_t(it)] - r.loss[size_t(it)]) / std::fabs(r.loss[size_t(it)]));
  // Both schedule functions implement util/lr_sched.py: equal up to the last ulp.
  EXPECT_CLOSE(tag + " lr", a.lr, r.lr, 0.0, 1e-14);
  // The loss must actually move, or this test would compare two frozen runs.
  EXPECT_LT(r.loss.back(), 0.9 * r.loss.front()) << "reference trajectory did not train";
  // float32 forward/backward rounding (~1e-7 relative) carried through 10 Adam steps: measured
  // ≤ 9.7e-7 relative on CPU (both variants, worst at step 1); bound 1e-5 (10x margin).
  EXPECT_CLOSE(tag + " losses", a.loss, r.loss, 0.0, 1e-5);
  EXPECT_CLOSE(tag + " loss_rec", a.loss_rec, r.loss_rec, 0.0, 1e-5);
  // loss_cc is a difference of softmax entries (README §5: float32 1e-3 rel or 1e-6 abs).
  EXPECT_CLOSE(tag + " loss_cc", a.loss_cc, r.loss_cc, 1e-6, 1e-3);
  // Final parameters: compare the change from the initial weights (the initial values dominate
  // the parameters and would hide update errors), normwise per tensor.
  std::map<std::string, std::vector<double>> init;
  for (const auto& [n, t] : s.w0.named()) init[n] = t->data;
  double worst = 0;
  std::string worst_name;
  for (const auto& [n, pr] : r.final_params) {
    ASSERT_TRUE(a.final_params.count(n)) << "accelerated run lacks " << n;
    const std::vector<double>& pa = a.final_params.at(n);
    const std::vector<double>& p0 = init.at(n);
    if (criterion_param(n)) {
      // No gradient, so AdamW (and its weight decay) must skip them (the reference run leaves
      // them out of its parameter list for the same reason).
      EXPECT_CLOSE(tag + " untouched " + n, pa, p0, 0.0, 0.0);
      continue;
    }
    // The key bias (rows C..2C of qkv.bias) adds q·b_k to a whole softmax row: its gradient is
    // analytically zero, and each side's is rounding noise (double ~1e-13, float32 ~1e-9, both
    // against eps 1e-8). Adam turns float32 noise into steps of up to ~lr in random directions,
    // so these entries are checked separately: the reference must stay put, the accelerated
    // change must stay within the total step budget Σ lr.
    size_t k0 = 0, k1 = 0;
    if (n.size() >= 13 && n.compare(n.size() - 13, 13, "attn.qkv.bias") == 0)
      k0 = pa.size() / 3, k1 = 2 * k0;
    double lr_sum = 0;
    for (double v : r.lr) lr_sum += v;
    double key_ref = 0, key_acc = 0;
    std::vector<double> da, dr;
    double mx = 0, err = 0;
    for (size_t i = 0; i < pa.size(); ++i) {
      if (i >= k0 && i < k1) {
        key_ref = std::max(key_ref, std::fabs(pr[i] - p0[i]));
        key_acc = std::max(key_acc, std::fabs(pa[i] - p0[i]));
        continue;
      }
      da.push_back(pa[i] - p0[i]), dr.push_back(pr[i] - p0[i]);
      mx = std::max(mx, std::fabs(dr.back()));
      err = std::max(err, std::fabs(da.back() - dr.back()));
    }
    if (k1 > k0) {
      std::printf("  %s %s key-bias change: ref %.3e acc %.3e (step budget %.3e)\n", tag.c_str(),
                  n.c_str(), key_ref, key_acc, lr_sum);
      EXPECT_LT(key_ref, 1e-6) << n << ": key bias moved in double although its gradient is zero";
      EXPECT_LE(key_acc, 1.5 * lr_sum) << n << ": key bias moved more than Adam's step budget";
    }
    ASSERT_GT(mx, 0) << n << " did not move in the reference";
    if (err / mx > worst) worst = err / mx, worst_name = n;
    // Updates are O(lr) per step and float32 stores p ≈ O(0.1..1) to ~6e-8·|p|, i.e. ~1e-4 of a
    // 1e-3 update per step. Measured worst 3.1e-4 of the tensor's largest change (CPU, released
    // blocks.0.mlp.fc2.weight); bound 3e-3 (10x margin).
    auto cr = compare_normwise(tag + " delta " + n, da, dr, 3e-3);
    if (!cr.ok) std::printf("  %s\n", cr.report.c_str());
    EXPECT_TRUE(cr.ok) << cr.report;
  }
  std::printf("  %s worst parameter-change error %.3e of max change (%s)\n", tag.c_str(), worst,
              worst_name.c_str());
}

}  // namespace

TEST(DifferentialTrajectory, ReleasedTenAdamWSteps) {
  trajectory_case("released", at::kCPU);
}
TEST(DifferentialTrajectory, CorrectedTenAdamWSteps) {
  trajectory_case("corrected", at::kCPU);
}
TEST(DifferentialTrajectory, ReleasedTenAdamWStepsCuda) {
  REQUIRE_CUDA();
  trajectory_case("released", at::kCUDA);
}
TEST(DifferentialTrajectory, CorrectedTenAdamWStepsCuda) {
  REQUIRE_CUDA();
  trajectory_case("corrected", at::kCUDA);
}

// ---- optimiser pieces in double on both sides: the semantics must agree to rounding.

namespace {

struct OptimCase {
  std::vector<std::string> names = {"blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
                                    "norm.weight", "pos_embed"};
  std::vector<std::vector<int64_t>> shapes = {{6, 4}, {6}, {4}, {1, 1, 3, 4}};
  std::vector<Tensor<double>> p, g;
  OptimCase() {
    for (size_t i = 0; i < names.size(); ++i) {
      p.push_back(ref_randn(shapes[i], 300 + i));
      g.push_back(Tensor<double>(shapes[i]));
    }
  }
  std::vector<std::pair<std::string, Tensor<double>*>> named(std::vector<Tensor<double>>& v) {
    std::vector<std::pair<std::string, Tensor<double>*>> r;
    for (size_t i = 0; i < names.size(); ++i) r.push_back({names[i], &v[i]});
    return r;
  }
  accel::StateDict state_dict() const {
    accel::StateDict sd;
    for (size_t i = 0; i < names.size(); ++i)
      sd[names[i]] = to_at(p[i], at::kDouble, at::kCPU).requires_grad_(true);
    return sd;
  }
  // Fresh gradients for step `it` on both sides.
  void set_grads(int it, accel::StateDict& sd) {
    for (size_t i = 0; i < names.size(); ++i) {
      g[i] = ref_randn(shapes[i], 400 + 10 * uint64_t(it) + i, 0.1);
      if (it == 2) g[i][0] = 0;  // an exactly-zero gradient entry (Adam: pure decay step)
      sd.at(names[i]).mutable_grad() = to_at(g[i], at::kDouble, at::kCPU);
    }
  }
  void compare(const std::string& tag, const accel::StateDict& sd) {
    // double on both sides, different operation order (e.g. lr/bc1 folded differently): ~1e-16
    // relative per step; bound 1e-13.
    for (size_t i = 0; i < names.size(); ++i)
      EXPECT_CLOSE(tag + " " + names[i], to_vec(sd.at(names[i])), p[i].data, 1e-13, 1e-13);
  }
};

}  // namespace

TEST(DifferentialOptim, AdamWStepsInDouble) {
  OptimCase c;
  accel::StateDict sd = c.state_dict();
  auto refs = ref::make_param_refs<double>(c.named(c.p), c.named(c.g), kWd);
  ref::AdamW<double> ro(kBeta1, kBeta2);
  accel::AdamW ao(sd, accel::weight_decay_groups(sd, kWd), kBeta1, kBeta2);
  for (int it = 0; it < 5; ++it) {
    c.set_grads(it, sd);
    const double lr = 1e-2 * (it + 1);
    ro.step(refs, lr);
    ao.step(lr);
  }
  c.compare("adamw", sd);
}

// On CUDA in float32, AdamW takes torch's fused kernel (custom kernels on) or the multi-tensor
// composition (off): both against the double reference on float32-exact values. Parameters of
// size ~1..3 move by ~lr per step (5 steps, lr up to 5e-2, total change <= ~0.15): float32
// rounding of p (~2e-7 per operation, ~1e-6 after 5 steps) against that change is ~1e-5; bound
// 1e-4 normwise on the change (a wrong lr scale, decay or bias correction is off by >= 1e-2).
TEST(DifferentialOptim, CudaAdamWFusedAndForeachMatchReference) {
  REQUIRE_CUDA();
  for (bool fused : {true, false}) {
    OptimCase c;
    for (auto& t : c.p) round_through(t, at::kFloat);
    const std::vector<Tensor<double>> p0 = c.p;
    accel::StateDict sd;
    for (size_t i = 0; i < c.names.size(); ++i)
      sd[c.names[i]] = to_at(c.p[i], at::kFloat, at::kCUDA).requires_grad_(true);
    auto refs = ref::make_param_refs<double>(c.named(c.p), c.named(c.g), kWd);
    ref::AdamW<double> ro(kBeta1, kBeta2);
    accel::set_custom_kernels(fused);
    accel::AdamW ao(sd, accel::weight_decay_groups(sd, kWd), kBeta1, kBeta2);
    for (int it = 0; it < 5; ++it) {
      for (size_t i = 0; i < c.names.size(); ++i) {
        c.g[i] = ref_randn(c.shapes[i], 400 + 10 * uint64_t(it) + i, 0.1);
        round_through(c.g[i], at::kFloat);
        if (it == 2) c.g[i][0] = 0;  // an exactly-zero gradient entry (Adam: pure decay step)
        sd.at(c.names[i]).mutable_grad() = to_at(c.g[i], at::kFloat, at::kCUDA);
      }
      const double lr = 1e-2 * (it + 1);
      ro.step(refs, lr);
      ao.step(lr);
    }
    accel::set_custom_kernels(true);
    for (size_t i = 0; i < c.names.size(); ++i) {
      std::vector<double> got = to_vec(sd.at(c.names[i])), want = c.p[i].data;
      for (size_t k = 0; k < got.size(); ++k)
        got[k] -= p0[i][int64_t(k)], want[k] -= p0[i][int64_t(k)];
      EXPECT_CLOSE_NORMWISE(std::string(fused ? "fused " : "foreach ") + c.names[i] + " change",
                            got, want, 1e-4);
    }
  }
}

TEST(DifferentialOptim, SgdMomentumSteps) {
  OptimCase c;
  accel::StateDict sd = c.state_dict();
  auto refs = ref::make_param_refs<double>(c.named(c.p), c.named(c.g), 1e-4);
  ref::SgdMomentum<double> ro(0.9);
  accel::Sgd ao(sd, accel::weight_decay_groups(sd, 1e-4), 0.9);
  for (int it = 0; it < 5; ++it) {
    c.set_grads(it, sd);
    const double lr = 0.1 / (it + 1);
    ro.step(refs, lr);
    ao.step(lr);
  }
  c.compare("sgd", sd);
}

TEST(DifferentialOptim, LrScheduleAndParamGroups) {
  // Schedule: same formula, so equal to the last ulp (1e-14 relative), over warmup and cosine.
  std::vector<double> ra, aa;
  for (int i = 0; i <= 100; ++i) {
    const double e = 0.1 * i;
    ra.push_back(ref::lr_at(e, 1e-3, 1e-5, 2.0, 10.0));
    aa.push_back(accel::cosine_lr(e, 1e-3, 1e-5, 2.0, 10.0));
  }
  EXPECT_CLOSE("cosine lr", aa, ra, 0.0, 1e-14);

  // Groups over the real HA-CM parameter names (depth 2, so blocks.0 and blocks.1 exist).
  ModelShape shape;
  shape.dim = shape.decoder_dim = 16;
  shape.depth = 2;
  shape.decoder_depth = 1;
  shape.frames = 12;
  accel::StateDict sd;
  for (const auto& [n, a] : init_pretrain_params(shape, 5))
    sd[n] = accel::to_tensor(a, at::kFloat).requires_grad_(!criterion_param(n));
  std::set<std::string> decayed;
  for (const auto& grp : accel::weight_decay_groups(sd, kWd))
    for (const auto& n : grp.names)
      if (grp.weight_decay > 0) decayed.insert(n);
  std::map<std::string, double> scale;  // accelerated lr scale per name
  std::map<std::string, bool> ld_decay;
  for (const auto& grp : accel::layer_decay_groups(sd, kWd, 0.75, shape.depth))
    for (const auto& n : grp.names) scale[n] = grp.lr_scale, ld_decay[n] = grp.weight_decay > 0;
  int checked = 0;
  for (const auto& [n, t] : sd) {
    if (criterion_param(n)) continue;
    const std::vector<int64_t> shp(t.sizes().begin(), t.sizes().end());
    const bool ref_decays = !ref::no_weight_decay(n, shp);
    EXPECT_EQ(decayed.count(n) == 1, ref_decays) << n << ": weight-decay group differs";
    EXPECT_EQ(ld_decay.at(n), ref_decays) << n << ": layer-decay group weight decay differs";
    const double rs = ref::layer_lr_scale(n, shape.depth, 0.75);
    EXPECT_NEAR(scale.at(n), rs, 1e-15 * rs) << n << ": layer lr scale differs";
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(DifferentialOptim, CrossEntropyLabelSmoothing) {
  Tensor<double> logits = f32(ref_randn({5, 7}, 501, 2.0));
  const std::vector<int64_t> labels = {0, 3, 6, 2, 3};
  for (double eps : {0.0, 0.1}) {
    Tensor<double> g;
    const double rl = ref::cross_entropy(logits, labels, eps, &g);
    at::Tensor la = to_at(logits, at::kDouble, at::kCPU).requires_grad_(true);
    at::Tensor loss = accel::cross_entropy_forward(
        la, at::tensor(labels, at::TensorOptions().dtype(at::kLong)), eps);
    loss.backward();
    // The accelerated version computes log_softmax in float32 by design (logits may be bf16):
    // ~1e-7 relative; bound 1e-5 (loss) and 1e-5 normwise (gradient).
    EXPECT_CLOSE("ce loss eps " + std::to_string(eps), to_vec(loss), std::vector<double>{rl}, 0.0,
                 1e-5);
    EXPECT_CLOSE_NORMWISE("ce grad eps " + std::to_string(eps), to_vec(la.grad()), g.data, 1e-5);
  }
}
