// Protocol stages on the Eigen reference backend (see reference_trainer.h). The structure follows
// runner.cpp's accelerated stages line for line where the semantics are shared (seeds, batch
// order, schedule, checkpoint keys, result keys), so the two can be read side by side.
#include "repro/reference_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <tuple>

#include "core/error.h"
#include "core/feeder.h"
#include "core/model_init.h"
#include "core/npz.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/skeleton.h"
#include "reference/downstream.h"
#include "reference/hacm_model.h"
#include "reference/mamp.h"
#include "reference/optim.h"
#include "repro/run_common.h"
#include "repro/runner.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace hacm::repro {

namespace {

using ref::Tensor;
using Clock = std::chrono::steady_clock;
using Named = std::vector<std::pair<std::string, Tensor<float>*>>;

// The stage's lr at fractional epoch e (ref::lr_at = accel::cosine_lr).
double lr_at(double e, const StageSpec& s) {
  return ref::lr_at(e, s.lr, s.min_lr, s.warmup_epochs, double(s.epochs));
}

// The downstream encoder of the method (HA-CM: kept joints + hyperbolic embedding; MAMP: all).
ref::EncoderConfig encoder_config(const MethodSpec& m) {
  ref::EncoderConfig ec;
  ec.heads = int(m.heads);
  ec.hyperbolic = m.name == "hacm";
  if (m.name != "hacm") ec.kept.clear();
  return ec;
}

// Clips idx -> x5 [B, 3, W, 25, 2] (float, the feeder's output layout); labels [B] if non-null.
Tensor<float> make_batch(const ReferenceContext& c, const Feeder& f,
                         const std::vector<int64_t>& idx, uint64_t seed,
                         std::vector<int64_t>* labels) {
  const int64_t B = int64_t(idx.size());
  Tensor<float> x({B, 3, f.window(), kFeederV, kFeederM});
  std::vector<int64_t> lab(static_cast<size_t>(B));
  f.get_batch(idx.data(), B, seed, x.ptr(), lab.data(), c.threads);
  if (labels) *labels = std::move(lab);
  return x;
}

// accel::rng_uniform (accelerated/tensor_io.h): [rows, cols] float(U[0,1)) from Rng(seed),
// row-major.
Tensor<float> uniforms(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor<float> t({rows, cols});
  Rng rng(seed);
  for (auto& v : t.data) v = float(rng.uniform());
  return t;
}

// Optimisers whose state goes into the checkpoints, in the accelerated backend's format
// (optim.<kind>.<name>, optim.step).
struct CheckpointedOptimizer {
  virtual ~CheckpointedOptimizer() = default;
  virtual void save(std::map<std::string, NdArray>& out, const std::string& prefix) const = 0;
  virtual void load(const std::map<std::string, NdArray>& in, const std::string& prefix,
                    const std::string& file) = 0;
};

// One per-parameter state array of a checkpoint into `dst` (same size), or InputError.
void read_state(const std::map<std::string, NdArray>& in, const std::string& key,
                std::vector<float>& dst, const std::string& file) {
  auto it = in.find(key);
  if (it == in.end() || it->second.numel() != int64_t(dst.size()))
    throw InputError(file + ": checkpoint lacks " + key + " (or its size differs)");
  for (size_t i = 0; i < dst.size(); ++i) dst[i] = float(it->second.at_f64(int64_t(i)));
}

int64_t read_step(const std::map<std::string, NdArray>& in, const std::string& key,
                  const std::string& file) {
  auto it = in.find(key);
  if (it == in.end()) throw InputError(file + ": checkpoint lacks " + key);
  return it->second.at_i64(0);
}

// AdamW: optim.exp_avg.<name>, optim.exp_avg_sq.<name>, optim.step.
class CheckpointedAdamW : public CheckpointedOptimizer {
 public:
  CheckpointedAdamW(std::vector<ref::ParamRef<float>> refs, double b1, double b2, double eps = 1e-8)
      : refs_(std::move(refs)), adam_(b1, b2, eps) {
    adam_.init_state(refs_);
  }
  void step(double lr) { adam_.step(refs_, lr); }
  void save(std::map<std::string, NdArray>& out, const std::string& prefix) const override {
    for (size_t k = 0; k < refs_.size(); ++k) {
      const auto& shape = refs_[k].p->shape;
      out[prefix + "exp_avg." + refs_[k].name] =
          NdArray::from<float>(shape, adam_.exp_avg()[k].data());
      out[prefix + "exp_avg_sq." + refs_[k].name] =
          NdArray::from<float>(shape, adam_.exp_avg_sq()[k].data());
    }
    int64_t t = adam_.steps();
    out[prefix + "step"] = NdArray::from<int64_t>({}, &t);
  }
  void load(const std::map<std::string, NdArray>& in, const std::string& prefix,
            const std::string& file) override {
    for (size_t k = 0; k < refs_.size(); ++k) {
      read_state(in, prefix + "exp_avg." + refs_[k].name, adam_.exp_avg()[k], file);
      read_state(in, prefix + "exp_avg_sq." + refs_[k].name, adam_.exp_avg_sq()[k], file);
    }
    adam_.set_steps(read_step(in, prefix + "step", file));
  }

 private:
  std::vector<ref::ParamRef<float>> refs_;
  ref::AdamW<float> adam_;
};

// SGD with momentum: optim.momentum_buffer.<name>, optim.step.
class CheckpointedSgd : public CheckpointedOptimizer {
 public:
  CheckpointedSgd(std::vector<ref::ParamRef<float>> refs, double momentum)
      : refs_(std::move(refs)), sgd_(momentum) {
    sgd_.init_state(refs_);
  }
  void step(double lr) { sgd_.step(refs_, lr); }
  void save(std::map<std::string, NdArray>& out, const std::string& prefix) const override {
    for (size_t k = 0; k < refs_.size(); ++k)
      out[prefix + "momentum_buffer." + refs_[k].name] =
          NdArray::from<float>(refs_[k].p->shape, sgd_.momentum_buffer()[k].data());
    int64_t t = sgd_.steps();
    out[prefix + "step"] = NdArray::from<int64_t>({}, &t);
  }
  void load(const std::map<std::string, NdArray>& in, const std::string& prefix,
            const std::string& file) override {
    for (size_t k = 0; k < refs_.size(); ++k)
      read_state(in, prefix + "momentum_buffer." + refs_[k].name, sgd_.momentum_buffer()[k], file);
    sgd_.set_steps(read_step(in, prefix + "step", file));
  }

 private:
  std::vector<ref::ParamRef<float>> refs_;
  ref::SgdMomentum<float> sgd_;
};

// ---------------------------------------------------------------------------------------------
// pretraining models behind one interface: every parameter by state_dict name, the gradients in
// the same order, and one forward + backward step.

struct PretrainModel {
  virtual ~PretrainModel() = default;
  virtual Named params() = 0;
  virtual Named grads() = 0;
  // x5 [B, 3, W, 25, 2] -> loss; grads() overwritten with its gradient. Masking uniforms are
  // drawn from step_seed exactly as runner.cpp draws them.
  virtual double step(const Tensor<float>& x5, uint64_t step_seed) = 0;
};

// Moves each freshly computed gradient into the accumulator the optimiser points at (the Tensor
// objects stay in place, so the ParamRef pointers remain valid).
void assign_grads(Named dst, Named src) {
  for (size_t i = 0; i < dst.size(); ++i) *dst[i].second = std::move(*src[i].second);
}

struct HacmModel : PretrainModel {
  ref::HacmConfig cfg;
  ref::HacmWeights<float> w, g;
  int64_t group_tokens = 0;  // tokens per group (Lt = Ls), the width of each uniform draw
  HacmModel(const MethodSpec& m, const ref::Checkpoint<float>& init) {
    cfg.heads = int(m.heads);
    cfg.variant = m.variant;
    cfg.keep_ratio = m.keep_ratio;
    cfg.temperature = m.temperature;
    cfg.distance_factor = m.dist_factor;
    w = ref::HacmWeights<float>::load(init, cfg);
    g = w.zeros_like();
    group_tokens = m.frames / m.t_patch / 2 * kKeptJoints;
  }
  Named params() override { return w.named(); }
  Named grads() override { return g.named(); }
  double step(const Tensor<float>& x5, uint64_t seed) override {
    const int64_t NM = x5.dim(0) * x5.dim(4);
    Tensor<float> ut = uniforms(NM, group_tokens, mix(seed, 1));
    Tensor<float> us = uniforms(NM, group_tokens, mix(seed, 2));
    ref::HacmForward<float> f = ref::hacm_forward(x5, ut, us, w, cfg);
    ref::HacmGrads<float> gr = ref::hacm_backward(f, x5, w, cfg);
    assign_grads(g.named(), gr.w.named());
    return double(f.loss);
  }
};

struct MampModel : PretrainModel {
  ref::MampConfig cfg;
  ref::MampWeights<float> w, g;
  int64_t tokens = 0;
  MampModel(const MethodSpec& m, const ref::Checkpoint<float>& init) {
    cfg.heads = int(m.heads);
    cfg.mask_ratio = m.mask_ratio;
    cfg.tau = m.tau;
    w = ref::MampWeights<float>::load(init, cfg);
    g = w.zeros_like();
    tokens = (m.frames / m.t_patch) * kNtuJoints;
  }
  Named params() override { return w.named(); }
  Named grads() override { return g.named(); }
  double step(const Tensor<float>& x5, uint64_t seed) override {
    const int64_t NM = x5.dim(0) * x5.dim(4);
    Tensor<float> u = uniforms(NM, tokens, mix(seed, 1));
    ref::MampForward<float> f = ref::mamp_forward(x5, u, w, cfg);
    ref::MampGrads<float> gr = ref::mamp_backward(f, x5, w, cfg);
    assign_grads(g.named(), gr.w.named());
    return double(f.loss);
  }
};

// ---------------------------------------------------------------------------------------------
// checkpoints (runner.cpp's format: params, optim.*, meta.*; one npz written atomically)

void save_ckpt(const std::string& path, const Named& params, const CheckpointedOptimizer& opt,
               const CkptMeta& meta) {
  std::map<std::string, NdArray> out;
  for (const auto& [k, t] : params) out[k] = ref::to_ndarray(*t);  // float32 on disk: exact
  opt.save(out, "optim.");
  write_meta(out, meta);
  npz_save(path, out);
}

bool load_ckpt(const std::string& path, const Named& params, CheckpointedOptimizer& opt,
               CkptMeta& meta) {
  if (!fs::exists(path)) return false;
  std::map<std::string, NdArray> in = npz_load(path);
  for (const auto& [k, t] : params) {
    auto it = in.find(k);
    if (it == in.end()) throw InputError(path + ": checkpoint lacks parameter " + k);
    if (it->second.shape != t->shape)
      throw InputError(path + ": parameter " + k + " has shape " +
                       ref::shape_str(it->second.shape) + ", the protocol's model wants " +
                       ref::shape_str(t->shape));
    *t = ref::from_ndarray<float>(it->second);
  }
  opt.load(in, "optim.", path);
  read_meta(in, path, meta);
  return true;
}

// ---------------------------------------------------------------------------------------------
// pretraining

json run_pretrain(const ReferenceContext& c, const StageSpec& s, const std::string& tag,
                  ReferenceParams& out) {
  const MethodSpec& m = c.p->method;
  Feeder train(c.dataset_file(c.p->dataset), "train", feeder_config(m, s.vel), true);
  ref::Checkpoint<float> init =
      ref::checkpoint_from_arrays<float>(init_pretrain_params(model_shape(m), c.seed), "init");
  std::unique_ptr<PretrainModel> model;
  if (m.name == "hacm")
    model = std::make_unique<HacmModel>(m, init);
  else
    model = std::make_unique<MampModel>(m, init);
  const Named params = model->params(), grads = model->grads();
  // l1/l2 only feed an argsort in the released code: no gradient, not in the optimiser (as the
  // accelerated runner, where they do not require grad).
  Named trainable, trainable_g;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& k = params[i].first;
    if (k.rfind("l1.", 0) == 0 || k.rfind("l2.", 0) == 0) continue;
    trainable.push_back(params[i]);
    trainable_g.push_back(grads[i]);
  }
  CheckpointedAdamW opt(ref::make_param_refs<float>(trainable, trainable_g, s.weight_decay),
                        s.beta1, s.beta2);
  const int64_t B = std::min<int64_t>(s.batch_size, train.size());
  const int64_t steps = train.size() / B;  // drop_last, as the authors
  if (steps == 0)
    throw InputError(c.p->path + ": pretrain batch_size larger than the training set");
  const std::string ckpt = c.seed_dir + "/" + tag + ".ckpt.npz";
  CkptMeta meta;
  if (load_ckpt(ckpt, params, opt, meta))
    std::fprintf(stderr, "[%s] resuming from %s (%lld epochs + %lld steps done)\n", tag.c_str(),
                 ckpt.c_str(), (long long)meta.epoch, (long long)meta.step);
  if (!meta.curves.contains("loss")) meta.curves["loss"] = json::array();

  auto t0 = Clock::now();
  auto step = [&](int64_t e, int64_t it, const std::vector<int64_t>& order, Progress& bar) {
    std::vector<int64_t> idx(order.begin() + it * B, order.begin() + (it + 1) * B);
    const uint64_t step_seed = mix(mix(c.seed, 2000 + e), uint64_t(it));
    Tensor<float> x5 = make_batch(c, train, idx, step_seed, nullptr);
    const double lr = lr_at(double(e) + double(it) / double(steps), s);
    const double l = model->step(x5, step_seed);
    check_finite(l, tag, e, it, ckpt);  // before the update: a NaN step never reaches the weights
    opt.step(lr);
    bar.set_note("loss " + fmt("%.4f", l) + " lr " + fmt("%.2e", lr));
    return l;
  };
  auto flush = [](int64_t, Progress&) { return 0.0; };  // losses are summed as they come
  const int64_t steps_here =
      pretrain_epochs(tag, s, train.size(), B, c.seed, c.progress, c.stop, " (reference)", ckpt,
                      meta, step, flush, [&] { save_ckpt(ckpt, params, opt, meta); });
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  out = ReferenceParams();
  out.source = ckpt;
  for (const auto& [k, t] : params) out.tensors[k] = *t;
  return pretrain_record(s, B, steps, meta, secs, steps_here, ckpt);
}

// ---------------------------------------------------------------------------------------------
// linear probe: frozen encoder, BatchNorm1d(affine=False) + fc, SGD with momentum

json run_linear(const ReferenceContext& c, const StageSpec& s, const std::string& tag,
                const ReferenceParams* pretrained) {
  const MethodSpec& m = c.p->method;
  const std::string file = c.dataset_file(c.p->dataset);
  Feeder train(file, "train", feeder_config(m, s.vel), true);
  Feeder test(file, "test", feeder_config(m, s.vel), false);
  ref::EncoderConfig ec = encoder_config(m);
  const ref::EncoderWeights<float> enc = ref::EncoderWeights<float>::load(
      pretrained ? *pretrained
                 : ref::checkpoint_from_arrays<float>(
                       init_pretrain_params(model_shape(m), mix(c.seed, 77)), "random init"),
      ec);
  const int64_t C = train.num_classes(), d = m.dim;
  // Head: BatchNorm1d(d, affine=False, eps 1e-6) + fc with trunc-normal(0.01) weight, zero bias
  // (the same draws as runner.cpp).
  ref::LinprobeHead<float> head;
  head.bn = true;
  head.norm.running_mean = Tensor<float>({d}, 0.f);
  head.norm.running_var = Tensor<float>({d}, 1.f);
  head.fc.w = Tensor<float>({C, d});
  head.fc.b = Tensor<float>({C}, 0.f);
  {
    Rng rng(mix(c.seed, 88));
    for (auto& v : head.fc.w.data) v = float(std::fmax(-2, std::fmin(2, rng.normal(0, 0.01))));
  }
  ref::LinearParams<float> gfc{Tensor<float>({C, d}), Tensor<float>({C})};
  Named hp = {{"fc.weight", &head.fc.w}, {"fc.bias", &head.fc.b}},
        hg = {{"fc.weight", &gfc.w}, {"fc.bias", &gfc.b}};
  std::vector<ref::ParamRef<float>> refs = ref::make_param_refs<float>(hp, hg, 0.0);
  for (auto& r : refs) r.weight_decay = s.weight_decay;  // one group, as runner.cpp
  CheckpointedSgd opt(refs, s.momentum);
  // The checkpoint holds the head with its BN running statistics (the runner's names).
  Named all = hp;
  all.emplace_back("bn.running_mean", &head.norm.running_mean);
  all.emplace_back("bn.running_var", &head.norm.running_var);
  const int64_t B = std::min<int64_t>(s.batch_size, train.size());
  const int64_t steps = train.size() / B;
  auto features = [&](const Feeder& f, const std::vector<int64_t>& idx, uint64_t seed,
                      std::vector<int64_t>* labels) {
    return ref::linprobe_features(
        ref::encoder_forward(make_batch(c, f, idx, seed, labels), enc, ec));
  };
  // Test features are deterministic (centre crop): computed once.
  std::vector<Tensor<float>> test_feat;
  std::vector<std::vector<int64_t>> test_lab;
  {
    Progress bar(tag + " test features", (test.size() + B - 1) / B, c.progress);
    for (int64_t i = 0; i < test.size(); i += B) {
      std::vector<int64_t> idx, lab;
      for (int64_t j = i; j < std::min(test.size(), i + B); ++j) idx.push_back(j);
      test_feat.push_back(features(test, idx, 0, &lab));
      test_lab.push_back(lab);
      bar.tick();
    }
  }
  auto evaluate = [&]() {
    EvalCounts counts(test.num_classes());
    for (size_t i = 0; i < test_feat.size(); ++i) {
      Tensor<float> logits = ref::linprobe_head_forward(test_feat[i], head, false);
      counts.add(logits.ptr(), logits.dim(0), logits.dim(1), test_lab[i].data());
    }
    return counts.result();
  };
  json curves = {{"loss", json::array()}, {"top1", json::array()}, {"top5", json::array()}};
  std::vector<EvalResult> evals;
  const std::string ckpt = c.seed_dir + "/" + tag + ".ckpt.npz";
  CkptMeta meta;
  meta.curves = curves;
  if (load_ckpt(ckpt, all, opt, meta)) resumed_downstream(tag, ckpt, meta, evals);
  auto t0 = Clock::now();
  train_epochs(
      tag, s.epochs, s.checkpoint_every, train.size(), steps, c.seed, 3000, c.progress, c.stop,
      ckpt, meta,
      [&](int64_t e, int64_t it, const std::vector<int64_t>& order, Progress& bar) {
        std::vector<int64_t> idx(order.begin() + it * B, order.begin() + (it + 1) * B), lab;
        Tensor<float> feat = features(train, idx, mix(mix(c.seed, 4000 + e), uint64_t(it)), &lab);
        const double lr = lr_at(double(e) + double(it) / double(steps), s);
        // BN in train mode: batch statistics, running stats updated with momentum 0.1.
        ref::HeadCache<float> hc;
        Tensor<float> logits = ref::linprobe_head_forward(feat, head, true, 0.1, &hc);
        Tensor<float> g_logits;
        const double l = double(ref::cross_entropy(logits, lab, 0.0, &g_logits));
        // before the update: a NaN step never reaches the weights
        check_finite(l, tag, e, it, fs::exists(ckpt) ? ckpt : "(no checkpoint yet in this stage)");
        std::fill(gfc.w.data.begin(), gfc.w.data.end(), 0.f);
        std::fill(gfc.b.data.begin(), gfc.b.data.end(), 0.f);
        ref::linear_backward(hc.bn_out, head.fc, g_logits, gfc);  // the encoder is frozen
        opt.step(lr);
        bar.set_note("loss " + fmt("%.4f", l));
        return l;
      },
      [](int64_t, Progress&) { return 0.0; },  // losses are summed as they come
      [&](int64_t e, double mean_loss, int64_t) {
        end_downstream_epoch(s, tag, e, mean_loss, evaluate, meta.curves, evals, " (reference)");
      },
      [&] { save_ckpt(ckpt, all, opt, meta); });
  curves = meta.curves;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return finish_eval(curves, evals, "linear", secs,
                     {{"encoder", pretrained ? "pretrained" : "random init"},
                      {"batch_size", B},
                      {"epochs", s.epochs}});
}

// ---------------------------------------------------------------------------------------------
// fine-tuning (finetune / semi / transfer): encoder + head end to end, AdamW with layer-wise lr
// decay, label smoothing, drop-path and head dropout; checkpointed and resumable like pretraining

// Top-1 / top-5 on the test set: eval forward (no drop-path, no dropout, BN running statistics).
EvalResult evaluate_finetune(const ReferenceContext& c, const Feeder& test, int64_t B,
                             const ref::EncoderWeights<float>& enc, const ref::EncoderConfig& ec,
                             ref::FinetuneHead<float>& head) {
  EvalCounts counts(test.num_classes());
  for (int64_t i = 0; i < test.size(); i += B) {
    std::vector<int64_t> idx, lab;
    for (int64_t j = i; j < std::min(test.size(), i + B); ++j) idx.push_back(j);
    Tensor<float> tok = ref::encoder_forward(make_batch(c, test, idx, 0, &lab), enc, ec);
    Tensor<float> logits = ref::finetune_head_forward(ref::finetune_features(tok), head, false);
    counts.add(logits.ptr(), logits.dim(0), logits.dim(1), lab.data());
  }
  return counts.result();
}

json run_finetune(const ReferenceContext& c, const StageSpec& s, const std::string& tag,
                  const ReferenceParams* pretrained) {
  const MethodSpec& m = c.p->method;
  const DatasetSpec& ds = s.has_dataset ? s.dataset : c.p->dataset;
  const std::string file = c.dataset_file(ds);
  Feeder train(file, "train", feeder_config(m, s.vel), true);
  Feeder test(file, "test", feeder_config(m, s.vel), false);
  // Semi-supervised subset: drawn once from the protocol seed, class-agnostic, recorded.
  std::vector<int64_t> pool(static_cast<size_t>(train.size()));
  for (int64_t i = 0; i < train.size(); ++i) pool[size_t(i)] = i;
  json extra = json::object();
  if (s.kind == "semi") {
    std::vector<int64_t> perm = permutation(train.size(), mix(c.seed, 5000));
    const int64_t n = std::max<int64_t>(1, int64_t(double(train.size()) * s.fraction));
    pool.assign(perm.begin(), perm.begin() + n);
    extra["subset_size"] = n;
    extra["subset_ids"] = pool;
  }
  ref::EncoderConfig ec = encoder_config(m);  // depth filled in by load
  ref::EncoderWeights<float> enc = ref::EncoderWeights<float>::load(
      pretrained ? *pretrained
                 : ref::checkpoint_from_arrays<float>(
                       init_pretrain_params(model_shape(m), mix(c.seed, 99)), "random init"),
      ec);
  const int64_t depth = ec.depth;
  const int64_t C = train.num_classes(), V = ec.kept.empty() ? kNtuJoints : int64_t(ec.kept.size());
  const int64_t in = V * m.dim, hidden = 2048;
  // Head: xavier-uniform fc1 / fc2 from Rng(mix(seed, 111)) (fc1 first), zero biases, BN(1, 0)
  // with running statistics (0, 1): runner.cpp's draws.
  ref::FinetuneHead<float> head;
  {
    Rng rng(mix(c.seed, 111));
    auto xavier = [&](int64_t o, int64_t i) {
      Tensor<float> w({o, i});
      const double b = std::sqrt(6.0 / double(o + i));
      for (auto& v : w.data) v = float(rng.uniform(-b, b));
      return w;
    };
    head.fc1 = {xavier(hidden, in), Tensor<float>({hidden}, 0.f)};
    head.bn = {Tensor<float>({hidden}, 1.f), Tensor<float>({hidden}, 0.f),
               Tensor<float>({hidden}, 0.f), Tensor<float>({hidden}, 1.f)};
    head.fc2 = {xavier(C, hidden), Tensor<float>({C}, 0.f)};
  }
  ref::EncoderWeights<float> genc = enc.zeros_like();
  ref::FinetuneHead<float> ghead;
  ghead.fc1 = {Tensor<float>(head.fc1.w.shape), Tensor<float>(head.fc1.b.shape)};
  ghead.bn.w = Tensor<float>(head.bn.w.shape);
  ghead.bn.b = Tensor<float>(head.bn.b.shape);
  ghead.fc2 = {Tensor<float>(head.fc2.w.shape), Tensor<float>(head.fc2.b.shape)};
  // Trainable parameters (state_dict names, the runner's "head." prefix) and their gradients;
  // `all` adds the BN running statistics, which the checkpoint keeps too.
  Named trainable = enc.named(), grads = genc.named();
  for (auto [n, p, g] : {std::tuple{"head.fc1.weight", &head.fc1.w, &ghead.fc1.w},
                         std::tuple{"head.fc1.bias", &head.fc1.b, &ghead.fc1.b},
                         std::tuple{"head.bn.weight", &head.bn.w, &ghead.bn.w},
                         std::tuple{"head.bn.bias", &head.bn.b, &ghead.bn.b},
                         std::tuple{"head.fc2.weight", &head.fc2.w, &ghead.fc2.w},
                         std::tuple{"head.fc2.bias", &head.fc2.b, &ghead.fc2.b}}) {
    trainable.emplace_back(n, p);
    grads.emplace_back(n, g);
  }
  Named all = trainable;
  all.emplace_back("head.bn.running_mean", &head.bn.running_mean);
  all.emplace_back("head.bn.running_var", &head.bn.running_var);
  CheckpointedAdamW opt(
      ref::make_param_refs<float>(trainable, grads, s.weight_decay, s.layer_decay, depth), s.beta1,
      s.beta2);

  const int64_t N = int64_t(pool.size()), B = std::min<int64_t>(s.batch_size, N);
  const int64_t steps = std::max<int64_t>(1, N / B);
  const std::string ckpt = c.seed_dir + "/" + tag + ".ckpt.npz";
  json curves = {{"loss", json::array()}, {"top1", json::array()}, {"top5", json::array()}};
  std::vector<EvalResult> evals;
  CkptMeta meta;
  meta.curves = curves;
  if (load_ckpt(ckpt, all, opt, meta)) resumed_downstream(tag, ckpt, meta, evals);

  // One training step on batch `it` of epoch e; returns the loss.
  auto step = [&](int64_t e, int64_t it, const std::vector<int64_t>& order) {
    std::vector<int64_t> idx, lab;
    for (int64_t j = it * B; j < std::min(N, (it + 1) * B); ++j)
      idx.push_back(pool[size_t(order[size_t(j)])]);
    const uint64_t step_seed = mix(mix(c.seed, 7000 + e), uint64_t(it));
    Tensor<float> x5 = make_batch(c, train, idx, step_seed, &lab);
    const double lr = lr_at(double(e) + double(it) / double(steps), s);
    // Drop-path scales (every block, attn then mlp) then the dropout mask, from one Rng per step
    // (the runner reseeds torch's generator from the same mix(step_seed, 3); the draws differ).
    Rng mask_rng(mix(step_seed, 3));
    const auto drop =
        ref::drop_path_scales<float>(depth, x5.dim(0) * x5.dim(4), s.drop_path, mask_rng);
    ref::EncoderCache<float> ecache;
    Tensor<float> tok = ref::encoder_forward(x5, enc, ec, &ecache, &drop);
    Tensor<float> mask;
    if (s.dropout > 0) {
      mask = ref::dropout_mask<float>(tok.shape, s.dropout, mask_rng);
      tok = ref::dropout_forward(tok, mask);
    }
    // BN in train mode: batch statistics, running statistics updated with momentum 0.1.
    ref::HeadCache<float> hc;
    Tensor<float> logits =
        ref::finetune_head_forward(ref::finetune_features(tok), head, true, 0.1, &hc);
    Tensor<float> g_logits;
    const double l = double(ref::cross_entropy(logits, lab, s.label_smoothing, &g_logits));
    if (!std::isfinite(l)) return l;
    for (auto& [n, g] : grads) std::fill(g->data.begin(), g->data.end(), 0.f);
    Tensor<float> gtok = ref::finetune_features_backward(
        ref::finetune_head_backward(head, hc, true, g_logits, ghead), tok.shape);
    if (s.dropout > 0) gtok = ref::dropout_backward(mask, gtok);
    ref::encoder_backward(enc, ec, ecache, gtok, genc);
    opt.step(lr);
    return l;
  };

  auto t0 = Clock::now();
  const int64_t steps_here = train_epochs(
      tag, s.epochs, s.checkpoint_every, N, steps, c.seed, 6000, c.progress, c.stop, ckpt, meta,
      [&](int64_t e, int64_t it, const std::vector<int64_t>& order, Progress& bar) {
        const double l = step(e, it, order);
        // before the update reaches a checkpoint (step() skips the update of a non-finite loss)
        check_finite(l, tag, e, it, fs::exists(ckpt) ? ckpt : "(no checkpoint yet in this stage)");
        bar.set_note("loss " + fmt("%.4f", l));
        return l;
      },
      [](int64_t, Progress&) { return 0.0; },  // losses are summed as they come
      [&](int64_t e, double mean_loss, int64_t) {
        end_downstream_epoch(
            s, tag, e, mean_loss, [&] { return evaluate_finetune(c, test, B, enc, ec, head); },
            meta.curves, evals, " (reference)");
      },
      [&] { save_ckpt(ckpt, all, opt, meta); });
  curves = meta.curves;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  extra["from"] = s.from;
  extra["batch_size"] = B;
  extra["epochs"] = s.epochs;
  extra["steps_per_epoch"] = steps;
  extra["checkpoint"] = ckpt;
  if (steps_here > 0) extra["step_ms"] = 1e3 * secs / double(steps_here);
  if (s.has_dataset) extra["dataset"] = file;
  return finish_eval(curves, evals, s.kind.c_str(), secs, extra);
}

}  // namespace

void check_reference_protocol(const Protocol& p) {
  // Every stage kind trains on the reference (pretrain, linear, finetune, semi, transfer); what
  // remains refused is the device.
  if (p.device == "cuda")
    throw InputError(p.path +
                     ": device: \"cuda\" cannot be used with backend \"reference\" (Eigen, "
                     "single-threaded CPU)");
}

json run_reference_stage(const ReferenceContext& c, const StageSpec& s, const std::string& tag,
                         ReferenceParams& pretrained, bool& have_pretrained) {
  if (s.kind == "pretrain") {
    json r = run_pretrain(c, s, tag, pretrained);
    have_pretrained = true;
    return r;
  }
  if (s.kind == "linear") {
    const bool scratch = s.from == "scratch";
    json r = run_linear(c, s, tag, have_pretrained && !scratch ? &pretrained : nullptr);
    if (c.p->random_baseline) r["linear_random"] = run_linear(c, s, tag + "_random", nullptr);
    return r;
  }
  if (s.kind == "finetune" || s.kind == "semi" || s.kind == "transfer")
    return run_finetune(c, s, tag, have_pretrained && s.from == "pretrain" ? &pretrained : nullptr);
  throw InputError(c.p->path + ": stage kind \"" + s.kind +
                   "\" is not available with the reference");
}

}  // namespace hacm::repro
