// Where a pretraining step's time goes, kernel by kernel (issue #6: "profile it"; issue #4: custom
// kernels only where measurement shows they pay). Runs the benchmarks' HA-CM step (forward +
// backward through accel::GradStep, then accel::AdamW) under LibTorch's Kineto profiler and
// prints, per step:
//   * wall time, and on CUDA the summed GPU kernel time: their ratio says whether the step is
//     launch-bound (GPU idle between kernels) or kernel-bound;
//   * the kernels (CUDA) or operators (CPU; inclusive times, nested operators overlap) with the
//     most time, their calls and share;
// and writes the table (profile.md) and a Chrome trace (trace.json, for Perfetto) to --out.
//   profile_step [--what pretrain|mamp|finetune|features] [--clips 64] [--mode fp32|tf32|bf16]
//                [--variant released|corrected]
//                [--graph] [--small] [--steps 5] [--top 30] [--no-trace] [--out DIR]
#include <ATen/ATen.h>
#include <kineto/ActivityType.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "accelerated/custom_kernels.h"
#include "accelerated/grad_step.h"
#include "accelerated/precision.h"
#include "accelerated/train.h"
#include "bench/accel_setup.h"

using namespace hacm;
using namespace hacm::bench;
namespace prof = torch::autograd::profiler;
namespace pimpl = torch::profiler::impl;

namespace {

struct Row {
  std::string name;
  int64_t calls = 0;
  double ns = 0;
};

// Kernel names from CUPTI are long templated C++ names: keep the head and the tail.
std::string short_name(const std::string& s, size_t n = 110) {
  if (s.size() <= n) return s;
  return s.substr(0, n / 2 - 2) + " .. " + s.substr(s.size() - (n / 2 - 2));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Profile a training step (or the feature extraction) kernel by kernel"};
  int64_t clips = 64, steps = 5, top = 30;
  std::string what = "pretrain", mode = "fp32", variant = "released", out = "out/profile",
              sdp = "default", kernels_off;
  bool graph = false, small = false, no_trace = false, flush_denormal = false, no_custom = false;
  app.add_option("--what", what,
                 "pretrain (HA-CM step) | mamp (the MAMP baseline's step, decoder 5, 120 frames) | "
                 "finetune (the authors' fine-tuning step) | features (linear-probe features, no "
                 "gradient)")
      ->check(CLI::IsMember({"pretrain", "mamp", "finetune", "features"}));
  app.add_option("--clips", clips, "batch size in clips (2 persons each)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--mode", mode, "fp32 | tf32 | bf16")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_option("--variant", variant, "released | corrected")
      ->check(CLI::IsMember({"released", "corrected"}));
  app.add_flag("--graph", graph, "forward + backward as one CUDA graph (accel::GradStep)");
  app.add_flag("--small", small, "pretrain: the small model (width 64, depth 2 / decoder 1)");
  app.add_option("--steps", steps, "profiled steps (after 3 warm-up steps)")
      ->check(CLI::Range(1, 100));
  app.add_option("--top", top, "rows of the table")->check(CLI::Range(1, 1000));
  app.add_flag("--flush-denormal", flush_denormal,
               "CPU: treat denormal floats as zero (at::globalContext().setFlushDenormal)");
  app.add_option("--sdp", sdp,
                 "attention kernels: default (ATen's choice) | cudnn | flash | efficient | math "
                 "(only that scaled_dot_product_attention backend enabled, for A/B)")
      ->check(CLI::IsMember({"default", "cudnn", "flash", "efficient", "math"}));
  app.add_flag("--no-custom-kernels", no_custom,
               "ATen ops instead of the custom CUDA kernels (accelerated/kernels/), for A/B");
  app.add_option(
      "--kernels-off", kernels_off,
      "custom kernels to turn off alone, comma-separated (names in "
      "accelerated/custom_kernels.h: layer_norm, add_layer_norm, column_sum, "
      "linear_gelu, expmap_projection, fused_adamw, attention_forward, "
      "attention_training, attention_mma, attention_mma_backward), for A/B of one of them");
  app.add_flag("--no-trace", no_trace, "write only profile.md (traces of big steps take MBs)");
  app.add_option("--out", out, "directory for profile.md and trace.json");
  CLI11_PARSE(app, argc, argv);

  accel::set_custom_kernels(!no_custom);
  try {
    accel::set_custom_kernels_off(kernels_off);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  if (sdp != "default") {
    auto& ctx = at::globalContext();
    ctx.setSDPUseCuDNN(sdp == "cudnn");
    ctx.setSDPUseFlash(sdp == "flash");
    ctx.setSDPUseMemEfficient(sdp == "efficient");
    ctx.setSDPUseMath(sdp == "math");
  }
  if (!validate_golden_loss()) return 1;  // profiling a wrong forward is not worth reading
  const at::Device dev = bench_device();
  if (graph && (!dev.is_cuda() || what == "features")) {
    std::fprintf(stderr, "--graph needs a CUDA device and a training step\n");
    return 2;
  }
  if (flush_denormal && !at::globalContext().setFlushDenormal(true))
    std::fprintf(stderr, "--flush-denormal: not supported on this CPU\n");
  const accel::Precision prec = accel::parse_precision(mode);
  accel::set_matmul_precision(prec);
  // The step to profile; its model, optimiser and inputs live as long as main().
  Setup s;
  MampSetup m;
  FinetuneSetup f;
  accel::StateDict enc;
  std::unique_ptr<accel::AdamW> opt;
  std::unique_ptr<accel::GradStep> grad_step;
  std::function<at::Tensor()> step;
  std::string label;
  if (what == "pretrain") {
    s = make_setup(clips, variant, dev, small);
    opt = std::make_unique<accel::AdamW>(s.sd, accel::weight_decay_groups(s.sd, 0.05), 0.9, 0.95);
    grad_step = std::make_unique<accel::GradStep>(
        s.sd, prec, graph, [&](const std::vector<at::Tensor>& in) {
          return accel::hacm_forward(s.sd, s.cfg, in[0], in[1], in[2]).loss;
        });
    step = [&] {
      at::Tensor loss = grad_step->run({s.x5, s.Ut, s.Us});
      opt->step(1e-3);
      return loss;
    };
    label = "HA-CM " + variant + " pretraining step, " +
            (small ? "small model (64/2/1)" : "full model (256/8/3)");
  } else if (what == "mamp") {
    m = make_mamp_setup(clips, dev);
    opt = std::make_unique<accel::AdamW>(m.sd, accel::weight_decay_groups(m.sd, 0.05), 0.9, 0.95);
    grad_step = std::make_unique<accel::GradStep>(
        m.sd, prec, graph, [&](const std::vector<at::Tensor>& in) {
          return accel::mamp_forward(m.sd, m.cfg, in[0], in[1]).loss;
        });
    step = [&] {
      at::Tensor loss = grad_step->run({m.x5, m.U});
      opt->step(1e-3);
      return loss;
    };
    label = "MAMP pretraining step (256/8/5, 120 frames, 25 joints)";
  } else if (what == "finetune") {
    f = make_finetune_setup(clips, dev);
    opt = std::make_unique<accel::AdamW>(
        f.params, accel::layer_decay_groups(f.params, 0.05, 0.8, 8), 0.9, 0.999);
    grad_step = std::make_unique<accel::GradStep>(
        f.params, prec, graph, [&](const std::vector<at::Tensor>& in) { return f.loss(in); });
    step = [&, k = int64_t(0)]() mutable {
      at::manual_seed(k++);  // as the runner: torch's generator reseeded every step
      at::Tensor loss = grad_step->run({f.x5, f.labels});
      opt->step(1e-4);
      return loss;
    };
    label = "fine-tuning step (authors' recipe), full encoder (256/8) + head";
  } else {
    enc = encoder_state(dev, /*trainable=*/false);
    f.ec.idx_kept.assign(hacm_kept_joints().begin(), hacm_kept_joints().end());
    accel::encoder_place_indices(f.ec, dev);
    f.x5 = accel::rng_uniform({clips, 3, 72, 25, 2}, 11, dev, -1.0, 1.0);
    step = [&] {
      at::NoGradGuard no_grad;
      accel::Autocast autocast(prec, dev);
      return accel::linprobe_features_forward(accel::downstream_encoder_forward(enc, f.ec, f.x5))
          .sum();
    };
    label = "linear-probe features (no gradient), full encoder (256/8)";
  }
  for (int i = 0; i < 3; ++i) step();  // warm-up (and the graph capture)
  sync_device(dev);

  std::set<pimpl::ActivityType> activities{pimpl::ActivityType::CPU};
  if (dev.is_cuda()) activities.insert(pimpl::ActivityType::CUDA);
  const pimpl::ProfilerConfig config(pimpl::ProfilerState::KINETO);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  sync_device(dev);
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
      double(steps);
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();

  // CUDA: kernels (device events); CPU: operators (aten::*), inclusive.
  std::map<std::string, Row> rows;
  double total_ns = 0;
  int64_t launches = 0;
  using KT = libkineto::ActivityType;
  for (const auto& e : result->events()) {
    const std::string name = e.name();
    const auto kind = KT(e.activityType());
    if (kind == KT::CUDA_RUNTIME && name.find("Launch") != std::string::npos) ++launches;
    const bool copy = kind == KT::GPU_MEMCPY || kind == KT::GPU_MEMSET;
    if (dev.is_cuda() ? !(kind == KT::CONCURRENT_KERNEL || copy)
                      : !(kind == KT::CPU_OP && name.rfind("aten::", 0) == 0))
      continue;
    if (!copy) total_ns += double(e.durationNs());  // copies are listed, not summed as kernels
    Row& r = rows[name];
    r.name = name;
    ++r.calls;
    r.ns += double(e.durationNs());
  }
  std::vector<Row> sorted;
  for (auto& [k, r] : rows) sorted.push_back(r);
  std::sort(sorted.begin(), sorted.end(), [](const Row& a, const Row& b) { return a.ns > b.ns; });

  char head[512];
  std::snprintf(head, sizeof head,
                "%s, %s, %lld clips x 2 persons, %s%s, %lld profiled steps\n\n"
                "wall %.3f ms per step (under the profiler); %s %.3f ms per step; "
                "launch calls per step: %.0f\n",
                label.c_str(), dev.is_cuda() ? "cuda" : "cpu", (long long)clips, mode.c_str(),
                (std::string(graph ? ", CUDA graph" : "") +
                 (no_custom ? ", ATen ops only (--no-custom-kernels)" : "") +
                 (kernels_off.empty() ? "" : ", custom kernels off: " + kernels_off) +
                 (sdp != "default" ? ", attention backend " + sdp : ""))
                    .c_str(),
                (long long)steps, wall_ms,
                dev.is_cuda() ? "summed GPU kernel time" : "summed operator time (inclusive)",
                total_ns / 1e6 / double(steps), double(launches) / double(steps));
  std::string md = "# Profile: " + std::string(head);
  if (dev.is_cuda())
    md += "\nGPU busy " + std::to_string(int(100.0 * total_ns / 1e6 / double(steps) / wall_ms)) +
          " % of the wall time (the rest: launch / host gaps)\n";
  md += "\n| # | " + std::string(dev.is_cuda() ? "kernel" : "operator") +
        " | calls / step | ms / step | share |\n|---|---|---|---|---|\n";
  double shown = 0;
  for (size_t i = 0; i < sorted.size() && int64_t(i) < top; ++i) {
    const Row& r = sorted[i];
    char line[512];
    std::snprintf(line, sizeof line, "| %zu | `%s` | %.1f | %.3f | %.1f %% |\n", i + 1,
                  short_name(r.name).c_str(), double(r.calls) / double(steps),
                  r.ns / 1e6 / double(steps), 100.0 * r.ns / std::max(1.0, total_ns));
    md += line;
    shown += r.ns;
  }
  char tail[256];
  std::snprintf(tail, sizeof tail, "| | %zu more | | %.3f | |\n",
                sorted.size() - std::min<size_t>(sorted.size(), size_t(top)),
                std::max(0.0, total_ns - shown) / 1e6 / double(steps));
  md += tail;
  std::printf("%s", md.c_str());

  std::filesystem::create_directories(out);
  std::ofstream(out + "/profile.md") << md;
  if (!no_trace) result->save(out + "/trace.json");
  std::printf("\nwrote %s/profile.md%s\n", out.c_str(), no_trace ? "" : " and trace.json");
  return 0;
}
