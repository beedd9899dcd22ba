// Custom CUDA kernels against the ATen ops they replace (issue #4: "where measurement shows they
// pay"). BM_LayerNorm: forward + backward of one LayerNorm at the size of a decoder LayerNorm of
// the 64-clip HA-CM step (128 sequences x 432 tokens = 55,296 rows of 256), in the two forms the
// model uses: float32 throughout, and the autocast form (float32 residual stream in, bf16 matmul
// input out, bf16 gradient in). impl 0 = ATen (at::layer_norm, plus the casts autocast adds around
// it), 1 = the fused kernel. Before timing, the fused result is checked against float64 ATen on
// the same values (a fast wrong kernel is not a result). BM_AddLayerNorm: a block's residual
// addition and the LayerNorm after it, unfused and fused. BM_LinearGelu: fc1 + GELU with and
// without the fused GELU backward / bias gradient. BM_ExpmapProjection: the Poincaré map of the
// tokens, ATen's composition and the fused kernels. BM_AttentionForward: attention without
// gradient at the feature pass's shape, SDPA against the head-dimension-32 kernel.
// BM_AttentionTraining: the same with the backward, at a decoder layer's shape. BM_ColumnSum:
// the bias-gradient reduction of a linear layer alone, ATen's against the column-sum kernel,
// validated against a float64 sum. CUDA only.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "accelerated/fused_attention.h"
#include "accelerated/fused_hyperbolic.h"
#include "accelerated/fused_layer_norm.h"
#include "accelerated/fused_linear.h"
#include "accelerated/hyperbolic.h"
#include "accelerated/precision.h"
#include "bench/accel_setup.h"

using namespace hacm;
using namespace hacm::bench;

namespace {

constexpr int64_t kRows = 128 * 432, kCols = 256;

// max |got - ref| / max |ref|, ref in float64.
double max_rel_error(const at::Tensor& got, const at::Tensor& ref) {
  return (got.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

// The benchmark's device when it is a GPU; else the benchmark is skipped (false).
bool cuda_device(benchmark::State& state, at::Device* dev) {
  *dev = bench_device();
  if (dev->is_cuda()) return true;
  state.SkipWithError("CUDA-only benchmark (the custom kernels run on the GPU)");
  return false;
}

struct Error {
  std::string name;
  double value, bound;
};
// True when every error is finite and within its bound, with *msg = "validation <name> <value>,
// ..."; else the benchmark is skipped with `what` and the errors (a fast wrong kernel is not a
// result).
// Custom kernels turned off by name for one benchmark's lifetime (all back on afterwards).
struct KernelsOff {
  explicit KernelsOff(const std::string& csv) { accel::set_custom_kernels_off(csv); }
  ~KernelsOff() { accel::set_custom_kernels_off(""); }
};

bool validated(benchmark::State& state, const std::string& what, const std::vector<Error>& errors,
               std::string* msg) {
  bool ok = true;
  std::string list;
  for (const Error& e : errors) {
    ok = ok && std::isfinite(e.value) && e.value <= e.bound;
    list += (list.empty() ? "" : ", ") + e.name + " " + std::to_string(e.value);
  }
  *msg = "validation " + list;
  if (!ok) state.SkipWithError((what + " differs from float64: " + list).c_str());
  return ok;
}

// Three warm-up runs, then the timed loop, every run synchronised; `bytes` a run must move at
// least, as a GB/s counter (0: none).
template <typename F>
void timed_loop(benchmark::State& state, const at::Device& dev, F&& run, double bytes) {
  for (int i = 0; i < 3; ++i) run();
  sync_device(dev);
  for (auto _ : state) {
    run();
    sync_device(dev);
  }
  if (bytes > 0)
    state.counters["GB/s"] = benchmark::Counter(
        bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
}

void BM_LayerNorm(benchmark::State& state) {
  const bool fused = state.range(0) == 1, autocast_form = state.range(1) == 1;
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  const at::ScalarType out = autocast_form ? at::kBFloat16 : at::kFloat;
  auto fopt = at::TensorOptions().device(dev).dtype(at::kFloat);
  at::manual_seed(0);
  at::Tensor x = (at::randn({kRows, kCols}, fopt) + 3).requires_grad_(true);
  at::Tensor w = (at::randn({kCols}, fopt) * 0.5 + 1).requires_grad_(true);
  at::Tensor b = (at::randn({kCols}, fopt) * 0.5).requires_grad_(true);
  at::Tensor dy = at::randn({kRows, kCols}, fopt).to(out);
  auto run = [&](bool f) {
    for (at::Tensor* t : {&x, &w, &b}) t->mutable_grad() = at::Tensor();
    at::Tensor y = f ? accel::fused_layer_norm(x, w, b, 1e-5, out)
                     : at::layer_norm(x, {kCols}, w, b, 1e-5).to(out);  // autocast's cast
    y.backward(dy);
    return y;
  };
  std::string msg;
  {  // the fused forward and dx against float64 ATen on the same values
    const at::Tensor y = run(true);
    at::Tensor xd = x.detach().to(at::kDouble).requires_grad_(true);
    at::Tensor yd = at::layer_norm(xd, {kCols}, w.to(at::kDouble), b.to(at::kDouble), 1e-5);
    yd.backward(dy.to(at::kDouble));
    // y in bf16: one rounding, <= 2^-9 relative (4e-3); float32 arithmetic: 1e-5.
    if (!validated(state, "fused LayerNorm",
                   {{"y", max_rel_error(y, yd), autocast_form ? 4e-3 : 1e-5},
                    {"dx", max_rel_error(x.grad(), xd.grad()), 1e-5}},
                   &msg))
      return;
  }
  // Bytes a fused forward + backward must move at least: x read twice, y written, dy read, dx
  // written (w, b, statistics negligible).
  const double xb = 4, yb = autocast_form ? 2 : 4;
  timed_loop(
      state, dev, [&] { run(fused); }, double(kRows * kCols) * (2 * xb + 2 * yb + xb));
  state.SetLabel(std::string(fused ? "fused kernel" : "ATen") + ", " +
                 (autocast_form ? "float32 in, bf16 out / bf16 gradient" : "float32") +
                 ", 55296 x 256, forward + backward; " + msg);
}
BENCHMARK(BM_LayerNorm)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A block's residual addition and the LayerNorm after it, as autocast runs them (float32 stream x,
// bf16 branch r, bf16 LayerNorm output and gradient; the sum also feeds the next addition, so
// its gradient gs arrives too): impl 0 = `x + r` then the fused LayerNorm (autograd adds gs to the
// LayerNorm's dx and casts the branch's gradient), 1 = fused_add_layer_norm (one pass each way).
// Validated first: the fused outputs against float64 ATen on the same values.
void BM_AddLayerNorm(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  auto fopt = at::TensorOptions().device(dev).dtype(at::kFloat);
  at::manual_seed(0);
  at::Tensor x = (at::randn({kRows, kCols}, fopt) + 3).requires_grad_(true);
  at::Tensor r = (at::randn({kRows, kCols}, fopt) * 0.5).to(at::kBFloat16).requires_grad_(true);
  at::Tensor w = (at::randn({kCols}, fopt) * 0.5 + 1).requires_grad_(true);
  at::Tensor b = (at::randn({kCols}, fopt) * 0.5).requires_grad_(true);
  const at::Tensor gs = at::randn({kRows, kCols}, fopt);
  const at::Tensor dy = at::randn({kRows, kCols}, fopt).to(at::kBFloat16);
  auto run = [&](bool f) {
    for (at::Tensor* t : {&x, &r, &w, &b}) t->mutable_grad() = at::Tensor();
    at::Tensor sum, y;
    if (f) {
      std::tie(sum, y) = accel::fused_add_layer_norm(x, r, w, b, 1e-5, at::kBFloat16);
    } else {
      sum = x + r;
      y = accel::fused_layer_norm(sum, w, b, 1e-5, at::kBFloat16);
    }
    torch::autograd::backward({sum, y}, {gs, dy});
    return y;
  };
  std::string msg;
  {  // y and the stream's gradient against float64 ATen
    const at::Tensor y = run(true);
    at::Tensor xd = x.detach().to(at::kDouble).requires_grad_(true);
    at::Tensor sd = xd + r.detach().to(at::kDouble);
    at::Tensor yd = at::layer_norm(sd, {kCols}, w.to(at::kDouble), b.to(at::kDouble), 1e-5);
    torch::autograd::backward({sd, yd}, {gs.to(at::kDouble), dy.to(at::kDouble)});
    // y: one bf16 rounding (4e-3); the stream's gradient: float32 arithmetic (1e-5).
    if (!validated(
            state, "fused add + LayerNorm",
            {{"y", max_rel_error(y, yd), 4e-3}, {"dx", max_rel_error(x.grad(), xd.grad()), 1e-5}},
            &msg))
      return;
  }
  // Minimum traffic of the fused pair: forward x, r read, sum, y written; backward dy, sum, gs
  // read, dx, dr written (bytes per element: 4 + 2 + 4 + 2, 2 + 4 + 4 + 4 + 2).
  timed_loop(
      state, dev, [&] { run(fused); }, double(kRows * kCols) * 28);
  state.SetLabel(std::string(fused ? "fused add + LayerNorm" : "x + r, then fused LayerNorm") +
                 ", float32 stream, bf16 branch / output / gradient, 55296 x 256, forward + "
                 "backward; " +
                 msg);
}
BENCHMARK(BM_AddLayerNorm)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// An MLP's fc1 + GELU under bf16 autocast at a decoder's size (55,296 rows, 256 -> 1024), forward
// and backward: impl 0 = at::gelu(linear_forward(...)) (ATen's GELU backward, then the column-sum
// kernel reads dh again for the bias gradient), 1 = linear_gelu_forward (kernels/gelu.cu: the
// GELU backward and the bias gradient in one pass). Validated first against float64 ATen.
void BM_LinearGelu(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  constexpr int64_t kIn = 256, kOut = 1024;
  auto fopt = at::TensorOptions().device(dev).dtype(at::kFloat);
  at::manual_seed(0);
  at::Tensor x = at::randn({kRows, kIn}, fopt).to(at::kBFloat16).requires_grad_(true);
  at::Tensor w = (at::randn({kOut, kIn}, fopt) * (1.5 / 16)).requires_grad_(true);
  at::Tensor b = (at::randn({kOut}, fopt) * 0.5).requires_grad_(true);
  const at::Tensor dy = at::randn({kRows, kOut}, fopt).to(at::kBFloat16);
  auto run = [&](bool f) {
    for (at::Tensor* t : {&x, &w, &b}) t->mutable_grad() = at::Tensor();
    accel::Autocast autocast(accel::Precision::kBf16, dev);
    at::Tensor y =
        f ? accel::linear_gelu_forward(x, w, b) : at::gelu(accel::linear_forward(x, w, b));
    y.backward(dy);
    return y;
  };
  std::string msg;
  {  // y and the bias gradient against float64 ATen
    const at::Tensor y = run(true);
    at::Tensor xd = x.detach().to(at::kDouble), wd = w.detach().to(at::kDouble);
    at::Tensor bd = b.detach().to(at::kDouble).requires_grad_(true);
    at::Tensor yd = at::gelu(at::linear(xd, wd, bd));
    yd.backward(dy.to(at::kDouble));
    // Two bf16 roundings (pre-activation, result) after float32 arithmetic: 8e-3 (y, db).
    if (!validated(
            state, "fc1 + GELU",
            {{"y", max_rel_error(y, yd), 8e-3}, {"db", max_rel_error(b.grad(), bd.grad()), 8e-3}},
            &msg))
      return;
  }
  timed_loop(
      state, dev, [&] { run(fused); }, 0);
  state.SetLabel(std::string(fused ? "linear_gelu_forward" : "at::gelu(linear_forward)") +
                 ", bf16 autocast, 55296 x 256 -> 1024, forward + backward; " + msg);
}
BENCHMARK(BM_LinearGelu)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// The Poincaré map of the embedded tokens, project(expmap(x)), forward + backward on the token
// tensor of a 64-clip HA-CM step (128 x 24 x 18 = 55,296 rows of 256, float32): impl 0 = the ATen
// composition (expmap_forward then project_forward, autograd), 1 = the fused kernels. Validated
// first: the fused result and gradient against float64 ATen on the same values.
void BM_ExpmapProjection(benchmark::State& state) {
  const bool fused = state.range(0) == 1;
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  auto fopt = at::TensorOptions().device(dev).dtype(at::kFloat);
  at::manual_seed(0);
  // Row norms ~1.6 (0.1 x sqrt(256)): inside the ball, below the projection.
  at::Tensor x = (at::randn({kRows, kCols}, fopt) * 0.1).requires_grad_(true);
  const at::Tensor dy = at::randn({kRows, kCols}, fopt);
  auto run = [&](bool f) {
    x.mutable_grad() = at::Tensor();
    at::Tensor y =
        f ? accel::fused_expmap_projection(x) : accel::project_forward(accel::expmap_forward(x));
    y.backward(dy);
    return y;
  };
  std::string msg;
  {  // the fused map and its gradient against float64 ATen
    const at::Tensor y = run(true);
    at::Tensor xd = x.detach().to(at::kDouble).requires_grad_(true);
    at::Tensor yd = accel::project_forward(accel::expmap_forward(xd));
    yd.backward(dy.to(at::kDouble));
    // float32 through tanh / sqrt and two row sums: 1e-5 both.
    if (!validated(
            state, "fused Poincare map",
            {{"y", max_rel_error(y, yd), 1e-5}, {"dx", max_rel_error(x.grad(), xd.grad()), 1e-5}},
            &msg))
      return;
  }
  // Minimum traffic: forward x read, y written; backward x, dy read, dx written (float32).
  timed_loop(
      state, dev, [&] { run(fused); }, double(kRows * kCols) * 20);
  state.SetLabel(std::string(fused ? "fused kernels" : "ATen composition") +
                 ", 55296 x 256 float32, forward + backward; " + msg);
}
BENCHMARK(BM_ExpmapProjection)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// ATen's attention as attention_forward runs it: q, k, v viewed out of qkv [B, N, 3d], SDPA,
// heads back side by side -> [B, N, d].
at::Tensor sdpa_of_qkv(const at::Tensor& qkv, int64_t heads) {
  const int64_t B = qkv.size(0), N = qkv.size(1), d = qkv.size(2) / 3;
  const auto parts = qkv.split(d, -1);
  auto view = [&](const at::Tensor& t) { return t.view({B, N, heads, d / heads}).transpose(1, 2); };
  return at::scaled_dot_product_attention(view(parts[0]), view(parts[1]), view(parts[2]))
      .transpose(1, 2)
      .reshape({B, N, d});
}

// The same attention in float64 from qkv [B, N, 3d] (any dtype; autograd flows through it).
at::Tensor attention_double(const at::Tensor& qkv, int64_t heads) {
  const int64_t B = qkv.size(0), N = qkv.size(1), d = qkv.size(2) / 3, hd = d / heads;
  const at::Tensor x = qkv.to(at::kDouble).view({B, N, 3, heads, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor p =
      at::softmax(at::matmul(x[0], x[1].transpose(-2, -1)) / std::sqrt(double(hd)), -1);
  return at::matmul(p, x[2]).transpose(1, 2).reshape({B, N, d});
}

// Attention without gradient at the feature pass's shape (128 clips x 2 persons = 256 sequences
// of 432 tokens, 8 heads of 32, bf16): impl 0 = at::scaled_dot_product_attention on q, k, v viewed
// out of qkv (ATen's choice of backend, as attention_forward), 1 = the forward kernel with the
// softmax in registers (kernels/attention.cu, mma.sync), 2 = the WMMA forward kernel
// (attention_mma off). Validated first against float64 attention on the same values.
void BM_AttentionForward(benchmark::State& state) {
  const bool fused = state.range(0) >= 1, wmma = state.range(0) == 2;
  const KernelsOff off(wmma ? "attention_mma" : "");
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  constexpr int64_t kB = 256, kN = 432, kHeads = 8, kD = 256;
  at::NoGradGuard no_grad;
  at::manual_seed(0);
  const at::Tensor qkv =
      (at::randn({kB, kN, 3 * kD}, at::TensorOptions().device(dev)) * 1.5).to(at::kBFloat16);
  auto run = [&](bool f) {
    return f ? accel::fused_attention(qkv, kHeads) : sdpa_of_qkv(qkv, kHeads);
  };
  std::string msg;
  {  // the kernel against float64 attention on 16 of the sequences (all of them: ~1 GB of double)
    const at::Tensor want = attention_double(qkv.narrow(0, 0, 16), kHeads);
    // P and the output rounded to bf16 (2^-9 each): 8e-3.
    if (!validated(state, "attention forward kernel",
                   {{"out", max_rel_error(run(true).narrow(0, 0, 16), want), 8e-3}}, &msg))
      return;
  }
  timed_loop(
      state, dev, [&] { run(fused); }, 0);
  // Scores per run: sequences x heads x N x N; the exp floor of an H100 is ~3.7 G per ms.
  state.counters["Gscores/s"] = benchmark::Counter(double(kB * kHeads * kN * kN) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(wmma    ? "WMMA forward kernel (head dim 32)"
                             : fused ? "register-softmax forward kernel (head dim 32)"
                                     : "ATen SDPA") +
                 ", 256 x 432 tokens, 8 heads, bf16, no gradient; " + msg);
}
BENCHMARK(BM_AttentionForward)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Attention forward + backward at a decoder layer's shape in the 64-clip step (128 sequences x
// 432 tokens, 8 heads of 32, bf16): impl 0 = SDPA on q, k, v viewed out of qkv (autograd: the
// backward ends in split's concatenation of dq, dk, dv), 1 = the training kernels (the packed
// gradient of qkv directly; forward and backward with their products in registers), 2 = the same
// with the WMMA forward and backward, 3 = register forward, WMMA backward. Validated first: output
// and gradient against float64 on 8 sequences.
void BM_AttentionTraining(benchmark::State& state) {
  const int impl = int(state.range(0));
  const bool fused = impl >= 1;
  const KernelsOff off(impl == 2   ? "attention_mma,attention_mma_backward"
                       : impl == 3 ? "attention_mma_backward"
                                   : "");
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  constexpr int64_t kB = 128, kN = 432, kHeads = 8, kD = 256;
  at::manual_seed(0);
  const auto opt = at::TensorOptions().device(dev);
  at::Tensor qkv = (at::randn({kB, kN, 3 * kD}, opt) * 1.5).to(at::kBFloat16).requires_grad_(true);
  const at::Tensor dout = at::randn({kB, kN, kD}, opt).to(at::kBFloat16);
  auto run = [&](bool f) {
    qkv.mutable_grad() = at::Tensor();
    at::Tensor out = f ? accel::fused_attention_training(qkv, kHeads) : sdpa_of_qkv(qkv, kHeads);
    out.backward(dout);
    return out;
  };
  std::string msg;
  {  // 8 sequences against float64 autograd
    const at::Tensor out = run(true);
    at::Tensor x = qkv.detach().narrow(0, 0, 8).to(at::kDouble).requires_grad_(true);
    at::Tensor want = attention_double(x, kHeads);
    want.backward(dout.narrow(0, 0, 8).to(at::kDouble));
    // Output: P and out rounded to bf16 (8e-3); gradient: P, dS and the result rounded (1.5e-2).
    if (!validated(state, "attention training kernels",
                   {{"out", max_rel_error(out.narrow(0, 0, 8), want.detach()), 8e-3},
                    {"dqkv", max_rel_error(qkv.grad().narrow(0, 0, 8), x.grad()), 1.5e-2}},
                   &msg))
      return;
  }
  timed_loop(
      state, dev, [&] { run(fused); }, 0);
  state.counters["Gscores/s"] = benchmark::Counter(double(kB * kHeads * kN * kN) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
  static const char* names[] = {"ATen SDPA + split", "training kernels, registers (head dim 32)",
                                "training kernels, WMMA (head dim 32)",
                                "training kernels, register forward, WMMA backward"};
  state.SetLabel(std::string(names[impl]) +
                 ", 128 x 432 tokens, 8 heads, bf16, forward + backward; " + msg);
}
BENCHMARK(BM_AttentionTraining)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Bias-gradient reduction alone: ATen's as autograd runs it under autocast (bf16 in, bf16 out,
// float32 accumulation inside) against accel::column_sum (the kernel; float32 out), at the row
// counts of the HA-CM decoder (55,296) and encoder (~11,000: 128 sequences x 86 tokens) and the
// widths of the block's linears.
void BM_ColumnSum(benchmark::State& state) {
  const bool custom = state.range(0) == 1;
  const int64_t rows = state.range(1), cols = state.range(2);
  at::Device dev = at::kCPU;
  if (!cuda_device(state, &dev)) return;
  at::manual_seed(0);
  const at::Tensor dy = at::randn({rows, cols}, at::TensorOptions().device(dev)).to(at::kBFloat16);
  auto reduce = [&] { return custom ? accel::column_sum(dy) : dy.sum(0); };
  std::string msg;
  // The kernel returns float32 sums (1e-5); ATen rounds its sum to bf16 once (2^-9: 4e-3).
  if (!validated(
          state, "column sums",
          {{"sum", max_rel_error(reduce(), dy.to(at::kDouble).sum(0)), custom ? 1e-5 : 4e-3}},
          &msg))
    return;
  timed_loop(state, dev, reduce, double(rows * cols) * 2);
  state.SetLabel(std::string(custom ? "column-sum kernel" : "ATen sum(0)") + ", " +
                 std::to_string(rows) + " x " + std::to_string(cols) + " bf16; " + msg);
}
BENCHMARK(BM_ColumnSum)
    ->ArgsProduct({{0, 1}, {11008, 55296}, {256, 768, 1024}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

// Golden validation of the model, then the benchmarks with device, torch, commit and BLAS in the
// JSON context (bench/accel_setup.h), as the other accelerated benchmark binaries.
int main(int argc, char** argv) {
  return hacm::bench::run_benchmarks(argc, argv);
}
