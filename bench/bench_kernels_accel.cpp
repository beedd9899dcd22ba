// Custom CUDA kernels against the ATen ops they replace (issue #4: "where measurement shows they
// pay"). BM_LayerNorm: forward + backward of one LayerNorm at the size of a decoder LayerNorm of
// the 64-clip HA-CM step (128 sequences x 432 tokens = 55,296 rows of 256), in the two forms the
// model uses: float32 throughout, and the autocast form (float32 residual stream in, bf16 matmul
// input out, bf16 gradient in). impl 0 = ATen (at::layer_norm, plus the casts autocast adds around
// it), 1 = the fused kernel. Before timing, the fused result is checked against float64 ATen on
// the same values (a fast wrong kernel is not a result). BM_ColumnSum: the bias gradient of a
// linear layer (sum over 55,296 rows of a bf16 gradient of width 256 / 768 / 1024, the decoder's
// linears), ATen's reduction as autograd runs it (bf16 in, bf16 out) against the column-sum
// kernel (float32 out), validated against a float64 sum. CUDA only.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

#include "accelerated/fused_layer_norm.h"
#include "accelerated/fused_linear.h"
#include "bench/accel_setup.h"

using namespace hacm;
using namespace hacm::bench;

namespace {

constexpr int64_t kRows = 128 * 432, kCols = 256;

// max |got - ref| / max |ref| of the forward and of dx, ref in float64.
bool validate(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& dy,
              at::ScalarType out, double bound, std::string* msg) {
  auto normwise = [](const at::Tensor& got, const at::Tensor& ref) {
    return (got.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
  };
  at::Tensor xd = x.detach().to(at::kDouble).requires_grad_(true);
  at::Tensor yd = at::layer_norm(xd, {kCols}, w.to(at::kDouble), b.to(at::kDouble), 1e-5);
  yd.backward(dy.to(at::kDouble));
  at::Tensor xf = x.detach().clone().requires_grad_(true);
  at::Tensor yf = accel::fused_layer_norm(xf, w, b, 1e-5, out);
  yf.backward(dy);
  const double ey = normwise(yf, yd), ex = normwise(xf.grad(), xd.grad());
  *msg = "y " + std::to_string(ey) + ", dx " + std::to_string(ex);
  return std::isfinite(ey) && std::isfinite(ex) && ey <= bound && ex <= 1e-5;
}

void BM_LayerNorm(benchmark::State& state) {
  const bool fused = state.range(0) == 1, autocast_form = state.range(1) == 1;
  const at::Device dev = bench_device();
  if (!dev.is_cuda()) {
    state.SkipWithError("CUDA-only benchmark (the custom kernels run on the GPU)");
    return;
  }
  const at::ScalarType out = autocast_form ? at::kBFloat16 : at::kFloat;
  auto fopt = at::TensorOptions().device(dev).dtype(at::kFloat);
  at::manual_seed(0);
  at::Tensor x = (at::randn({kRows, kCols}, fopt) + 3).requires_grad_(true);
  at::Tensor w = (at::randn({kCols}, fopt) * 0.5 + 1).requires_grad_(true);
  at::Tensor b = (at::randn({kCols}, fopt) * 0.5).requires_grad_(true);
  at::Tensor dy = at::randn({kRows, kCols}, fopt).to(out);
  std::string msg;
  // y in bf16: one rounding, <= 2^-9 relative; float32: 1e-5.
  if (!validate(x, w, b, dy, out, autocast_form ? 4e-3 : 1e-5, &msg)) {
    state.SkipWithError(("fused LayerNorm differs from float64 ATen: " + msg).c_str());
    return;
  }
  auto step = [&] {
    x.mutable_grad() = at::Tensor();
    w.mutable_grad() = at::Tensor();
    b.mutable_grad() = at::Tensor();
    at::Tensor y = fused ? accel::fused_layer_norm(x, w, b, 1e-5, out)
                         : at::layer_norm(x, {kCols}, w, b, 1e-5).to(out);  // autocast's cast
    y.backward(dy);
  };
  for (int i = 0; i < 3; ++i) step();
  sync_device(dev);
  for (auto _ : state) {
    step();
    sync_device(dev);
  }
  // Bytes a fused forward + backward must move at least: x read twice, y written, dy read, dx
  // written (w, b, statistics negligible).
  const double xb = 4, yb = autocast_form ? 2 : 4;
  state.counters["GB/s"] = benchmark::Counter(double(kRows * kCols) * (2 * xb + 2 * yb + xb),
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1024);
  state.SetLabel(std::string(fused ? "fused kernel" : "ATen") + ", " +
                 (autocast_form ? "float32 in, bf16 out / bf16 gradient" : "float32") +
                 ", 55296 x 256, forward + backward; validation " + msg);
}
BENCHMARK(BM_LayerNorm)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Bias gradient through linear_forward's backward (custom: column-sum kernel) or at::linear's
// (ATen: AddmmBackward's sum). Timed alone: the two backward matmuls are the same in both, so
// the benchmark calls the reductions directly.
void BM_ColumnSum(benchmark::State& state) {
  const bool custom = state.range(0) == 1;
  const int64_t cols = state.range(1);
  const at::Device dev = bench_device();
  if (!dev.is_cuda()) {
    state.SkipWithError("CUDA-only benchmark (the custom kernels run on the GPU)");
    return;
  }
  at::manual_seed(0);
  const auto opt = at::TensorOptions().device(dev);
  at::Tensor dy = at::randn({kRows, cols}, opt).to(at::kBFloat16);
  // Through the layer: a linear whose output gradient is dy; only the bias gradient is wanted.
  at::Tensor x = at::randn({kRows, 8}, opt).to(at::kBFloat16);
  at::Tensor w = at::randn({cols, 8}, opt).to(at::kBFloat16);
  at::Tensor b = at::zeros({cols}, opt.dtype(at::kBFloat16)).requires_grad_(true);
  accel::set_custom_kernels(custom);
  auto bias_grad = [&] {
    b.mutable_grad() = at::Tensor();
    accel::linear_forward(x, w, b).backward(dy);
    return b.grad();
  };
  const at::Tensor ref = dy.to(at::kDouble).sum(0);
  const double err = (bias_grad().to(at::kDouble) - ref).abs().max().item<double>() /
                     ref.abs().max().item<double>();
  // bf16 result (ATen) rounds once: 2^-9; the kernel's float32 sum is rounded to bf16 for a bf16
  // bias: the same bound.
  if (!(err <= 4e-3)) {
    accel::set_custom_kernels(true);
    state.SkipWithError(
        ("bias gradient differs from the float64 sum: " + std::to_string(err)).c_str());
    return;
  }
  for (int i = 0; i < 3; ++i) bias_grad();
  sync_device(dev);
  for (auto _ : state) {
    bias_grad();
    sync_device(dev);
  }
  accel::set_custom_kernels(true);
  state.counters["GB/s"] =
      benchmark::Counter(double(kRows * cols) * 2, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1024);
  state.SetLabel(std::string(custom ? "column-sum kernel" : "ATen") +
                 ", linear backward with in=8 (bias gradient dominates), 55296 rows, bf16; "
                 "validation " +
                 std::to_string(err));
}
BENCHMARK(BM_ColumnSum)
    ->ArgsProduct({{0, 1}, {256, 768, 1024}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
