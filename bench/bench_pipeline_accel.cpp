// Data pipeline and whole-epoch benchmarks (issue #6):
//  * BM_FeederBatch: one training batch x5 [B, 3, 72, 25, 2] on the run's device, from the host
//    feeder (threaded crop/resize/rotation + copy) or the device-resident feeder
//    (accelerated/feeder.h). Before timing, the two batches are checked equal (a fast wrong
//    pipeline is not a result).
//  * BM_PretrainEpoch (CUDA): an NTU-60-sized HA-CM pretraining epoch end to end, the way
//    `repro run` trains: 40,091 clips of the real shape (T = 300, 150 values, synthetic values)
//    resident on the GPU, per step the device batch, the masking uniforms from our Rng, forward,
//    backward, AdamW, and the loss read-back of the runner's NaN check (every 16 steps). Goal:
//    <= 3.5 s.
//    HACM_BENCH_EPOCH_CLIPS overrides the clip count (smaller, quicker runs).
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "accelerated/feeder.h"
#include "accelerated/hacm.h"
#include "accelerated/train.h"
#include "bench/accel_setup.h"
#include "core/feeder.h"
#include "repro/run_common.h"

using namespace hacm;
using namespace hacm::bench;

namespace {

constexpr int64_t kNtu60Train = 40091;  // NTU-60 x-sub training clips

// N clips (N, 300, 150) float32 with valid lengths 64..300 and smooth values (a per-frame table
// scaled per clip: cheap to fill for 7 GB), one-hot-free integer labels (60 classes).
struct Dataset {
  NdArray x, y;
  std::unique_ptr<Feeder> host;
};

std::unique_ptr<Dataset> make_dataset(int64_t N) {
  auto d = std::make_unique<Dataset>();
  const int64_t T = 300;
  d->x = NdArray::zeros(DType::f4, {N, T, 150});
  std::vector<float> table(size_t(T * 150));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < 150; ++k)
      table[size_t(t * 150 + k)] =
          float(0.5 * std::sin(0.07 * double(t) + 0.37 * double(k)) + 0.01);
  float* x = d->x.data<float>();
  std::vector<int64_t> y(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t valid = 64 + (n * 37) % (T - 63);
    const float s = 1.0f + 0.001f * float(n % 97);
    float* clip = x + n * T * 150;
    for (int64_t i = 0; i < valid * 150; ++i) clip[i] = table[size_t(i)] * s;
    y[size_t(n)] = n % 60;
  }
  d->y = NdArray::from({N}, y);
  FeederConfig cfg;  // HA-CM: window 72
  d->host = std::make_unique<Feeder>(d->x, d->y, cfg, true, "benchmark clips");
  return d;
}

int host_threads() {
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

// range(0): 0 = host feeder, 1 = device-resident feeder; range(1): batch size.
void BM_FeederBatch(benchmark::State& state) {
  const bool device = state.range(0) == 1;
  const int64_t B = state.range(1);
  const at::Device dev = bench_device();
  const int64_t N = dev.is_cuda() ? 4096 : 512;
  static std::unique_ptr<Dataset> data;
  if (!data || data->host->size() != N) data = make_dataset(N);
  const Feeder& host = *data->host;
  accel::DeviceFeeder resident(host, dev);
  std::vector<int64_t> idx(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) idx[size_t(b)] = (b * 131) % N;
  auto host_batch = [&](uint64_t seed) {
    at::Tensor x = at::empty({B, 3, 72, 25, 2}, at::kFloat);
    host.get_batch(idx.data(), B, seed, x.data_ptr<float>(), nullptr, host_threads());
    return x.to(dev);
  };
  {  // validate: both paths give the same batch
    at::Tensor a = host_batch(5), b = resident.get_batch(idx.data(), B, 5, nullptr);
    if (!at::equal(a, b)) {
      state.SkipWithError("device feeder batch differs from the host feeder's");
      return;
    }
  }
  uint64_t seed = 0;
  for (auto _ : state) {
    at::Tensor x = device ? resident.get_batch(idx.data(), B, ++seed, nullptr) : host_batch(++seed);
    benchmark::DoNotOptimize(x.sum().item<float>());  // synchronises
  }
  state.counters["clips/s"] =
      benchmark::Counter(double(B), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(
      std::string(dev.is_cuda() ? "cuda " : "cpu ") +
      (device ? "device-resident" : "host feeder, " + std::to_string(host_threads()) + " threads"));
}

// range(0): 0 fp32 (TF32 off), 1 bf16 autocast; range(1): 1 = forward + backward as one CUDA
// graph (accel::GradStep, protocol key cuda_graphs).
void BM_PretrainEpoch(benchmark::State& state) {
  const at::Device dev = bench_device();
  if (!dev.is_cuda()) {
    state.SkipWithError("CUDA-only benchmark (an NTU-60-sized epoch)");
    return;
  }
  const bool bf16 = state.range(0) == 1, graph = state.range(1) == 1;
  const accel::Precision prec = bf16 ? accel::Precision::kBf16 : accel::Precision::kFp32;
  const char* env = std::getenv("HACM_BENCH_EPOCH_CLIPS");
  const int64_t N = env && *env ? std::atoll(env) : kNtu60Train, B = 64, steps = N / B;
  static std::unique_ptr<Dataset> data;
  if (!data || data->host->size() != N) data = make_dataset(N);
  accel::DeviceFeeder resident(*data->host, dev);
  accel::set_matmul_precision(prec);
  Setup s = make_setup(1, "released", dev);
  accel::AdamW opt(s.sd, accel::weight_decay_groups(s.sd, 0.05), 0.9, 0.95);
  accel::GradStep grad_step(s.sd, prec, graph, [&](const std::vector<at::Tensor>& in) {
    return accel::hacm_forward(s.sd, s.cfg, in[0], in[1], in[2]).loss;
  });
  const int64_t Lg = 12 * 18;  // masking uniforms per person: (72 / 3 / 2) x 18 joints
  int64_t epoch = 0;
  auto run_step = [&](int64_t e, int64_t it, const std::vector<int64_t>& order) {
    const uint64_t step_seed = repro::mix(repro::mix(0, 2000 + uint64_t(e)), uint64_t(it));
    at::Tensor x5 = resident.get_batch(order.data() + it * B, B, step_seed, nullptr);
    at::Tensor Ut = accel::rng_uniform({2 * B, Lg}, repro::mix(step_seed, 1), dev);
    at::Tensor Us = accel::rng_uniform({2 * B, Lg}, repro::mix(step_seed, 2), dev);
    at::Tensor loss = grad_step.run({x5, Ut, Us});
    opt.step(1e-3);
    return loss;
  };
  // As the runner: losses stay on the device and are read back every 16 steps and at the end of
  // the epoch (bench/NOTES.md entry 5).
  constexpr int64_t kReadback = 16;
  auto read_back = [](std::vector<at::Tensor>& pending) {
    double sum = 0;
    if (pending.empty()) return sum;
    at::Tensor v = at::stack(pending).to(at::kCPU, at::kDouble).contiguous();
    for (int64_t k = 0; k < v.numel(); ++k) sum += v.data_ptr<double>()[k];
    pending.clear();
    return sum;
  };
  {  // warm-up steps (allocator, cuBLAS handles), and a finite loss
    std::vector<int64_t> order = repro::permutation(N, 1);
    for (int64_t it = 0; it < 3; ++it)
      if (!std::isfinite(run_step(0, it, order).item<double>())) {
        state.SkipWithError("non-finite loss");
        return;
      }
  }
  double loss_sum = 0;
  for (auto _ : state) {
    std::vector<int64_t> order = repro::permutation(N, repro::mix(0, 1000 + uint64_t(epoch)));
    std::vector<at::Tensor> pending;
    for (int64_t it = 0; it < steps; ++it) {
      pending.push_back(run_step(epoch, it, order));
      if (int64_t(pending.size()) == kReadback) loss_sum += read_back(pending);
    }
    loss_sum += read_back(pending);
    ++epoch;
  }
  state.counters["clips/s"] =
      benchmark::Counter(double(steps * B), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["steps"] = double(steps);
  state.counters["mean_loss"] = loss_sum / double(std::max<int64_t>(1, epoch * steps));
  state.SetLabel(std::string("cuda ") + (bf16 ? "bf16" : "fp32") + (graph ? " cuda-graph" : "") +
                 ", " + std::to_string(N) + " clips resident (" +
                 std::to_string(resident.resident_bytes() >> 20) + " MiB)");
}

}  // namespace

BENCHMARK(BM_FeederBatch)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->ArgsProduct({{0, 1}, {64}});
BENCHMARK(BM_PretrainEpoch)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(1)
    ->ArgsProduct({{1}, {0, 1}});

int main(int argc, char** argv) {
  return hacm::bench::run_benchmarks(argc, argv);
}
