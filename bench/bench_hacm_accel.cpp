// Accelerated HA-CM pretraining step: forward + backward + AdamW (accel::AdamW), full model (depth
// 8, decoder 3, width 256, 72 frames, 18 + 7 joints) at batch N clips x 2 persons. Before any
// timing, main() validates the accelerated forward on the device against the authors' golden loss
// (a fast wrong kernel is not a result). Counters: clips/s; achieved TFLOP/s against the ~19.2
// GFLOP per clip of forward+backward (1.23 TFLOP per 64-clip step, issue #6).
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "accelerated/downstream.h"
#include "accelerated/hacm.h"
#include "accelerated/mamp.h"
#include "accelerated/precision.h"
#include "accelerated/train.h"
#include "bench/accel_setup.h"
#include "core/npz.h"
#include "core/skeleton.h"

using namespace hacm;
using namespace hacm::bench;

namespace {

// Benchmark argument values of the precision modes (accelerated/precision.h).
enum Mode { kFp32 = 0, kTf32 = 1, kBf16 = 2 };
accel::Precision precision(Mode m) {
  return m == kTf32   ? accel::Precision::kTf32
         : m == kBf16 ? accel::Precision::kBf16
                      : accel::Precision::kFp32;
}

// TF32 as the mode asks; false (benchmark skipped) for a CUDA-only configuration on the CPU.
bool set_mode(benchmark::State& state, at::Device dev, Mode mode, bool cuda_only) {
  if (dev.is_cpu() && (mode != kFp32 || cuda_only)) {
    state.SkipWithError("CUDA-only configuration (TF32/bf16, CUDA graph or the authors' batch)");
    return false;
  }
  accel::set_matmul_precision(precision(mode));
  return true;
}

void BM_HacmPretrainStep(benchmark::State& state) {
  const int64_t clips = state.range(0);
  const Mode mode = Mode(state.range(1));
  const std::string variant = state.range(2) ? "corrected" : "released";
  const bool small = state.range(3) == 1;
  const bool graph = state.range(4) == 1;
  at::Device dev = bench_device();
  if (!set_mode(state, dev, mode, clips > 8 || graph)) return;
  Setup s = make_setup(clips, variant, dev, small);
  // The runner's step: forward + backward through accel::GradStep (eager, or one CUDA graph
  // replay after the inputs are copied in), then the optimiser with the authors' groups (no decay
  // for 1-D parameters and biases), multi-tensor kernels.
  accel::AdamW opt(s.sd, accel::weight_decay_groups(s.sd, 0.05), 0.9, 0.95);
  accel::GradStep grad_step(s.sd, precision(mode), graph, [&](const std::vector<at::Tensor>& in) {
    return accel::hacm_forward(s.sd, s.cfg, in[0], in[1], in[2]).loss;
  });
  auto step = [&]() {
    at::Tensor loss = grad_step.run({s.x5, s.Ut, s.Us});
    opt.step(1e-3);
    return loss;
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up (allocator, cuBLAS handles; graph capture)
  for (auto _ : state) {
    at::Tensor loss = step();
    benchmark::DoNotOptimize(loss.item<float>());  // .item() synchronises
  }
  state.counters["clips/s"] =
      benchmark::Counter(double(clips), benchmark::Counter::kIsIterationInvariantRate);
  if (!small)  // kFlopPerClip is the full model's arithmetic
    state.counters["TFLOP/s"] = benchmark::Counter(kFlopPerClip * clips / 1e12,
                                                   benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dev.is_cuda() ? "cuda " : "cpu ") +
                 (mode == kFp32   ? "fp32"
                  : mode == kTf32 ? "tf32"
                                  : "bf16") +
                 " " + variant + (small ? " small (64/2/1)" : " full (256/8/3)") +
                 (graph ? " cuda-graph" : ""));
}

// The MAMP baseline's pretraining step (forward + backward + AdamW with the authors' groups) at
// the size of issue #6's measurement of the authors' code (decoder 5, 120 frames, 25 joints:
// 176.7 ms fp32, 133.1 ms bf16 autocast at batch 64). range: clips, mode, graph.
void BM_MampPretrainStep(benchmark::State& state) {
  const int64_t clips = state.range(0);
  const Mode mode = Mode(state.range(1));
  const bool graph = state.range(2) == 1;
  at::Device dev = bench_device();
  if (!set_mode(state, dev, mode, clips > 8 || graph)) return;
  MampSetup m = make_mamp_setup(clips, dev);
  accel::AdamW opt(m.sd, accel::weight_decay_groups(m.sd, 0.05), 0.9, 0.95);
  accel::GradStep grad_step(m.sd, precision(mode), graph, [&](const std::vector<at::Tensor>& in) {
    return accel::mamp_forward(m.sd, m.cfg, in[0], in[1]).loss;
  });
  auto step = [&]() {
    at::Tensor loss = grad_step.run({m.x5, m.U});
    opt.step(1e-3);
    return loss;
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up (and the graph capture)
  for (auto _ : state) benchmark::DoNotOptimize(step().item<float>());  // synchronises
  state.counters["clips/s"] =
      benchmark::Counter(double(clips), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["TFLOP/s"] =
      benchmark::Counter(mamp_flop_per_clip(m.cfg, m.U.size(1)) * double(clips) / 1e12,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dev.is_cuda() ? "cuda " : "cpu ") + (mode == kBf16 ? "bf16" : "fp32") +
                 " MAMP (256/8/5, 120 frames, 25 joints)" + (graph ? " cuda-graph" : ""));
}

// Where the step time goes: forward only, forward + backward, and the optimiser alone, at the
// authors' batch (64 clips) in fp32 and bf16 autocast. CUDA only.
void BM_HacmPhase(benchmark::State& state) {
  const int64_t clips = 64;
  const int phase =
      int(state.range(0));  // 0 forward, 1 forward+backward, 2 torch AdamW, 3 our AdamW
  const Mode mode = Mode(state.range(1));
  at::Device dev = bench_device();
  if (dev.is_cpu()) {
    state.SkipWithError("CUDA-only benchmark");
    return;
  }
  at::globalContext().setAllowTF32CuBLAS(false);
  Setup s = make_setup(clips, "released", dev);
  std::vector<at::Tensor> params(s.decay);
  params.insert(params.end(), s.no_decay.begin(), s.no_decay.end());
  torch::optim::AdamW opt(params,
                          torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).weight_decay(0.05));
  accel::AdamW ours(s.sd, accel::weight_decay_groups(s.sd, 0.05), 0.9, 0.95);
  auto fwd = [&]() {
    accel::Autocast autocast(precision(mode), dev);
    return accel::hacm_forward(s.sd, s.cfg, s.x5, s.Ut, s.Us).loss;
  };
  // Gradients exist for the optimiser-only phase.
  fwd().backward();
  for (int i = 0; i < 3; ++i) fwd().backward();
  for (auto _ : state) {
    if (phase == 0) {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(fwd().item<float>());
    } else if (phase == 1) {
      opt.zero_grad();
      at::Tensor loss = fwd();
      loss.backward();
      benchmark::DoNotOptimize(loss.item<float>());
    } else if (phase == 2) {
      opt.step();
      benchmark::DoNotOptimize(params[0].sum().item<float>());
    } else {
      ours.step(1e-3);
      benchmark::DoNotOptimize(params[0].sum().item<float>());
    }
  }
  static const char* names[] = {"forward (no grad)", "forward+backward", "torch::optim::AdamW step",
                                "accel::AdamW step (_foreach)"};
  state.SetLabel(std::string(names[phase]) + (mode == kBf16 ? " bf16" : " fp32"));
}

// Linear-probe feature extraction (issue #6 goal: <= 10 ms per 128 clips on the H100; the
// authors' downstream forward takes 77.3 ms fp32 / 48.4 ms bf16): the full downstream encoder
// (width 256, 8 heads, depth 8, 72 frames, 18 kept joints, both persons) and the mean pooling,
// no gradient. Validated against the golden features in main() before any timing.
void BM_LinprobeFeatures(benchmark::State& state) {
  const int64_t clips = state.range(0);
  const Mode mode = Mode(state.range(1));
  at::Device dev = bench_device();
  if (!set_mode(state, dev, mode, clips > 8)) return;
  accel::EncoderConfig cfg;
  cfg.idx_kept.assign(hacm_kept_joints().begin(), hacm_kept_joints().end());
  accel::StateDict sd = encoder_state(dev, /*trainable=*/false);
  at::Tensor x5 = accel::rng_uniform({clips, 3, 72, 25, 2}, 11, dev, -1.0, 1.0);
  at::NoGradGuard no_grad;
  auto features = [&]() {
    accel::Autocast autocast(precision(mode), dev);
    return accel::linprobe_features_forward(accel::downstream_encoder_forward(sd, cfg, x5));
  };
  for (int i = 0; i < 3; ++i) features();                                         // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(features().sum().item<float>());  // synchronises
  // Arithmetic per person-sequence of L = 24 x 18 tokens, width D: per block 24·L·D² (qkv, proj,
  // MLP) + 4·L²·D (scores, weighted sum); the patch embedding is negligible.
  const double L = 24 * 18, D = 256, flop = 2.0 * 8 * (24 * L * D * D + 4 * L * L * D) * clips;
  state.counters["clips/s"] =
      benchmark::Counter(double(clips), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["TFLOP/s"] =
      benchmark::Counter(flop / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dev.is_cuda() ? "cuda " : "cpu ") +
                 (mode == kFp32   ? "fp32"
                  : mode == kTf32 ? "tf32"
                                  : "bf16") +
                 " full encoder (256/8)");
}

// A fine-tuning step with the authors' recipe: full encoder (width 256, depth 8, drop path 0.3)
// + head (dropout 0.3, fc 4608 -> 2048 -> BN -> ReLU -> fc 60), label smoothing 0.1, AdamW with
// layer decay 0.8, torch's generator reseeded every step (as the runner), at batch N clips; eager
// or as one CUDA graph (accel::GradStep, protocol key cuda_graphs). range: clips, mode, graph.
void BM_FinetuneStep(benchmark::State& state) {
  const int64_t clips = state.range(0);
  const Mode mode = Mode(state.range(1));
  const bool graph = state.range(2) == 1;
  at::Device dev = bench_device();
  if (!set_mode(state, dev, mode, clips > 8 || graph)) return;
  FinetuneSetup f = make_finetune_setup(clips, dev);
  accel::AdamW opt(f.params, accel::layer_decay_groups(f.params, 0.05, 0.8, 8), 0.9, 0.999);
  accel::GradStep grad_step(f.params, precision(mode), graph,
                            [&](const std::vector<at::Tensor>& x) { return f.loss(x); });
  int64_t k = 0;
  auto step = [&]() {
    at::manual_seed(int64_t(k++));
    at::Tensor loss = grad_step.run({f.x5, f.labels});
    opt.step(1e-4);
    return loss;
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up (and the graph capture)
  for (auto _ : state) benchmark::DoNotOptimize(step().item<float>());  // synchronises
  // Forward arithmetic as BM_LinprobeFeatures (13.9 GFLOP per clip), backward twice that.
  const double L = 24 * 18, D = 256, flop = 3 * 2.0 * 8 * (24 * L * D * D + 4 * L * L * D) * clips;
  state.counters["clips/s"] =
      benchmark::Counter(double(clips), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["TFLOP/s"] =
      benchmark::Counter(flop / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(dev.is_cuda() ? "cuda " : "cpu ") +
                 accel::precision_name(precision(mode)) +
                 " fine-tuning step, full encoder (256/8) + head" + (graph ? ", cuda-graph" : ""));
}

}  // namespace

// CPU: a small batch (2 clips) in fp32, full and small model (bench/pytorch_step.py times the
// same two configurations in PyTorch from Python). CUDA: batch 64 (the authors' setting).
BENCHMARK(BM_HacmPretrainStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{2}, {kFp32}, {0}, {0, 1}, {0}});
BENCHMARK(BM_HacmPretrainStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{64}, {kFp32, kTf32, kBf16}, {0, 1}, {0}, {0, 1}});
// Launch-bound regime (batch 2 on the GPU: 22-28 ms eager, bench/RESULTS.md): eager vs graph.
BENCHMARK(BM_HacmPretrainStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{2}, {kFp32}, {0}, {0}, {1}});

BENCHMARK(BM_LinprobeFeatures)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{8}, {kFp32}});
BENCHMARK(BM_LinprobeFeatures)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{128}, {kFp32, kTf32, kBf16}});

// The authors' fine-tuning batch (48) on CUDA, eager vs graph; 2 clips fp32 eager on the CPU.
BENCHMARK(BM_FinetuneStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{2}, {kFp32}, {0}});
BENCHMARK(BM_FinetuneStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{48}, {kFp32, kBf16}, {0, 1}});

// MAMP: 2 clips fp32 on the CPU; the authors' batch (64) on CUDA, fp32 / bf16, eager / graph.
BENCHMARK(BM_MampPretrainStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{2}, {kFp32}, {0}});
BENCHMARK(BM_MampPretrainStep)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{64}, {kFp32, kBf16}, {0, 1}});

BENCHMARK(BM_HacmPhase)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{0, 1, 2, 3}, {kFp32, kBf16}});

int main(int argc, char** argv) {
  return hacm::bench::run_benchmarks(argc, argv);
}
