// Backend-neutral pieces of the protocol runner, shared by the accelerated stages
// (repro/runner.cpp) and the reference stages (repro/reference_trainer.cpp) so that both draw
// the same batches, crops, rotations and masking uniforms for a given (seed, epoch, step), and
// write the same checkpoint metadata and result keys. Torch-free.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/feeder.h"
#include "core/model_init.h"
#include "core/ndarray.h"
#include "core/protocol.h"
#include "core/rng.h"
#include "core/skeleton.h"

namespace hacm::repro {

// Seed mixing: every per-epoch / per-step seed is mix(mix(seed, salt + epoch), step).
inline uint64_t mix(uint64_t a, uint64_t b) {
  return (a * 0x9e3779b97f4a7c15ULL) ^ (b + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2));
}

// Fisher-Yates permutation of 0..n-1 from Rng(seed).
inline std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(v[size_t(i)], v[size_t(rng.below(uint64_t(i + 1)))]);
  return v;
}

inline FeederConfig feeder_config(const MethodSpec& m, bool vel) {
  FeederConfig f;
  f.window = int(m.frames);
  f.vel = vel;
  return f;
}

inline ModelShape model_shape(const MethodSpec& m) {
  ModelShape s;
  s.dim = s.decoder_dim = m.dim;
  s.depth = m.depth;
  s.decoder_depth = m.decoder_depth;
  s.mlp_ratio = m.mlp_ratio;
  s.frames = m.frames;
  s.t_patch = m.t_patch;
  s.hacm = m.name == "hacm";
  s.joints = s.hacm ? kKeptJoints : kNtuJoints;
  return s;
}

inline std::string fmt(const char* f, double a) {
  char b[64];
  std::snprintf(b, sizeof b, f, a);
  return b;
}

inline void check_finite(double loss, const std::string& stage, int64_t epoch, int64_t step,
                         const std::string& ckpt) {
  if (std::isfinite(loss)) return;
  throw std::runtime_error(stage + ": loss became " + (std::isnan(loss) ? "NaN" : "Inf") +
                           " at epoch " + std::to_string(epoch) + " step " + std::to_string(step) +
                           "; stopped. The last good checkpoint is kept: " + ckpt);
}

// Progress of a stage as stored in its checkpoint ("meta.*" members beside the parameters and
// the "optim.*" state).
struct CkptMeta {
  int64_t epoch = 0;       // epochs completed
  int64_t step = 0;        // steps completed in epoch `epoch` (a checkpoint taken on a signal)
  double partial_sum = 0;  // loss sum of those steps
  nlohmann::json curves = nlohmann::json::object();
};

inline void write_meta(std::map<std::string, NdArray>& out, const CkptMeta& meta) {
  out["meta.epoch"] = NdArray::from<int64_t>({}, &meta.epoch);
  out["meta.step"] = NdArray::from<int64_t>({}, &meta.step);
  out["meta.partial_sum"] = NdArray::from<double>({}, &meta.partial_sum);
  std::string js = meta.curves.dump();
  out["meta.curves_json"] =
      NdArray::from<uint8_t>({int64_t(js.size())}, reinterpret_cast<const uint8_t*>(js.data()));
}

inline void read_meta(const std::map<std::string, NdArray>& in, const std::string& path,
                      CkptMeta& meta) {
  for (const char* k : {"meta.epoch", "meta.step", "meta.partial_sum", "meta.curves_json"})
    if (!in.count(k)) throw InputError(path + ": checkpoint lacks " + k);
  meta.epoch = in.at("meta.epoch").at_i64(0);
  meta.step = in.at("meta.step").at_i64(0);
  meta.partial_sum = in.at("meta.partial_sum").at_f64(0);
  const NdArray& cj = in.at("meta.curves_json");
  meta.curves = nlohmann::json::parse(
      std::string(reinterpret_cast<const char*>(cj.bytes), size_t(cj.numel())));
}

struct EvalResult {
  double top1 = 0, top5 = 0;
};

// The result record of an evaluation stage: curves, final and best-epoch accuracies.
inline nlohmann::json finish_eval(nlohmann::json curves, const std::vector<EvalResult>& evals,
                                  const char* kind, double secs,
                                  const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json r = {{"kind", kind}, {"curves", curves}, {"wall_s", secs}};
  if (!evals.empty()) {
    double mx = 0;
    for (const auto& e : evals) mx = std::max(mx, e.top1);
    r["top1_final"] = evals.back().top1;
    r["top5_final"] = evals.back().top5;
    r["top1_max"] = mx;
    r["top1_max_note"] =
        "best epoch on the test set (the authors' convention; no validation split)";
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) r[it.key()] = it.value();
  return r;
}

}  // namespace hacm::repro
