// accel::GradStep (accelerated/grad_step.h): the eager path equals plain autograd exactly, bf16
// autocast really applies, and the CUDA-graph path follows the eager path's training trajectory
// (CUDA cases skip with a printed reason where no GPU is present).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "accelerated/downstream.h"
#include "accelerated/grad_step.h"
#include "accelerated/hacm.h"
#include "accelerated/mamp.h"
#include "accelerated/precision.h"
#include "accelerated/train.h"
#include "core/model_init.h"
#include "core/skeleton.h"
#include "tests/accel_util.h"
#include "tests/compare.h"

using namespace hacm;
using namespace hacm::test;

namespace {

// A small pretraining model: width 32, 4 heads, depth 1 / decoder 1, 12 frames, 2 clips x 2
// persons. model: "released" | "corrected" (HA-CM) | "mamp".
struct Small {
  std::string model;
  at::Device dev;
  accel::StateDict params;
  accel::HacmConfig hc;
  accel::MampConfig mc;
  int64_t L = 0;  // uniforms per person-sequence

  Small(const std::string& m, at::Device d) : model(m), dev(d) {
    const bool hacm = model != "mamp";
    ModelShape s;
    s.dim = s.decoder_dim = 32;
    s.depth = s.decoder_depth = 1;
    s.frames = 12;
    s.hacm = hacm;
    s.joints = hacm ? 18 : 25;
    s.t_patch = hacm ? 3 : 4;
    for (const auto& [k, a] : init_pretrain_params(s, 5)) {
      const bool trainable = k.rfind("l1.", 0) != 0 && k.rfind("l2.", 0) != 0;
      params[k] = accel::to_tensor(a, at::kFloat).to(dev).set_requires_grad(trainable);
    }
    hc.dim = mc.dim = 32;
    hc.heads = mc.heads = 4;
    hc.depth = hc.decoder_depth = mc.depth = mc.decoder_depth = 1;
    if (hacm) hc.variant = model;
    accel::hacm_place_indices(hc, dev);
    L = hacm ? (12 / 3 / 2) * 18 : (12 / 4) * 25;
  }

  // The step's inputs, drawn from our Rng: x5 [2, 3, 12, 25, 2], U [4, L] (one or two).
  std::vector<at::Tensor> inputs(uint64_t k, int64_t clips = 2) const {
    std::vector<at::Tensor> in{accel::rng_uniform({clips, 3, 12, 25, 2}, 100 + k, dev, -1, 1)};
    in.push_back(accel::rng_uniform({2 * clips, L}, 200 + k, dev));
    if (model != "mamp") in.push_back(accel::rng_uniform({2 * clips, L}, 300 + k, dev));
    return in;
  }

  at::Tensor loss(const std::vector<at::Tensor>& in) {
    return model == "mamp" ? accel::mamp_forward(params, mc, in[0], in[1]).loss
                           : accel::hacm_forward(params, hc, in[0], in[1], in[2]).loss;
  }

  accel::GradStep grad_step(accel::Precision p, bool graph) {
    return accel::GradStep(params, p, graph, [this](const auto& in) { return loss(in); });
  }
};

struct Trajectory {
  std::vector<double> loss;
  std::vector<double> params;  // every parameter after the last step, concatenated
  bool graphed = false;        // GradStep still in graph mode after the last step
};

// `steps` AdamW steps (β 0.9 / 0.95, wd 0.05, lr 1e-3) with GradStep (or, with `plain`, the
// runner's former zero_grad / forward / backward sequence).
Trajectory train(const std::string& model, at::Device dev, accel::Precision p, bool graph,
                 int steps, bool plain = false) {
  Small m(model, dev);
  accel::AdamW opt(m.params, accel::weight_decay_groups(m.params, 0.05), 0.9, 0.95);
  accel::GradStep gs = m.grad_step(p, graph);
  Trajectory t;
  for (int k = 0; k < steps; ++k) {
    std::vector<at::Tensor> in = m.inputs(uint64_t(k));
    at::Tensor loss;
    if (plain) {
      opt.zero_grad();
      loss = m.loss(in);
      loss.backward();
    } else {
      loss = gs.run(in);
    }
    opt.step(1e-3);
    t.loss.push_back(loss.item<double>());
  }
  t.graphed = gs.graphed();
  for (const auto& [k, v] : m.params) {
    std::vector<double> x = to_vec(v);
    t.params.insert(t.params.end(), x.begin(), x.end());
  }
  return t;
}

const char* const kModels[] = {"released", "corrected", "mamp"};

}  // namespace

TEST(GradStep, EagerEqualsPlainAutograd) {
  for (const at::Device& dev : test_devices()) {
    strict_fp32();
    for (const char* model : kModels) {
      const std::string tag = std::string(model) + " " + dev_name(dev);
      Trajectory a = train(model, dev, accel::Precision::kFp32, false, 4);
      Trajectory b = train(model, dev, accel::Precision::kFp32, false, 4, /*plain=*/true);
      // The same arithmetic on the same inputs (gradients replaced, not
      // accumulated, between steps): identical on the CPU. On CUDA the backward's atomic adds
      // (gather / index_select) may sum in another order: float32 rounding, bound 1e-5.
      const double tol = dev.is_cuda() ? 1e-5 : 0.0;
      EXPECT_CLOSE(tag + " losses", a.loss, b.loss, 0.0, tol);
      EXPECT_CLOSE_NORMWISE(tag + " parameters", a.params, b.params, tol);
    }
  }
}

TEST(GradStep, Bf16AutocastApplies) {
  // CPU autocast to bfloat16: the loss moves by bf16 rounding (8-bit mantissa, ~4e-3 relative
  // per operation) but stays near the float32 loss; the gradients stay float32.
  for (const char* model : kModels) {
    Small m(model, at::kCPU);
    std::vector<at::Tensor> in = m.inputs(0);
    const double l32 = m.grad_step(accel::Precision::kFp32, false).run(in).item<double>();
    accel::GradStep gs = m.grad_step(accel::Precision::kBf16, false);
    const double l16 = gs.run(in).item<double>();
    std::printf("  %s: fp32 loss %.9f, bf16 autocast loss %.9f\n", model, l32, l16);
    EXPECT_NE(l32, l16) << model << ": bf16 autocast changed nothing";
    EXPECT_NEAR(l16, l32, 5e-2 * std::fabs(l32)) << model;  // bf16 rounding through 2 blocks
    EXPECT_EQ(m.params.at("blocks.0.mlp.fc1.weight").grad().scalar_type(), at::kFloat);
    EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU)) << "autocast left on";
  }
}

TEST(GradStep, GraphNeedsCudaInputs) {
  // CUDA builds refuse CPU inputs when run; builds without CUDA refuse graph mode outright.
  Small m("released", at::kCPU);
  EXPECT_THROW(m.grad_step(accel::Precision::kFp32, true).run(m.inputs(0)), std::exception);
  try {
    m.grad_step(accel::Precision::kFp32, true).run(m.inputs(0));
  } catch (const std::exception& e) {
    std::printf("  refused: %s\n", e.what());
  }
}

TEST(GradStep, CudaGraphFollowsEagerTrajectory) {
  REQUIRE_CUDA();
  const at::Device dev(at::kCUDA);
  for (accel::Precision p : {accel::Precision::kFp32, accel::Precision::kBf16}) {
    accel::set_matmul_precision(p);
    for (const char* model : kModels) {
      const std::string tag = std::string(model) + " " + accel::precision_name(p);
      Trajectory g = train(model, dev, p, /*graph=*/true, 10);
      Trajectory e = train(model, dev, p, /*graph=*/false, 10);
      EXPECT_TRUE(g.graphed) << tag << ": the capture failed and GradStep fell back to eager";
      // A replay runs the captured kernels of the eager step; only the order of the backward's
      // atomic adds may differ. float32: rounding carried through 10 Adam steps (the CPU-vs-
      // reference trajectories stay under 1e-6, diff_trajectory.cpp), bound 1e-5. bf16: the same
      // in bfloat16 activations (~4e-3 per rounding), bound 1e-2.
      const double tol = p == accel::Precision::kFp32 ? 1e-5 : 1e-2;
      EXPECT_CLOSE(tag + " losses", g.loss, e.loss, 0.0, tol);
      // Adam turns rounding noise in analytically-zero gradients (the key bias) into O(lr) steps
      // in either run (diff_trajectory.cpp), so the parameters compare normwise, bound 1e-3.
      EXPECT_CLOSE_NORMWISE(tag + " parameters", g.params, e.params, 1e-3);
      // The loss changes from step to step: the replays read each step's new inputs.
      EXPECT_NE(g.loss[0], g.loss[9]) << tag;
    }
  }
  accel::set_matmul_precision(accel::Precision::kFp32);
}

TEST(GradStep, CudaGraphKeepsGradientsInPlace) {
  REQUIRE_CUDA();
  strict_fp32();
  Small m("released", at::Device(at::kCUDA));
  accel::GradStep gs = m.grad_step(accel::Precision::kFp32, true);
  gs.run(m.inputs(0));
  const at::Tensor& w = m.params.at("blocks.0.attn.qkv.weight");
  const void* where = w.grad().data_ptr();
  at::Tensor g0 = w.grad().clone();
  gs.run(m.inputs(1));
  EXPECT_EQ(w.grad().data_ptr(), where) << "the replay must write the captured gradient tensor";
  EXPECT_GT((w.grad() - g0).abs().max().item<double>(), 0.0) << "gradient not rewritten";
  // A different batch size cannot replay the captured graph.
  EXPECT_THROW(gs.run(m.inputs(2, /*clips=*/3)), std::invalid_argument);
}

TEST(GradStep, CudaCaptureFailureFallsBackToEager) {
  REQUIRE_CUDA();
  strict_fp32();
  // A forward with a host-to-device copy of a pageable tensor, which a capture forbids: the
  // capture fails, the step runs eagerly (same loss and gradients as plain eager), and the error
  // is kept; later steps stay eager.
  Small m("released", at::Device(at::kCUDA));
  accel::GradStep bad(m.params, accel::Precision::kFp32, true, [&](const auto& in) {
    at::Tensor one = at::ones({1}).to(m.dev);  // pageable host -> device copy
    return m.loss(in) * one.sum();
  });
  std::vector<at::Tensor> in = m.inputs(0);
  const double l = bad.run(in).item<double>();
  EXPECT_FALSE(bad.graphed());
  EXPECT_FALSE(bad.capture_error().empty());
  std::printf("  capture error kept: %s\n", bad.capture_error().c_str());
  at::Tensor g = m.params.at("blocks.0.attn.qkv.weight").grad().clone();
  accel::GradStep plain = m.grad_step(accel::Precision::kFp32, false);
  EXPECT_NEAR(plain.run(in).item<double>(), l, 1e-6 * std::fabs(l));
  EXPECT_CLOSE_NORMWISE("gradient after the fallback",
                        to_vec(m.params.at("blocks.0.attn.qkv.weight").grad()), to_vec(g), 1e-5);
  EXPECT_NO_THROW(bad.run(m.inputs(1)));  // still eager, still working
}

// Fine-tuning draws drop-path and dropout masks from torch's generator, reseeded every step: the
// graph's replays must draw the eager step's masks (the replay reads the generator's seed and
// offset at launch; the capture's warm-up leaves the generator as it found it).
TEST(GradStep, CudaGraphFinetuneDrawsTheEagerMasks) {
  REQUIRE_CUDA();
  strict_fp32();
  const at::Device dev(at::kCUDA);
  auto run = [&](bool graph) {
    ModelShape shape;
    shape.dim = shape.decoder_dim = 32;
    shape.depth = 2;
    shape.frames = 12;
    accel::StateDict params;
    for (const auto& [k, a] : init_pretrain_params(shape, 5))
      if (k.rfind("joints_embed.", 0) == 0 || k == "pos_embed" || k == "temp_embed" ||
          k.rfind("blocks.", 0) == 0 || k.rfind("norm.", 0) == 0)
        params[k] = accel::to_tensor(a, at::kFloat).to(dev).set_requires_grad(true);
    const int64_t in = 18 * 32, hidden = 64, classes = 5;
    accel::add_finetune_head(params, accel::rng_uniform({hidden, in}, 7, dev, -0.05, 0.05),
                             accel::rng_uniform({classes, hidden}, 8, dev, -0.1, 0.1));
    accel::EncoderConfig ec;
    ec.dim = 32, ec.heads = 4, ec.depth = 2, ec.drop_path = 0.2;
    ec.idx_kept.assign(hacm_kept_joints().begin(), hacm_kept_joints().end());
    accel::encoder_place_indices(ec, dev);
    accel::AdamW opt(params, accel::weight_decay_groups(params, 0.05), 0.9, 0.999);
    accel::GradStep gs(params, accel::Precision::kFp32, graph, [&](const auto& x) {
      at::Tensor tok = accel::downstream_encoder_forward(params, ec, x[0]);
      return accel::cross_entropy_forward(
          accel::finetune_head_forward(tok, params, "head.", true, 0.3), x[1], 0.1);
    });
    Trajectory t;
    for (int k = 0; k < 8; ++k) {
      at::manual_seed(1000 + k);  // as run_finetune: one seed per step
      at::Tensor x5 = accel::rng_uniform({4, 3, 12, 25, 2}, 100 + uint64_t(k), dev, -1, 1);
      at::Tensor lab = at::arange(4, at::TensorOptions().dtype(at::kLong).device(dev)) % classes;
      t.loss.push_back(gs.run({x5, lab}).item<double>());
      opt.step(1e-3);
    }
    t.graphed = gs.graphed();
    t.params = to_vec(params.at("head.bn.running_mean"));  // BN statistics updated in the graph
    return t;
  };
  Trajectory g = run(true), e = run(false);
  EXPECT_TRUE(g.graphed) << "the capture failed and GradStep fell back to eager";
  // Same masks, same kernels: float32 rounding only (atomic-add order), bound 1e-5.
  EXPECT_CLOSE("fine-tuning losses", g.loss, e.loss, 0.0, 1e-5);
  EXPECT_CLOSE_NORMWISE("BN running mean", g.params, e.params, 1e-5);
}
