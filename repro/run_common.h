// Backend-neutral pieces of the protocol runner, shared by the accelerated stages
// (repro/runner.cpp) and the reference stages (repro/reference_trainer.cpp) so that both draw
// the same batches, crops, rotations and masking uniforms for a given (seed, epoch, step), and
// write the same checkpoint metadata and result keys. Torch-free.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
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
#include "core/progress.h"
#include "core/protocol.h"
#include "core/rng.h"
#include "core/skeleton.h"
#include "repro/runner.h"

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

// The epoch / step skeleton of every checkpointed training stage of both backends (pretraining,
// fine-tuning, the accelerated linear probe): the per-epoch permutation (seed, perm_salt + e) of
// n_train items, resuming at meta.step of meta.epoch, the progress bar, a checkpoint and
// RunStopped when `stop()` says so, end_epoch(e, mean_loss, steps_here) after each epoch (curves,
// evaluation, log line: the caller's), then checkpoints every checkpoint_every epochs and after
// the last. The loss bookkeeping is the backend's: step(e, it, order, bar) trains batch `it` and
// returns the sum of the losses it read back (already checked finite), flush(e, bar) the sum of
// those still pending (0 if none), and save() writes the checkpoint with `meta`. Returns the
// number of steps trained in this call.
template <class Step, class Flush, class EndEpoch, class Save>
int64_t train_epochs(const std::string& tag, int64_t epochs, int64_t checkpoint_every,
                     int64_t n_train, int64_t steps, uint64_t seed, uint64_t perm_salt,
                     bool progress, const std::function<bool()>& stop, const std::string& ckpt,
                     CkptMeta& meta, Step&& step, Flush&& flush, EndEpoch&& end_epoch,
                     Save&& save) {
  int64_t steps_here = 0;
  for (int64_t e = meta.epoch; e < epochs; ++e) {
    const std::vector<int64_t> order = permutation(n_train, mix(seed, perm_salt + uint64_t(e)));
    Progress bar(tag + " epoch " + std::to_string(e + 1) + "/" + std::to_string(epochs), steps,
                 progress);
    double sum = meta.partial_sum;
    const int64_t first = meta.step;
    bar.tick(first);
    for (int64_t it = first; it < steps; ++it) {
      if (stop && stop()) {  // checkpoint mid-epoch; the rerun continues at this step
        sum += flush(e, bar);
        bar.finish();
        meta.epoch = e;
        meta.step = it;
        meta.partial_sum = sum;
        save();
        std::fprintf(stderr, "[%s] stopped by signal; checkpoint written to %s\n", tag.c_str(),
                     ckpt.c_str());
        throw RunStopped();
      }
      sum += step(e, it, order, bar);
      ++steps_here;
      bar.tick();
    }
    sum += flush(e, bar);
    bar.finish();
    end_epoch(e, sum / double(steps), steps_here);
    meta.epoch = e + 1;
    meta.step = 0;
    meta.partial_sum = 0;
    if (e + 1 == epochs || (checkpoint_every > 0 && (e + 1) % checkpoint_every == 0)) save();
  }
  return steps_here;
}

// train_epochs for a pretraining stage: drop_last batches of B, permutation salt 1000, the loss
// curve in meta.curves["loss"] and an epoch line with clips/s and the time left.
template <class Step, class Flush, class Save>
int64_t pretrain_epochs(const std::string& tag, const StageSpec& s, int64_t n_train, int64_t B,
                        uint64_t seed, bool progress, const std::function<bool()>& stop,
                        const char* line_suffix, const std::string& ckpt, CkptMeta& meta,
                        Step&& step, Flush&& flush, Save&& save) {
  const int64_t steps = n_train / B;  // drop_last, as the authors
  const auto t0 = std::chrono::steady_clock::now();
  auto end_epoch = [&](int64_t e, double mean_loss, int64_t steps_here) {
    meta.curves["loss"].push_back(mean_loss);
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double per_step = el / double(std::max<int64_t>(1, steps_here));
    std::fprintf(stderr, "[%s] epoch %lld/%lld: loss %.5f  %.1f clips/s  eta %.0f s%s\n",
                 tag.c_str(), (long long)e + 1, (long long)s.epochs, mean_loss,
                 double(B) / per_step, per_step * double((s.epochs - e - 1) * steps), line_suffix);
  };
  return train_epochs(tag, s.epochs, s.checkpoint_every, n_train, steps, seed, 1000, progress, stop,
                      ckpt, meta, step, flush, end_epoch, save);
}

// The result record of a pretraining stage (both backends).
inline nlohmann::json pretrain_record(const StageSpec& s, int64_t B, int64_t steps,
                                      const CkptMeta& meta, double secs, int64_t steps_here,
                                      const std::string& ckpt) {
  const nlohmann::json& loss = meta.curves["loss"];
  nlohmann::json r = {{"kind", "pretrain"},
                      {"epochs", s.epochs},
                      {"batch_size", B},
                      {"steps_per_epoch", steps},
                      {"final_loss", loss.empty() ? nlohmann::json(nullptr) : loss.back()},
                      {"curves", meta.curves},
                      {"wall_s", secs},
                      {"checkpoint", ckpt}};
  if (steps_here > 0) r["step_ms"] = 1e3 * secs / double(steps_here);
  return r;
}

struct EvalResult {
  double top1 = 0, top5 = 0;
  int64_t classes = 0;             // 0 = no confusion matrix (evaluations restored from curves)
  std::vector<int64_t> confusion;  // [classes x classes]: row = true class, column = prediction
};

// Evaluation i as recorded in a checkpoint's curves (no confusion matrix is stored there).
inline EvalResult eval_from_curves(const nlohmann::json& curves, size_t i) {
  EvalResult r;
  r.top1 = curves["top1"][i].get<double>();
  r.top5 = curves["top5"][i].get<double>();
  return r;
}

// After a training epoch of a downstream stage (both backends): record the mean loss and, every
// eval_every epochs and at the last one, evaluate on the test set and record top-1 / top-5.
template <class Eval>
void end_downstream_epoch(const StageSpec& s, const std::string& tag, int64_t e, double mean_loss,
                          Eval&& evaluate, nlohmann::json& curves, std::vector<EvalResult>& evals,
                          const char* line_suffix = "") {
  curves["loss"].push_back(mean_loss);
  if ((e + 1) % s.eval_every != 0 && e + 1 != s.epochs) return;
  EvalResult r = evaluate();
  evals.push_back(r);
  curves["top1"].push_back(r.top1);
  curves["top5"].push_back(r.top5);
  std::fprintf(stderr, "[%s] epoch %lld: loss %.4f, test top-1 %.2f %%, top-5 %.2f %%%s\n",
               tag.c_str(), (long long)e + 1, mean_loss, r.top1, r.top5, line_suffix);
}

// A downstream stage that found its checkpoint: say so, and rebuild the evaluations so far from
// the curves it recorded.
inline void resumed_downstream(const std::string& tag, const std::string& ckpt,
                               const CkptMeta& meta, std::vector<EvalResult>& evals) {
  std::fprintf(stderr, "[%s] resuming from %s (%lld epochs + %lld steps done)\n", tag.c_str(),
               ckpt.c_str(), (long long)meta.epoch, (long long)meta.step);
  for (size_t i = 0; i < meta.curves["top1"].size(); ++i)
    evals.push_back(eval_from_curves(meta.curves, i));
}

// Counts of one test-set evaluation, fed batch by batch with CPU float logits [N, K]. A clip
// counts for top-k when fewer than k logits are strictly larger than its label's (ties go to the
// label); its prediction in the confusion matrix is the label when that holds for k = 1, else
// the first arg-max.
class EvalCounts {
 public:
  explicit EvalCounts(int64_t classes)
      : k_(classes), confusion_(static_cast<size_t>(classes * classes), 0) {}
  void add(const float* logits, int64_t N, int64_t K, const int64_t* labels) {
    if (K != k_)
      throw std::logic_error("EvalCounts: logits have " + std::to_string(K) +
                             " classes, expected " + std::to_string(k_));
    for (int64_t n = 0; n < N; ++n) {
      const float* z = logits + n * K;
      const int64_t y = labels[n];
      int64_t above = 0, arg = 0;
      for (int64_t j = 0; j < K; ++j) {
        above += z[j] > z[y];
        if (z[j] > z[arg]) arg = j;
      }
      c1_ += above < 1, c5_ += above < 5, ++n_;
      ++confusion_[size_t(y * K + (above < 1 ? y : arg))];
    }
  }
  EvalResult result() const {
    const double n = double(std::max<int64_t>(n_, 1));
    return EvalResult{100.0 * double(c1_) / n, 100.0 * double(c5_) / n, k_, confusion_};
  }

 private:
  int64_t k_, c1_ = 0, c5_ = 0, n_ = 0;
  std::vector<int64_t> confusion_;
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
    const EvalResult& last = evals.back();
    if (last.classes > 0) {  // final evaluation: per-class top-1 and the confusion matrix
      nlohmann::json per_class = nlohmann::json::array(), rows = nlohmann::json::array();
      for (int64_t y = 0; y < last.classes; ++y) {
        auto b = last.confusion.begin() + y * last.classes;
        std::vector<int64_t> row(b, b + last.classes);
        int64_t total = 0;
        for (int64_t v : row) total += v;
        per_class.push_back(total ? 100.0 * double(row[size_t(y)]) / double(total) : 0.0);
        rows.push_back(row);
      }
      r["per_class_top1_final"] = per_class;
      r["confusion_final"] = rows;
      r["confusion_note"] = "rows: true class, columns: predicted class (final evaluation)";
    }
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) r[it.key()] = it.value();
  return r;
}

}  // namespace hacm::repro
