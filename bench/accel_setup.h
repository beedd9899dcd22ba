// Shared set-up of the accelerated benchmarks: the device, seeded inputs, the full HA-CM model
// with the authors' optimiser groups, and the golden-loss validation run before any timing.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <benchmark/benchmark.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "accelerated/downstream.h"
#include "accelerated/grad_step.h"
#include "accelerated/hacm.h"
#include "accelerated/mamp.h"
#include "accelerated/precision.h"
#include "accelerated/tensor_io.h"
#include "accelerated/train.h"
#include "bench/golden_dir.h"
#include "core/model_init.h"
#include "core/npz.h"
#include "core/provenance.h"
#include "core/rng.h"
#include "core/skeleton.h"

namespace hacm::bench {

constexpr double kFlopPerClip = 1.23e12 / 64.0;  // forward + backward, issue #6 arithmetic

// Waits for the device's queued work (a tiny read-back: no CUDA headers needed here).
inline void sync_device(const at::Device& dev) {
  if (dev.is_cuda()) at::zeros({1}, at::TensorOptions().device(dev)).item<float>();
}
inline at::Device bench_device() {
  return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
}

struct Setup {
  accel::HacmConfig cfg;
  accel::StateDict sd;
  std::vector<at::Tensor> decay, no_decay;
  at::Tensor x5, Ut, Us;
};

// small = the golden gradient model's size (width 64, 4 heads, depth 2 / decoder 1), else the
// paper's (width 256, 8 heads, depth 8 / decoder 3).
inline Setup make_setup(int64_t clips, const std::string& variant, at::Device dev,
                        bool small = false) {
  Setup s;
  s.cfg.variant = variant;
  ModelShape shape;
  if (small) {
    shape.dim = shape.decoder_dim = 64, shape.depth = 2, shape.decoder_depth = 1;
    s.cfg.dim = 64, s.cfg.heads = 4, s.cfg.depth = 2, s.cfg.decoder_depth = 1;
  }
  for (auto& [k, a] : init_pretrain_params(shape, 7)) {
    at::Tensor t = accel::to_tensor(a, at::kFloat)
                       .to(dev)
                       .requires_grad_(k.rfind("l1.", 0) && k.rfind("l2.", 0));
    s.sd[k] = t;
    if (!t.requires_grad()) continue;
    // authors' groups: no weight decay for 1-D parameters and biases
    (t.dim() == 1 || (k.size() > 5 && k.substr(k.size() - 5) == ".bias") ? s.no_decay : s.decay)
        .push_back(t);
  }
  accel::hacm_place_indices(s.cfg, dev);  // as the runner (needed by a CUDA graph capture)
  s.x5 = accel::rng_uniform({clips, 3, 72, 25, 2}, 11, dev, -1.0, 1.0);
  s.Ut = accel::rng_uniform({clips * 2, 216}, 12, dev);
  s.Us = accel::rng_uniform({clips * 2, 216}, 13, dev);
  return s;
}

// The MAMP baseline at the size of issue #6's measurement of the authors' code (width 256, 8 heads,
// depth 8, decoder 5, 120 frames, 25 joints, temporal patch 4): seeded weights, inputs x5
// [clips, 3, 120, 25, 2] and masking uniforms U [2 clips, 750].
struct MampSetup {
  accel::MampConfig cfg;
  accel::StateDict sd;
  at::Tensor x5, U;
};

inline MampSetup make_mamp_setup(int64_t clips, at::Device dev) {
  MampSetup m;
  ModelShape shape;
  shape.decoder_depth = m.cfg.decoder_depth = 5;
  shape.frames = 120, shape.joints = 25, shape.t_patch = m.cfg.t_patch = 4, shape.hacm = false;
  for (auto& [k, a] : init_pretrain_params(shape, 7))
    m.sd[k] = accel::to_tensor(a, at::kFloat).to(dev).requires_grad_(true);
  const int64_t L = (shape.frames / shape.t_patch) * shape.joints;
  m.x5 = accel::rng_uniform({clips, 3, shape.frames, 25, 2}, 11, dev, -1.0, 1.0);
  m.U = accel::rng_uniform({clips * 2, L}, 12, dev);
  return m;
}

// MAMP forward + backward arithmetic per clip (2 persons): per block 24·n·D² (qkv, proj, MLP) +
// 4·n²·D (scores, weighted sum) on n tokens, the encoder on the K = 74 kept tokens, the decoder on
// all L = 750; backward twice the forward. Embedding, decoder_embed and prediction head: < 0.3 %.
inline double mamp_flop_per_clip(const accel::MampConfig& c, int64_t L) {
  const double D = double(c.dim), n = double(L),
               k = double(int64_t(double(L) * (1.0 - c.mask_ratio)));
  auto block = [&](double t) { return 24 * t * D * D + 4 * t * t * D; };
  return 3.0 * 2.0 * (double(c.depth) * block(k) + double(c.decoder_depth) * block(n));
}

// The downstream encoder's parameters of the paper's model (width 256, depth 8), seeded.
inline accel::StateDict encoder_state(at::Device dev, bool trainable) {
  accel::StateDict sd;
  for (auto& [k, a] : init_pretrain_params(ModelShape{}, 7))
    if (k.rfind("joints_embed.", 0) == 0 || k == "pos_embed" || k == "temp_embed" ||
        k.rfind("blocks.", 0) == 0 || k.rfind("norm.", 0) == 0)
      sd[k] = accel::to_tensor(a, at::kFloat).to(dev).requires_grad_(trainable);
  return sd;
}

// The authors' fine-tuning model: the encoder above (drop path 0.3) + head (dropout 0.3, fc
// 4608 -> 2048 -> BN -> ReLU -> fc 60), label smoothing 0.1; seeded inputs x5 [clips, 3, 72, 25,
// 2] and labels [clips].
struct FinetuneSetup {
  accel::StateDict params;
  accel::EncoderConfig ec;
  at::Tensor x5, labels;
  at::Tensor loss(const std::vector<at::Tensor>& x) {  // x = {x5, labels}
    at::Tensor tok = accel::downstream_encoder_forward(params, ec, x[0]);
    return accel::cross_entropy_forward(
        accel::finetune_head_forward(tok, params, "head.", true, 0.3), x[1], 0.1);
  }
};

inline FinetuneSetup make_finetune_setup(int64_t clips, at::Device dev) {
  FinetuneSetup f;
  f.params = encoder_state(dev, /*trainable=*/true);
  const int64_t in = 18 * 256, hidden = 2048, classes = 60;
  accel::add_finetune_head(f.params, accel::rng_uniform({hidden, in}, 21, dev, -0.03, 0.03),
                           accel::rng_uniform({classes, hidden}, 22, dev, -0.05, 0.05));
  f.ec.idx_kept.assign(hacm_kept_joints().begin(), hacm_kept_joints().end());
  f.ec.drop_path = 0.3;
  accel::encoder_place_indices(f.ec, dev);
  f.x5 = accel::rng_uniform({clips, 3, 72, 25, 2}, 11, dev, -1.0, 1.0);
  f.labels = at::arange(clips, at::TensorOptions().dtype(at::kLong).device(dev)).remainder(classes);
  return f;
}

// The golden weights (weights_hacm.npz; with mamp, MAMP's own tensors of weights_mamp.npz over
// its blocks and norms, golden README §3.3) in float32 on dev.
inline accel::StateDict golden_weights(const std::string& dir, at::Device dev, bool mamp = false) {
  accel::StateDict sd = accel::load_state_dict(dir + "/weights_hacm.npz", at::kFloat);
  if (mamp)
    for (auto& [k, v] : accel::load_state_dict(dir + "/weights_mamp.npz", at::kFloat)) sd[k] = v;
  for (auto& [k, v] : sd) v = v.to(dev);
  return sd;
}

// A float32 loss against the golden one (README §5 float32 loss bound, 1e-5 relative), printed.
inline bool golden_loss_matches(const char* what, const at::Tensor& loss, double ref,
                                at::Device dev) {
  const double got = loss.item<double>();
  const bool ok = std::fabs(got - ref) <= 1e-5 * std::fabs(ref);
  std::printf("validation on %s: %s %.9f vs golden %.9f -> %s\n", dev.is_cuda() ? "cuda" : "cpu",
              what, got, ref, ok ? "OK" : "MISMATCH");
  return ok;
}

// Validation: the float32 forward on the benchmark device reproduces the golden loss (a fast wrong
// kernel is not a result). Skipped with a message when the golden files are absent.
inline bool validate_golden_loss() {
  const std::string dir = golden_dir_with("hacm_forward.npz");
  if (dir.empty()) return true;
  const std::string path = dir + "/hacm_forward.npz";
  at::Device dev = bench_device();
  at::globalContext().setAllowTF32CuBLAS(false);
  NpzReader g(path);
  const accel::StateDict sd = golden_weights(dir, dev);
  accel::HacmConfig cfg;
  cfg.depth = g.get("cfg_depth").at_i64(0);
  cfg.decoder_depth = g.get("cfg_decoder_depth").at_i64(0);
  accel::HacmInject inj{accel::to_tensor(g.get("ids_shuffle_t"), at::kLong).to(dev),
                        accel::to_tensor(g.get("ids_shuffle_s"), at::kLong).to(dev)};
  accel::HacmOutputs o =
      accel::hacm_forward(sd, cfg, accel::to_tensor(g.get("x5"), at::kFloat).to(dev),
                          accel::to_tensor(g.get("U_t"), at::kFloat).to(dev),
                          accel::to_tensor(g.get("U_s"), at::kFloat).to(dev), &inj);
  return golden_loss_matches("loss", o.loss, g.get("loss").at_f64(0), dev);
}

// Validation of the linear-probe features (downstream encoder + mean pooling) in float32 on the
// benchmark device against the authors' float64 features (hacm_downstream.npz): normwise relative
// error <= 1e-5 (float32 through the encoder, TF32 off; the float64 test bound is 1e-10).
inline bool validate_golden_features() {
  const std::string dir = golden_dir_with("hacm_downstream.npz");
  if (dir.empty()) return true;
  at::Device dev = bench_device();
  at::globalContext().setAllowTF32CuBLAS(false);
  NpzReader g(dir + "/hacm_downstream.npz");
  const accel::StateDict sd = golden_weights(dir, dev);
  accel::EncoderConfig cfg;
  cfg.depth = g.get("cfg_depth").at_i64(0);
  cfg.heads = g.get("cfg_heads").at_i64(0);
  cfg.idx_kept.assign(hacm_kept_joints().begin(), hacm_kept_joints().end());
  at::NoGradGuard no_grad;
  at::Tensor feat = accel::linprobe_features_forward(accel::downstream_encoder_forward(
      sd, cfg, accel::to_tensor(g.get("x5"), at::kFloat).to(dev)));
  at::Tensor ref = accel::to_tensor(g.get("feat_linprobe"), at::kDouble);
  const double err =
      (feat.to(at::kCPU, at::kDouble) - ref).norm().item<double>() / ref.norm().item<double>();
  const bool ok = err <= 1e-5;
  std::printf("validation on %s: linear-probe features, normwise relative error %.2e -> %s\n",
              dev.is_cuda() ? "cuda" : "cpu", err, ok ? "OK" : "MISMATCH");
  return ok;
}

// Validation of the MAMP baseline: the float32 forward on the benchmark device reproduces the
// golden loss of mamp_forward.npz (same bound as the HA-CM loss).
inline bool validate_golden_mamp_loss() {
  const std::string dir = golden_dir_with("mamp_forward.npz");
  if (dir.empty()) return true;
  at::Device dev = bench_device();
  at::globalContext().setAllowTF32CuBLAS(false);
  NpzReader g(dir + "/mamp_forward.npz");
  const accel::StateDict sd = golden_weights(dir, dev, /*mamp=*/true);
  accel::MampConfig cfg;
  cfg.depth = g.get("cfg_depth").at_i64(0);
  cfg.decoder_depth = g.get("cfg_decoder_depth").at_i64(0);
  cfg.mask_ratio = g.get("mask_ratio").at_f64(0);
  cfg.tau = g.get("motion_aware_tau").at_f64(0);
  at::NoGradGuard no_grad;
  accel::MampOutputs o =
      accel::mamp_forward(sd, cfg, accel::to_tensor(g.get("x5"), at::kFloat).to(dev),
                          accel::to_tensor(g.get("U"), at::kFloat).to(dev));
  return golden_loss_matches("MAMP loss", o.loss, g.get("loss").at_f64(0), dev);
}

// LibTorch's BLAS (the BLAS_INFO entry of its build configuration).
inline std::string torch_blas() {
  const std::string cfg = at::show_config();
  const auto at_key = cfg.find("BLAS_INFO=");
  if (at_key == std::string::npos) return "unknown";
  const auto begin = at_key + 10, end = cfg.find_first_of(", \n", begin);
  return cfg.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// main() of the accelerated benchmark binaries: validate, then run with the device and torch
// version in the JSON context.
inline int run_benchmarks(int argc, char** argv) {
  if (!validate_golden_loss() || !validate_golden_features() || !validate_golden_mamp_loss())
    return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("device", at::hasCUDA() ? "cuda" : "cpu");
  benchmark::AddCustomContext("device_name", accel::device_description(bench_device()));
  benchmark::AddCustomContext("torch", TORCH_VERSION);
  const std::string commit = source_commit(HACM_SOURCE_DIR);
  benchmark::AddCustomContext("git_commit", commit.empty() ? "unknown" : commit);
  benchmark::AddCustomContext("blas", torch_blas());
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace hacm::bench
