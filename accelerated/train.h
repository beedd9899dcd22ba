// Training pieces for the accelerated backend: learning-rate schedule, AdamW with the authors'
// parameter groups (and layer-wise lr decay), SGD with momentum, label-smoothing cross-entropy.
// Optimiser state is plain tensors so checkpoints use the shared npz format (no torch::save).
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "accelerated/tensor_io.h"
#include "core/ndarray.h"

namespace hacm::accel {

// Per-iteration half-cycle cosine with linear warmup (util/lr_sched.py): e = fractional epoch.
double cosine_lr(double e, double lr, double min_lr, double warmup_epochs, double epochs);

struct ParamGroup {
  std::vector<std::string> names;
  double weight_decay = 0;
  double lr_scale = 1;
};

// No weight decay for 1-D parameters and biases (timm add_weight_decay); parameters that do not
// require grad (l1/l2) are left out.
std::vector<ParamGroup> weight_decay_groups(const StateDict& params, double weight_decay);
// Fine-tuning groups with layer-wise lr decay (util/lr_decay.py): layer 0 = joints_embed,
// pos_embed, temp_embed; blocks.i = i+1; everything else = depth+1; scale = decay^(depth+1-id).
std::vector<ParamGroup> layer_decay_groups(const StateDict& params, double weight_decay,
                                           double decay, int64_t depth);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step(double lr) = 0;
  void zero_grad();
  // State as arrays ("<prefix><kind>.<param>") for checkpoints, and back.
  virtual void save(std::map<std::string, NdArray>& out, const std::string& prefix) const = 0;
  virtual void load(const std::map<std::string, NdArray>& in, const std::string& prefix) = 0;
  int64_t steps() const { return steps_; }

 protected:
  Optimizer(StateDict& params, std::vector<ParamGroup> groups)
      : params_(params), groups_(std::move(groups)) {}
  StateDict& params_;
  std::vector<ParamGroup> groups_;
  int64_t steps_ = 0;
};

// torch.optim.AdamW semantics: p *= 1 - lr*wd; m, v moments; bias-corrected update, eps 1e-8.
class AdamW : public Optimizer {
 public:
  AdamW(StateDict& params, std::vector<ParamGroup> groups, double beta1, double beta2,
        double eps = 1e-8);
  void step(double lr) override;
  void save(std::map<std::string, NdArray>& out, const std::string& prefix) const override;
  void load(const std::map<std::string, NdArray>& in, const std::string& prefix) override;

 private:
  bool fused_step(double lr);
  double b1_, b2_, eps_;
  StateDict m_, v_;
  at::Tensor step_t_;  // the step count on the parameters' GPU, for the fused kernel
};

// torch.optim.SGD with momentum (dampening 0, no Nesterov): buf = mu*buf + g; p -= lr*buf.
class Sgd : public Optimizer {
 public:
  Sgd(StateDict& params, std::vector<ParamGroup> groups, double momentum);
  void step(double lr) override;
  void save(std::map<std::string, NdArray>& out, const std::string& prefix) const override;
  void load(const std::map<std::string, NdArray>& in, const std::string& prefix) override;

 private:
  double mu_;
  StateDict buf_;
};

// logits [B, C], labels [B] int64 -> mean cross-entropy with label smoothing eps (timm's
// LabelSmoothingCrossEntropy: (1-eps)*nll + eps*mean(-log p)).
at::Tensor cross_entropy_forward(const at::Tensor& logits, const at::Tensor& labels,
                                 double smoothing);

}  // namespace hacm::accel
