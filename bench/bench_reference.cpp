// Eigen reference HA-CM pretraining step (`released` forward + hand-written backward, no
// optimiser) on the CPU, single-threaded, in float and double. Two shapes:
//   small: width 64, 4 heads, depth 2 / decoder 1 (the golden gradient model), N = 2 clips;
//   full:  width 256, 8 heads, depth 8 / decoder 3 (the paper's model), N = 2 clips.
// T = 72, M = 2 persons. Initial weights from core/model_init.h, inputs from our generator.
// Counter: clips/s. Before any timing, main() checks the reference forward against the authors'
// golden loss (hacm_forward.npz) in double and in float (a fast wrong step is not a result); each
// benchmark then checks its own step's loss finite and its gradient non-zero.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/golden_dir.h"
#include "core/model_init.h"
#include "core/npz.h"
#include "core/provenance.h"
#include "core/rng.h"
#include "reference/hacm_model.h"

using namespace hacm;

namespace {

template <class T>
struct Step {
  ref::HacmConfig cfg;
  ref::HacmWeights<T> w;
  ref::Tensor<T> x5, ut, us;
};

template <class T>
Step<T> make_step(int64_t dim, int heads, int64_t depth, int64_t dec_depth, int64_t N) {
  ModelShape s;
  s.dim = s.decoder_dim = dim;
  s.depth = depth;
  s.decoder_depth = dec_depth;
  Step<T> st;
  st.cfg.heads = heads;
  st.w =
      ref::HacmWeights<T>::load(ref::checkpoint_from_arrays<T>(init_pretrain_params(s, 1)), st.cfg);
  Rng rng(2);
  st.x5 = ref::Tensor<T>({N, 3, 72, 25, 2});
  for (auto& v : st.x5.data) v = T(rng.normal(0.0, 0.3));
  st.ut = ref::Tensor<T>({N * 2, 216});
  st.us = ref::Tensor<T>({N * 2, 216});
  for (auto& v : st.ut.data) v = T(rng.uniform());
  for (auto& v : st.us.data) v = T(rng.uniform());
  return st;
}

template <class T>
void BM_ReferenceStep(benchmark::State& state) {
  const bool full = state.range(0) == 1;
  const int64_t N = 2;  // the CPU configuration of bench_hacm_accel and bench/pytorch_step.py
  Step<T> st = full ? make_step<T>(256, 8, 8, 3, N) : make_step<T>(64, 4, 2, 1, N);
  {  // validate once before timing
    auto f = ref::hacm_forward(st.x5, st.ut, st.us, st.w, st.cfg);
    auto g = ref::hacm_backward(f, st.x5, st.w, st.cfg);
    double gn = 0;
    for (auto& [n, t] : g.w.named())
      for (T v : t->data) gn += double(v) * double(v);
    if (!std::isfinite(double(f.loss)) || !(gn > 0)) {
      state.SkipWithError("reference step produced a non-finite loss or a zero gradient");
      return;
    }
  }
  for (auto _ : state) {
    auto f = ref::hacm_forward(st.x5, st.ut, st.us, st.w, st.cfg);
    auto g = ref::hacm_backward(f, st.x5, st.w, st.cfg);
    benchmark::DoNotOptimize(g.x5.data.data());
  }
  state.counters["clips/s"] =
      benchmark::Counter(double(N) * double(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_ReferenceStep<float>)->Arg(0)->ArgName("full")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReferenceStep<double>)->Arg(0)->ArgName("full")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReferenceStep<float>)
    ->Arg(1)
    ->ArgName("full")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);
BENCHMARK(BM_ReferenceStep<double>)
    ->Arg(1)
    ->ArgName("full")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);
namespace {

// The golden forward case through the reference: double without injection (README §5: loss
// 1e-10 relative), float with the golden selections injected (loss 1e-5 relative). True when the
// golden files are absent (with a message).
bool validate_golden_loss() {
  const std::string dir = bench::golden_dir_with("hacm_forward.npz");
  if (dir.empty()) return true;
  NpzReader r(dir + "/hacm_forward.npz");
  ref::HacmConfig cfg;
  cfg.heads = int(r.get("cfg_heads").at_i64(0));
  cfg.logit_scale = r.get("cfg_t_logit_scale").at_f64(0);
  const double golden = r.get("loss").at_f64(0);
  auto wd =
      ref::HacmWeights<double>::load(ref::load_checkpoint<double>(dir + "/weights_hacm.npz"), cfg);
  const double ld = ref::hacm_forward(ref::from_ndarray<double>(r.get("x5")),
                                      ref::from_ndarray<double>(r.get("U_t")),
                                      ref::from_ndarray<double>(r.get("U_s")), wd, cfg)
                        .loss;
  auto wf =
      ref::HacmWeights<float>::load(ref::load_checkpoint<float>(dir + "/weights_hacm.npz"), cfg);
  std::vector<int64_t> ot = r.get("ids_shuffle_t").to_i64(), os = r.get("ids_shuffle_s").to_i64();
  const double lf = ref::hacm_forward(ref::from_ndarray<float>(r.get("x5")),
                                      ref::from_ndarray<float>(r.get("U_t")),
                                      ref::from_ndarray<float>(r.get("U_s")), wf, cfg, &ot, &os)
                        .loss;
  const bool ok_d = std::fabs(ld - golden) <= 1e-10 * std::fabs(golden);
  const bool ok_f = std::fabs(lf - golden) <= 1e-5 * std::fabs(golden);
  std::printf("validation: reference loss double %.12f, float %.9f vs golden %.12f -> %s / %s\n",
              ld, lf, golden, ok_d ? "OK" : "MISMATCH", ok_f ? "OK" : "MISMATCH");
  return ok_d && ok_f;
}

}  // namespace

int main(int argc, char** argv) {
  if (!validate_golden_loss()) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string commit = source_commit(HACM_SOURCE_DIR);
  benchmark::AddCustomContext("git_commit", commit.empty() ? "unknown" : commit);
  benchmark::AddCustomContext("backend", "reference (Eigen, single-threaded)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
