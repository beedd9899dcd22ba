// Stage execution for `repro run` (accelerated backend). One function per stage kind; the
// checkpoint of a stage holds its parameters ("<state_dict name>"), the optimiser state
// ("optim.*") and progress ("meta.*"), so a killed run resumes where it stopped and ends with
// the same numbers as an uninterrupted one (per-epoch shuffles and per-step draws are derived
// from (seed, epoch, step), never from a running generator).
#include "repro/runner.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/version.h>
#include <unistd.h>

#include <Eigen/Core>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "accelerated/custom_kernels.h"
#include "accelerated/downstream.h"
#include "accelerated/feeder.h"
#include "accelerated/grad_step.h"
#include "accelerated/hacm.h"
#include "accelerated/mamp.h"
#include "accelerated/precision.h"
#include "accelerated/tensor_io.h"
#include "accelerated/train.h"
#include "core/error.h"
#include "core/feeder.h"
#include "core/model_init.h"
#include "core/npz.h"
#include "core/prepare.h"
#include "core/progress.h"
#include "core/provenance.h"
#include "core/rng.h"
#include "core/skeleton.h"
#include "core/synthetic.h"
#include "repro/reference_trainer.h"
#include "repro/run_common.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace hacm::repro {

// ---------------------------------------------------------------------------------------------
// signals

static std::atomic<bool> g_stop{false};
static void on_signal(int) {
  g_stop = true;
}
bool stop_requested() {
  return g_stop.load();
}
void install_signal_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

namespace {

using accel::StateDict;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// context

struct Ctx {
  Ctx(const Protocol& protocol, RunOptions options) : p(protocol), opt(std::move(options)) {}
  const Protocol& p;
  RunOptions opt;
  at::Device dev = at::kCPU;
  int threads = 1;
  bool device_data = false;  // clips resident on c.dev (accelerated/feeder.h)
  accel::Precision precision = accel::Precision::kFp32;
  bool cuda_graphs =
      false;  // pretraining / fine-tuning steps as CUDA graphs (accelerated/grad_step.h)
  bool custom_kernels = false;  // our CUDA kernels in use (accelerated/kernels/; CUDA runs only)
  uint64_t seed = 0;
  std::string seed_dir;
};

// The npz a dataset spec refers to (generating the synthetic set into the work dir once).
std::string dataset_file(const Ctx& c, const DatasetSpec& d) {
  if (d.kind == "npz") return d.path;
  std::string dir = c.opt.work_dir + "/data/synthetic_" + std::to_string(d.clips) + "_" +
                    std::to_string(d.seed) + "_g" + std::to_string(kSyntheticGenerator);
  std::string file = dir + (d.split == "xsub" ? "/Synthetic_XSub.npz" : "/Synthetic_XView.npz");
  if (!fs::exists(file)) {
    PrepareOptions po;
    po.dataset = "synthetic";
    po.out_dir = dir;
    po.clips = d.clips;
    po.seed = d.seed;
    po.threads = c.threads;
    po.progress = c.opt.progress;
    po.cancelled = stop_requested;
    try {
      prepare_synthetic(po);
    } catch (const Interrupted&) {
      std::fprintf(stderr, "[data] stopped by signal while generating %s; nothing written\n",
                   dir.c_str());
      throw RunStopped();
    }
  }
  return file;
}

// A split served as model batches x5 [B, 3, W, 25, 2] on the run's device (labels [B] int64
// there too): transformed on the host by the threaded feeder, or, with data_device "device" (the
// default on CUDA), by the device-resident feeder (accelerated/feeder.h; the same batches, no
// per-step clip work on the host and no host-to-device copy of the batch).
class Batches {
 public:
  Batches(const Ctx& c, const std::string& file, const std::string& split, const FeederConfig& cfg,
          bool train)
      : c_(c), host_(file, split, cfg, train) {
    if (c.device_data) {
      device_ = std::make_unique<accel::DeviceFeeder>(host_, c.dev);
      std::fprintf(stderr, "[data] %s split resident on %s (%.2f GiB)\n", split.c_str(),
                   c.dev.str().c_str(), double(device_->resident_bytes()) / double(1 << 30));
    }
  }
  Batches(const Batches&) = delete;
  Batches& operator=(const Batches&) = delete;
  int64_t size() const { return host_.size(); }
  int num_classes() const { return host_.num_classes(); }
  at::Tensor get(const std::vector<int64_t>& idx, uint64_t seed, at::Tensor* labels) const {
    const int64_t B = int64_t(idx.size());
    if (device_) return device_->get_batch(idx.data(), B, seed, labels);
    // Page-locked on CUDA so that the copies do not wait for the step in flight (tensor_io.h).
    at::Tensor x = accel::host_buffer({B, 3, host_.window(), 25, 2}, at::kFloat, c_.dev);
    at::Tensor lab = accel::host_buffer({B}, at::kLong, c_.dev);
    host_.get_batch(idx.data(), B, seed, x.data_ptr<float>(), lab.data_ptr<int64_t>(), c_.threads);
    if (labels) *labels = accel::to_device(lab, c_.dev);
    return accel::to_device(x, c_.dev);
  }

 private:
  const Ctx& c_;
  Feeder host_;
  std::unique_ptr<accel::DeviceFeeder> device_;
};

StateDict to_params(const std::map<std::string, NdArray>& arrays, const at::Device& dev) {
  StateDict sd;
  for (const auto& [k, a] : arrays) {
    // l1/l2 only feed argsort in the released code: they receive no gradient.
    bool trainable = k.rfind("l1.", 0) != 0 && k.rfind("l2.", 0) != 0;
    sd[k] = accel::to_tensor(a, at::kFloat).to(dev).set_requires_grad(trainable);
  }
  return sd;
}

// ---------------------------------------------------------------------------------------------
// checkpoints: one npz, written atomically (NpzWriter renames a temporary file).

void save_checkpoint(const std::string& path, const StateDict& params, const accel::Optimizer& opt,
                     const CkptMeta& meta) {
  std::map<std::string, NdArray> out;
  for (const auto& [k, v] : params) out[k] = accel::to_ndarray(v);
  opt.save(out, "optim.");
  write_meta(out, meta);
  npz_save(path, out);
}

bool load_checkpoint(const std::string& path, StateDict& params, accel::Optimizer& opt,
                     CkptMeta& meta) {
  if (!fs::exists(path)) return false;
  std::map<std::string, NdArray> in = npz_load(path);
  at::NoGradGuard no_grad;
  for (auto& [k, v] : params) {
    auto it = in.find(k);
    if (it == in.end()) throw InputError(path + ": checkpoint lacks parameter " + k);
    v.copy_(accel::to_tensor(it->second, v.scalar_type()));
  }
  opt.load(in, "optim.");
  read_meta(in, path, meta);
  return true;
}

// ---------------------------------------------------------------------------------------------
// loss read-back

// Training losses stay on the device and are read back kReadback at a time, at the end of an
// epoch and before a checkpoint on a signal: a per-step read-back makes the host wait for the
// device after every step instead of queueing the next one (bench/NOTES.md entry 5). A NaN/Inf
// is still reported with its epoch and step before anything is saved (the weights it reached are
// never checkpointed), and the losses are summed in step order, so curves do not change.
// HACM_FAULT_NAN_STEP=k (pretraining) and HACM_FAULT_NAN_DOWNSTREAM_STEP=k (linear / fine-tuning
// stages), tests only: the loss of global step k (epoch * steps + step) reads as NaN, to check
// that a NaN stops the run with a message and keeps the last good checkpoint. -1 when unset.
int64_t fault_step_from_env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : -1;
}

class PendingLosses {
 public:
  static constexpr size_t kReadback = 16;
  // fault_step >= 0 (tests only, fault_step_from_env): that global step's loss reads as NaN.
  PendingLosses(std::string tag, std::string ckpt, int64_t steps_per_epoch, int64_t fault_step = -1)
      : tag_(std::move(tag)), ckpt_(std::move(ckpt)), steps_(steps_per_epoch), fault_(fault_step) {}
  // Step `it`'s loss (a scalar on the device); the read-back sum once kReadback are pending.
  double add(const at::Tensor& loss, int64_t e, int64_t it, Progress& bar) {
    pending_.push_back(loss.detach()), step_.push_back(it);
    return pending_.size() == kReadback ? flush(e, bar) : 0.0;
  }
  // Read back, check and sum the pending losses; the last one goes into the progress note.
  double flush(int64_t e, Progress& bar) {
    double sum = 0;
    if (pending_.empty()) return sum;
    at::Tensor v = at::stack(pending_).to(at::kCPU, at::kDouble).contiguous();
    const double* l = v.data_ptr<double>();
    for (size_t k = 0; k < pending_.size(); ++k) {
      double lk = l[k];
      if (fault_ >= 0 && e * steps_ + step_[k] == fault_) lk = NAN;
      check_finite(lk, tag_, e, step_[k],
                   fs::exists(ckpt_) ? ckpt_ : "(no checkpoint yet in this stage)");
      sum += lk;
    }
    bar.set_note("loss " + fmt("%.4f", l[pending_.size() - 1]) + note);
    pending_.clear(), step_.clear();
    return sum;
  }
  std::string note;  // appended to the progress note (e.g. the learning rate)

 private:
  std::string tag_, ckpt_;
  int64_t steps_, fault_;
  std::vector<at::Tensor> pending_;
  std::vector<int64_t> step_;
};

// With cuda_graphs on CUDA, a stage's record says whether its steps really ran as a graph (and
// why not, when the capture failed).
void record_graph(const Ctx& c, const accel::GradStep& grad_step, json& record) {
  if (!c.cuda_graphs) return;
  record["cuda_graph"] = grad_step.graphed();
  if (!grad_step.capture_error().empty()) record["cuda_graph_error"] = grad_step.capture_error();
}

// ---------------------------------------------------------------------------------------------
// pretraining

json run_pretrain(Ctx& c, const StageSpec& s, const std::string& tag, StateDict& params) {
  const MethodSpec& m = c.p.method;
  Batches train(c, dataset_file(c, c.p.dataset), "train", feeder_config(m, s.vel), true);
  params = to_params(init_pretrain_params(model_shape(m), c.seed), c.dev);
  accel::AdamW opt(params, accel::weight_decay_groups(params, s.weight_decay), s.beta1, s.beta2);
  const int64_t B = std::min<int64_t>(s.batch_size, train.size());
  const int64_t steps = train.size() / B;  // drop_last, as the authors
  if (steps == 0) throw InputError(c.p.path + ": pretrain batch_size larger than the training set");
  const std::string ckpt = c.seed_dir + "/" + tag + ".ckpt.npz";
  CkptMeta meta;
  if (load_checkpoint(ckpt, params, opt, meta))
    std::fprintf(stderr, "[%s] resuming from %s (%lld epochs + %lld steps done)\n", tag.c_str(),
                 ckpt.c_str(), (long long)meta.epoch, (long long)meta.step);
  if (!meta.curves.contains("loss")) meta.curves["loss"] = json::array();

  accel::HacmConfig hc;
  hc.dim = m.dim, hc.heads = m.heads, hc.depth = m.depth, hc.decoder_depth = m.decoder_depth,
  hc.t_patch = m.t_patch;
  hc.variant = m.variant, hc.keep_ratio = m.keep_ratio, hc.temperature = m.temperature,
  hc.dist_factor = m.dist_factor;
  accel::MampConfig mc;
  mc.dim = m.dim, mc.heads = m.heads, mc.depth = m.depth, mc.decoder_depth = m.decoder_depth,
  mc.t_patch = m.t_patch;
  mc.mask_ratio = m.mask_ratio, mc.tau = m.tau;
  const int64_t TPh = m.frames / m.t_patch / 2, Lg = TPh * kKeptJoints,
                Lm = (m.frames / m.t_patch) * kNtuJoints;
  // Forward + backward of a step, eager or as one CUDA graph (the same arithmetic either way).
  // The joint-index tensors are placed on the device once: building them per call would be a
  // host-to-device copy, which a graph capture forbids.
  if (m.name == "hacm") accel::hacm_place_indices(hc, c.dev);
  accel::GradStep grad_step(
      params, c.precision, c.cuda_graphs, [&](const std::vector<at::Tensor>& in) {
        return m.name == "hacm" ? accel::hacm_forward(params, hc, in[0], in[1], in[2]).loss
                                : accel::mamp_forward(params, mc, in[0], in[1]).loss;
      });

  auto t0 = Clock::now();
  PendingLosses losses(tag, ckpt, steps, fault_step_from_env("HACM_FAULT_NAN_STEP"));
  auto flush = [&](int64_t e, Progress& bar) { return losses.flush(e, bar); };
  auto step = [&](int64_t e, int64_t it, const std::vector<int64_t>& order, Progress& bar) {
    std::vector<int64_t> idx(order.begin() + it * B, order.begin() + (it + 1) * B);
    uint64_t step_seed = mix(mix(c.seed, 2000 + e), uint64_t(it));
    at::Tensor x5 = train.get(idx, step_seed, nullptr);
    double lr = accel::cosine_lr(double(e) + double(it) / double(steps), s.lr, s.min_lr,
                                 s.warmup_epochs, double(s.epochs));
    std::vector<at::Tensor> in{x5};
    if (m.name == "hacm") {
      in.push_back(accel::rng_uniform({2 * B, Lg}, mix(step_seed, 1), c.dev));
      in.push_back(accel::rng_uniform({2 * B, Lg}, mix(step_seed, 2), c.dev));
    } else {
      in.push_back(accel::rng_uniform({2 * B, Lm}, mix(step_seed, 1), c.dev));
    }
    at::Tensor loss = grad_step.run(in);  // gradients in params' .grad
    opt.step(lr);
    losses.note = " lr " + fmt("%.2e", lr);
    return losses.add(loss, e, it, bar);
  };
  const int64_t steps_here =
      pretrain_epochs(tag, s, train.size(), B, c.seed, c.opt.progress, stop_requested, "", ckpt,
                      meta, step, flush, [&] { save_checkpoint(ckpt, params, opt, meta); });
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  json r = pretrain_record(s, B, steps, meta, secs, steps_here, ckpt);
  record_graph(c, grad_step, r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// downstream: linear probe and fine-tuning

accel::EncoderConfig encoder_config(const MethodSpec& m) {
  accel::EncoderConfig ec;
  ec.dim = m.dim, ec.heads = m.heads, ec.depth = m.depth, ec.t_patch = m.t_patch;
  ec.hyperbolic = m.name == "hacm";
  if (m.name == "hacm") ec.idx_kept.assign(hacm_kept_joints().begin(), hacm_kept_joints().end());
  return ec;
}

// One evaluation batch: logits [B, K] and labels [B] (any device) into the counts.
void add_logits(EvalCounts& counts, const at::Tensor& logits, const at::Tensor& labels) {
  at::Tensor z = logits.detach().to(at::kCPU, at::kFloat).contiguous();
  at::Tensor y = labels.to(at::kCPU, at::kLong).contiguous();
  counts.add(z.data_ptr<float>(), z.size(0), z.size(1), y.data_ptr<int64_t>());
}

// Encoder parameters: from the pretraining result, or a fresh random init (seeded).
StateDict encoder_params(const Ctx& c, const StateDict* pretrained, uint64_t init_seed) {
  StateDict src = pretrained
                      ? *pretrained
                      : to_params(init_pretrain_params(model_shape(c.p.method), init_seed), c.dev);
  StateDict enc;
  for (const auto& [k, v] : src) {
    bool keep = k.rfind("joints_embed.", 0) == 0 || k == "pos_embed" || k == "temp_embed" ||
                k.rfind("blocks.", 0) == 0 || k.rfind("norm.", 0) == 0;
    if (keep) enc[k] = v.detach().clone();
  }
  return enc;
}

// The resumable epoch loop of the downstream stages (linear probe, fine-tuning) on
// train_epochs: per-epoch permutations of n_train items and per-step seeds derived from (seed,
// epoch, step), so a stage stopped by a signal resumes at the same step; checkpoints hold
// `params` (including BN running statistics), the optimiser state and the curves.
// `step(e, it, order)` trains one batch and returns its loss on the device (read back in groups:
// PendingLosses); an evaluation follows every eval_every epochs and the last one.
template <class StepFn, class EvalFn>
void downstream_loop(Ctx& c, const StageSpec& s, const std::string& tag, StateDict& params,
                     accel::Optimizer& opt, int64_t n_train, int64_t steps, uint64_t perm_salt,
                     StepFn&& step, EvalFn&& evaluate, json& curves,
                     std::vector<EvalResult>& evals) {
  const std::string ckpt = c.seed_dir + "/" + tag + ".ckpt.npz";
  CkptMeta meta;
  meta.curves = curves;
  if (load_checkpoint(ckpt, params, opt, meta)) resumed_downstream(tag, ckpt, meta, evals);
  PendingLosses losses(tag, ckpt, steps, fault_step_from_env("HACM_FAULT_NAN_DOWNSTREAM_STEP"));
  train_epochs(
      tag, s.epochs, s.checkpoint_every, n_train, steps, c.seed, perm_salt, c.opt.progress,
      stop_requested, ckpt, meta,
      [&](int64_t e, int64_t it, const std::vector<int64_t>& order, Progress& bar) {
        return losses.add(step(e, it, order), e, it, bar);
      },
      [&](int64_t e, Progress& bar) { return losses.flush(e, bar); },
      [&](int64_t e, double mean_loss, int64_t) {
        end_downstream_epoch(s, tag, e, mean_loss, evaluate, meta.curves, evals);
      },
      [&] { save_checkpoint(ckpt, params, opt, meta); });
  curves = meta.curves;
}

// The training and test splits of a linear-probe stage, built once and shared by the probe of
// the pretrained encoder and its random-init baseline (on CUDA each is uploaded once).
struct LinearData {
  Batches train, test;
  LinearData(const Ctx& c, const std::string& file, const FeederConfig& cfg)
      : train(c, file, "train", cfg, true), test(c, file, "test", cfg, false) {}
};

json run_linear(Ctx& c, const StageSpec& s, const std::string& tag, const StateDict* pretrained,
                const LinearData& data) {
  const MethodSpec& m = c.p.method;
  const Batches &train = data.train, &test = data.test;
  StateDict enc = encoder_params(c, pretrained, mix(c.seed, 77));
  for (auto& [k, v] : enc) v.set_requires_grad(false);
  accel::EncoderConfig ec = encoder_config(m);
  accel::encoder_place_indices(ec, c.dev);  // once, not a host copy per batch
  const int64_t C = train.num_classes(), d = m.dim;
  // Head: BatchNorm1d(d, affine=False, eps 1e-6) + fc with trunc-normal(0.01) weight, zero bias.
  StateDict head;
  {
    at::Tensor w = at::empty({C, d}, at::kFloat);
    Rng rng(mix(c.seed, 88));
    for (int64_t i = 0; i < w.numel(); ++i)
      w.data_ptr<float>()[i] = float(std::fmax(-2, std::fmin(2, rng.normal(0, 0.01))));
    head["fc.weight"] = w.to(c.dev).set_requires_grad(true);
    head["fc.bias"] = at::zeros({C}, at::TensorOptions().device(c.dev)).set_requires_grad(true);
    head["bn.running_mean"] = at::zeros({d}, at::TensorOptions().device(c.dev));
    head["bn.running_var"] = at::ones({d}, at::TensorOptions().device(c.dev));
  }
  accel::Sgd opt(head, {accel::ParamGroup{{"fc.weight", "fc.bias"}, s.weight_decay, 1.0}},
                 s.momentum);
  const int64_t B = std::min<int64_t>(s.batch_size, train.size());
  const int64_t steps = train.size() / B;
  auto features = [&](const Batches& f, const std::vector<int64_t>& idx, uint64_t seed,
                      at::Tensor* labels) {
    at::NoGradGuard no_grad;
    at::Tensor x5 = f.get(idx, seed, labels);
    accel::Autocast autocast(c.precision, c.dev);
    return accel::linprobe_features_forward(accel::downstream_encoder_forward(enc, ec, x5))
        .to(at::kFloat);  // the head (BatchNorm + fc) trains in float32
  };
  // Test features are deterministic (centre crop): computed once.
  std::vector<at::Tensor> test_feat, test_lab;
  {
    Progress bar(tag + " test features", (test.size() + B - 1) / B, c.opt.progress);
    for (int64_t i = 0; i < test.size(); i += B) {
      std::vector<int64_t> idx;
      for (int64_t j = i; j < std::min(test.size(), i + B); ++j) idx.push_back(j);
      at::Tensor lab;
      test_feat.push_back(features(test, idx, 0, &lab));
      test_lab.push_back(lab);
      bar.tick();
    }
  }
  auto evaluate = [&]() {
    at::NoGradGuard no_grad;
    EvalCounts counts(C);
    for (size_t i = 0; i < test_feat.size(); ++i)
      add_logits(counts, accel::linprobe_head_forward(test_feat[i], head, "fc.", "bn.", false),
                 test_lab[i]);
    return counts.result();
  };
  json curves = {{"loss", json::array()}, {"top1", json::array()}, {"top5", json::array()}};
  std::vector<EvalResult> evals;
  auto t0 = Clock::now();
  auto step = [&](int64_t e, int64_t it, const std::vector<int64_t>& order) {
    std::vector<int64_t> idx(order.begin() + it * B, order.begin() + (it + 1) * B);
    at::Tensor lab;
    at::Tensor feat = features(train, idx, mix(mix(c.seed, 4000 + e), uint64_t(it)), &lab);
    double lr = accel::cosine_lr(double(e) + double(it) / double(steps), s.lr, s.min_lr,
                                 s.warmup_epochs, double(s.epochs));
    opt.zero_grad();
    // BN in train mode: batch statistics, running stats updated with momentum 0.1.
    at::Tensor h = at::batch_norm(feat, {}, {}, head["bn.running_mean"], head["bn.running_var"],
                                  true, 0.1, 1e-6, false);
    at::Tensor loss =
        accel::cross_entropy_forward(at::linear(h, head["fc.weight"], head["fc.bias"]), lab, 0.0);
    loss.backward();
    opt.step(lr);  // a NaN/Inf loss stops the run at its read-back, before any checkpoint
    return loss;
  };
  downstream_loop(c, s, tag, head, opt, train.size(), steps, 3000, step, evaluate, curves, evals);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return finish_eval(curves, evals, "linear", secs,
                     {{"encoder", pretrained ? "pretrained" : "random init"},
                      {"batch_size", B},
                      {"epochs", s.epochs}});
}

json run_finetune(Ctx& c, const StageSpec& s, const std::string& tag, const StateDict* pretrained) {
  const MethodSpec& m = c.p.method;
  const DatasetSpec& ds = s.has_dataset ? s.dataset : c.p.dataset;
  std::string file = dataset_file(c, ds);
  Batches train(c, file, "train", feeder_config(m, s.vel), true);
  Batches test(c, file, "test", feeder_config(m, s.vel), false);
  // Semi-supervised subset: drawn once from the protocol seed, class-agnostic, recorded.
  std::vector<int64_t> pool(static_cast<size_t>(train.size()));
  for (int64_t i = 0; i < train.size(); ++i) pool[size_t(i)] = i;
  json extra = json::object();
  if (s.kind == "semi") {
    std::vector<int64_t> perm = permutation(train.size(), mix(c.seed, 5000));
    int64_t n = std::max<int64_t>(1, int64_t(double(train.size()) * s.fraction));
    pool.assign(perm.begin(), perm.begin() + n);
    extra["subset_size"] = n;
    extra["subset_ids"] = pool;
  }
  StateDict params =
      encoder_params(c, s.from == "pretrain" ? pretrained : nullptr, mix(c.seed, 99));
  for (auto& [k, v] : params) v.set_requires_grad(true);
  accel::EncoderConfig ec = encoder_config(m);
  accel::encoder_place_indices(ec, c.dev);  // once, not a host copy per batch
  const int64_t C = train.num_classes(),
                V = ec.idx_kept.empty() ? kNtuJoints : int64_t(ec.idx_kept.size());
  const int64_t in = V * m.dim, hidden = 2048;
  {
    Rng rng(mix(c.seed, 111));
    auto xavier = [&](int64_t o, int64_t i) {
      at::Tensor w = at::empty({o, i}, at::kFloat);
      double b = std::sqrt(6.0 / double(o + i));
      for (int64_t j = 0; j < w.numel(); ++j) w.data_ptr<float>()[j] = float(rng.uniform(-b, b));
      return w.to(c.dev);
    };
    at::Tensor fc1 = xavier(hidden, in);  // drawn first, as always
    accel::add_finetune_head(params, fc1, xavier(C, hidden));
  }
  accel::AdamW opt(params,
                   accel::layer_decay_groups(params, s.weight_decay, s.layer_decay, m.depth),
                   s.beta1, s.beta2);
  const int64_t N = int64_t(pool.size()), B = std::min<int64_t>(s.batch_size, N);
  const int64_t steps = std::max<int64_t>(1, N / B);
  auto evaluate = [&]() {
    at::NoGradGuard no_grad;
    accel::EncoderConfig eval_cfg = ec;
    eval_cfg.drop_path = 0;
    EvalCounts counts(C);
    for (int64_t i = 0; i < test.size(); i += B) {
      std::vector<int64_t> idx;
      for (int64_t j = i; j < std::min(test.size(), i + B); ++j) idx.push_back(j);
      at::Tensor lab;
      at::Tensor x5 = test.get(idx, 0, &lab);
      accel::Autocast autocast(c.precision, c.dev);
      at::Tensor tok = accel::downstream_encoder_forward(params, eval_cfg, x5);
      add_logits(counts, accel::finetune_head_forward(tok, params, "head.", false, 0.0), lab);
    }
    return counts.result();
  };
  json curves = {{"loss", json::array()}, {"top1", json::array()}, {"top5", json::array()}};
  std::vector<EvalResult> evals;
  accel::EncoderConfig train_cfg = ec;
  train_cfg.drop_path = s.drop_path;
  // Forward + backward, eager or as one CUDA graph (cuda_graphs). Drop-path and dropout masks
  // come from torch's generator, which each step reseeds: a graph replay reads the generator's
  // seed and offset at launch, so it draws the eager step's masks.
  accel::GradStep grad_step(
      params, c.precision, c.cuda_graphs, [&](const std::vector<at::Tensor>& in) {
        at::Tensor tok = accel::downstream_encoder_forward(params, train_cfg, in[0]);
        at::Tensor logits = accel::finetune_head_forward(tok, params, "head.", true, s.dropout);
        return accel::cross_entropy_forward(logits, in[1], s.label_smoothing);  // float32
      });
  auto t0 = Clock::now();
  auto step = [&](int64_t e, int64_t it, const std::vector<int64_t>& order) {
    std::vector<int64_t> idx;
    for (int64_t j = it * B; j < std::min(N, (it + 1) * B); ++j)
      idx.push_back(pool[size_t(order[size_t(j)])]);
    uint64_t step_seed = mix(mix(c.seed, 7000 + e), uint64_t(it));
    // Dropout / drop-path masks come from torch's generator, reseeded from ours every step so a
    // resumed run draws the same masks.
    at::manual_seed(int64_t(mix(step_seed, 3) >> 1));
    at::Tensor lab;
    at::Tensor x5 = train.get(idx, step_seed, &lab);
    double lr = accel::cosine_lr(double(e) + double(it) / double(steps), s.lr, s.min_lr,
                                 s.warmup_epochs, double(s.epochs));
    at::Tensor loss = grad_step.run({x5, lab});  // gradients in params' .grad
    opt.step(lr);  // a NaN/Inf loss stops the run at its read-back, before any checkpoint
    return loss;
  };
  downstream_loop(c, s, tag, params, opt, N, steps, 6000, step, evaluate, curves, evals);
  record_graph(c, grad_step, extra);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  extra["from"] = s.from;
  extra["batch_size"] = B;
  extra["epochs"] = s.epochs;
  if (s.has_dataset) extra["dataset"] = file;
  return finish_eval(curves, evals, s.kind.c_str(), secs, extra);
}

json library_versions() {
  char eigen[32];
  std::snprintf(eigen, sizeof eigen, "%d.%d.%d", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                EIGEN_MINOR_VERSION);
  json v = {{"torch", TORCH_VERSION},
            {"eigen", eigen},
            {"nlohmann_json", std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                  std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                  std::to_string(NLOHMANN_JSON_VERSION_PATCH)},
            {"compiler", __VERSION__},
            {"torch_threads", at::get_num_threads()}};
  if (at::hasCUDA()) v["cuda_device_count"] = at::detail::getCUDAHooks().deviceCount();
  return v;
}

// The source tree's commit now, else the configure-time one (a copy whose source dir is gone).
std::string git_commit() {
  const std::string c = source_commit(HACM_SOURCE_DIR);
  return c.empty() ? std::string(HACM_GIT_COMMIT) : c;
}

void write_json_atomic(const std::string& path, const json& j) {
  fs::create_directories(fs::path(path).parent_path());
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

std::string utc_now(const char* fmt) {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, fmt, &utc);
  return buf;
}

// What stage i's checkpoint and result were made from: the protocol's settings up to and
// including that stage (dataset, method, backend, stages[0..i]; not the description, seeds,
// devices or thread count, nor random_baseline before a linear stage), the seed, and the data
// (synthetic generator version; an npz file's size and modification time, which change when it is
// prepared again). Code changes do not count: a rebuilt binary resumes its own run. Two protocols
// that share a pretraining stage share its fingerprint, so they can share a work dir.
json stage_fingerprint(const Protocol& p, size_t i, uint64_t seed) {
  json data = json::array();
  auto add = [&](const DatasetSpec& d) {
    if (d.kind == "synthetic") {
      data.push_back({{"synthetic_generator", kSyntheticGenerator}});
    } else {
      std::error_code ec;
      const auto size = fs::file_size(d.path, ec);
      const auto mtime = ec ? fs::file_time_type{} : fs::last_write_time(d.path, ec);
      data.push_back({{"path", d.path},
                      {"size", ec ? -1 : int64_t(size)},
                      {"mtime", ec ? 0 : int64_t(mtime.time_since_epoch().count())}});
    }
  };
  add(p.dataset);
  for (size_t k = 0; k <= i; ++k)
    if (p.stages[k].has_dataset) add(p.stages[k].dataset);
  json settings = p.raw;
  // Keys that change speed, not results (cuda_graphs replays the eager step's kernels).
  for (const char* k : {"description", "seeds", "device", "data_device", "threads", "cuda_graphs"})
    settings.erase(k);
  json stages = json::array();
  bool linear = false;  // random_baseline only changes linear-probe stages
  for (size_t k = 0; k <= i && k < p.raw["stages"].size(); ++k) {
    stages.push_back(p.raw["stages"][k]);
    linear = linear || p.stages[k].kind == "linear";
  }
  settings["stages"] = stages;
  if (!linear) settings.erase("random_baseline");
  return {{"settings", settings}, {"seed", seed}, {"data", data}};
}

// A stage resumes (or reuses its result) only if its files were made by the same settings
// (<tag>.run.json beside them). Otherwise its files (`stage<i>_*`) are moved to
// <work>/stale-<UTC time>/seed<k>/, never reused and never deleted, and the stage starts afresh.
// Later stages' fingerprints contain this one's, so they follow.
void claim_stage(const std::string& work_dir, const std::string& seed_dir, size_t i,
                 const std::string& tag, const json& fingerprint) {
  const std::string stamp = seed_dir + "/" + tag + ".run.json";
  std::string why;
  if (fs::exists(stamp)) {
    json old;
    try {
      std::ifstream f(stamp);
      old = json::parse(f);
    } catch (const std::exception&) {
      why = "unreadable " + stamp;
    }
    if (why.empty() && old == fingerprint) return;
    if (why.empty())
      why = old.value("data", json()) != fingerprint["data"]
                ? "the data changed (regenerated or re-prepared)"
                : "the protocol's settings for this stage or an earlier one changed";
  } else {
    why = "no " + tag + ".run.json: made by an older repro";
  }
  const std::string prefix = "stage" + std::to_string(i) + "_";
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(seed_dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) stale.push_back(e.path());
  if (!stale.empty()) {
    const fs::path aside =
        fs::path(work_dir) / ("stale-" + utc_now("%Y%m%dT%H%M%SZ")) / fs::path(seed_dir).filename();
    fs::create_directories(aside);
    for (const auto& e : stale) fs::rename(e, aside / e.filename());
    std::fprintf(stderr, "[%s] files of another run (%s) moved to %s; starting afresh\n",
                 tag.c_str(), why.c_str(), aside.string().c_str());
  }
  write_json_atomic(stamp, fingerprint);
}

}  // namespace

json run_protocol(const Protocol& p, const RunOptions& opt_in) {
  RunOptions opt = opt_in;
  if (opt.work_dir.empty()) opt.work_dir = "runs/" + p.name;
  if (opt.results_dir.empty()) opt.results_dir = "results/" + p.name;
  // --- reference backend (repro/reference_trainer.h): stage kinds it cannot train fail here.
  const bool reference = p.backend == "reference";
  if (reference) check_reference_protocol(p);
  Ctx c{p, opt};
  if (p.device == "cuda" && !at::hasCUDA())
    throw InputError(p.path + ": device: \"cuda\" requested but no GPU is present");
  c.dev = !reference && (p.device == "cuda" || (p.device == "auto" && at::hasCUDA()))
              ? at::Device(at::kCUDA)
              : at::Device(at::kCPU);
  c.threads = p.threads > 0 ? p.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  if (c.dev.is_cpu()) at::set_num_threads(c.threads);
  c.device_data =
      !reference && (p.data_device == "device" || (p.data_device == "auto" && c.dev.is_cuda()));
  c.precision = accel::parse_precision(p.precision);
  if (c.dev.is_cuda()) accel::set_matmul_precision(c.precision);  // fp32: TF32 off, as the authors
  c.cuda_graphs = !reference && p.cuda_graphs && c.dev.is_cuda();
  if (p.cuda_graphs && !c.cuda_graphs)
    std::fprintf(stderr, "[run] cuda_graphs: no CUDA device in this run; steps run eagerly\n");
  // The kernels only exist on CUDA; off, every op is ATen's (float rounding differs slightly).
  accel::set_custom_kernels(p.custom_kernels);
  c.custom_kernels = !reference && p.custom_kernels && c.dev.is_cuda();
  std::string kernels_off;  // HACM_CUSTOM_KERNELS_OFF (a developer's A/B knob), checked up front
  try {
    kernels_off = accel::custom_kernels_off();
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  fs::create_directories(opt.work_dir);
  install_signal_handlers();

  json result = {{"protocol", p.name},
                 {"protocol_file", p.path},
                 {"protocol_sha256", p.sha256},
                 {"protocol_json", p.raw},
                 {"git_commit", git_commit()},
                 {"backend", p.backend},
                 {"device", c.dev.is_cuda() ? "cuda" : "cpu"},
                 {"device_name", accel::device_description(c.dev)},
                 {"data_device", c.device_data ? "device" : "host"},
                 {"precision", p.precision},
                 {"cuda_graphs", c.cuda_graphs},
                 {"custom_kernels", c.custom_kernels},
                 {"custom_kernels_off", c.custom_kernels ? kernels_off : ""},
                 {"threads", c.threads},
                 {"versions", library_versions()},
                 {"seeds", p.seeds},
                 {"runs", json::array()}};
  if (p.dataset.kind == "synthetic") result["synthetic_generator"] = kSyntheticGenerator;
  auto t_all = Clock::now();
  for (uint64_t seed : p.seeds) {
    c.seed = seed;
    c.seed_dir = opt.work_dir + "/seed" + std::to_string(seed);
    fs::create_directories(c.seed_dir);
    json run = {{"seed", seed}, {"stages", json::array()}};
    StateDict pretrained;
    bool have_pretrained = false;
    // --- reference backend: its context and the parameters passed between its stages.
    ReferenceContext rc{&p,
                        seed,
                        c.seed_dir,
                        c.threads,
                        opt.progress,
                        [&c](const DatasetSpec& d) { return dataset_file(c, d); },
                        stop_requested};
    ReferenceParams ref_pretrained;
    for (size_t i = 0; i < p.stages.size(); ++i) {
      const StageSpec& s = p.stages[i];
      std::string tag = "stage" + std::to_string(i) + "_" + s.kind;
      std::string done = c.seed_dir + "/" + tag + ".result.json";
      claim_stage(opt.work_dir, c.seed_dir, i, tag, stage_fingerprint(p, i, seed));
      json r;
      if (fs::exists(done) && s.kind != "pretrain") {
        std::ifstream f(done);
        r = json::parse(f);
        std::fprintf(stderr, "[%s] already done (%s)\n", tag.c_str(), done.c_str());
      } else if (reference) {  // --- reference backend: one call per stage
        r = run_reference_stage(rc, s, tag, ref_pretrained, have_pretrained);
      } else if (s.kind == "pretrain") {
        r = run_pretrain(c, s, tag, pretrained);
        have_pretrained = true;
      } else if (s.kind == "linear") {
        const LinearData data(c, dataset_file(c, p.dataset), feeder_config(p.method, s.vel));
        r = run_linear(c, s, tag, have_pretrained && s.from == "pretrain" ? &pretrained : nullptr,
                       data);
        if (p.random_baseline)
          r["linear_random"] = run_linear(c, s, tag + "_random", nullptr, data);
      } else {
        r = run_finetune(c, s, tag, have_pretrained ? &pretrained : nullptr);
      }
      write_json_atomic(done, r);
      run["stages"].push_back(r);
    }
    result["runs"].push_back(run);
  }
  result["wall_s"] = std::chrono::duration<double>(Clock::now() - t_all).count();
  // when the run finished (UTC): `repro table` shows the newest result of a protocol
  result["finished_utc"] = utc_now("%Y-%m-%dT%H:%M:%SZ");
  // Summary over seeds (mean ± std of each evaluation stage's final and max top-1).
  json summary = json::array();
  for (size_t i = 0; i < p.stages.size(); ++i) {
    if (p.stages[i].kind == "pretrain") continue;
    for (const char* key : {"top1_final", "top1_max", "top5_final"}) {
      std::vector<double> v;
      for (const auto& run : result["runs"])
        if (run["stages"][i].contains(key)) v.push_back(run["stages"][i][key].get<double>());
      if (v.empty()) continue;
      double mean = 0, var = 0;
      for (double x : v) mean += x;
      mean /= double(v.size());
      for (double x : v) var += (x - mean) * (x - mean);
      double sd = v.size() > 1 ? std::sqrt(var / double(v.size() - 1)) : 0.0;
      summary.push_back({{"stage", i},
                         {"kind", p.stages[i].kind},
                         {"metric", key},
                         {"mean", mean},
                         {"std", sd},
                         {"n", v.size()}});
    }
  }
  result["summary"] = summary;
  std::string run_id = p.name + "-" + result["git_commit"].get<std::string>();
  write_json_atomic(opt.results_dir + "/" + run_id + ".json", result);
  result["result_file"] = opt.results_dir + "/" + run_id + ".json";
  return result;
}

}  // namespace hacm::repro
