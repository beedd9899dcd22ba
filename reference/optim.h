// Optimisers and learning-rate schedules of the authors' training scripts (hacm-spec §5.2-§5.4),
// over named parameter lists (PyTorch state_dict names), in PyTorch's update order.
//  * AdamW (torch.optim.AdamW): p ← p·(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
//    p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps).
//  * parameter groups (timm add_weight_decay / param_groups_lrd): no weight decay for 1-D tensors
//    and names ending in ".bias"; per-parameter lr scale for layer-wise decay.
//  * SGD with momentum (torch.optim.SGD, dampening 0): g ← g + wd·p; b ← μ b + g (b = g at the
//    first step); p ← p − lr·b.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "reference/tensor.h"

namespace hacm::ref {

template <class T>
struct ParamRef {
  std::string name;
  Tensor<T>* p = nullptr;        // parameter, updated in place
  const Tensor<T>* g = nullptr;  // its gradient (same shape)
  double lr_scale = 1.0;         // layer-wise decay factor
  double weight_decay = 0.0;     // set from the group rule by make_param_refs
};

// timm's rule: 1-D tensors and biases are not decayed.
bool no_weight_decay(const std::string& name, const std::vector<int64_t>& shape);

// Layer id for layer-wise lr decay (util/lr_decay.py, hacm-spec §5.4): joints_embed / pos_embed /
// temp_embed -> 0, blocks.k -> k + 1, everything else (norm, head) -> depth + 1.
int layer_id(const std::string& name, int64_t depth);
// decay^(depth + 1 − layer_id) (1 for the head and final norm).
double layer_lr_scale(const std::string& name, int64_t depth, double decay);

// Pairs parameters and gradients by position; wd = weight_decay unless no_weight_decay();
// lr_scale = layer_lr_scale when layer_decay > 0 (depth = encoder depth), else 1.
template <class T>
std::vector<ParamRef<T>> make_param_refs(
    const std::vector<std::pair<std::string, Tensor<T>*>>& params,
    const std::vector<std::pair<std::string, Tensor<T>*>>& grads, double weight_decay,
    double layer_decay = 0, int64_t depth = 0);

// Warmup + half-cycle cosine, per iteration (util/lr_sched.py): e = epoch + iter/iters_per_epoch.
double lr_at(double e, double lr, double min_lr, double warmup_epochs, double epochs);

template <class T>
class AdamW {
 public:
  explicit AdamW(double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
      : b1_(beta1), b2_(beta2), eps_(eps) {}
  // One step at base learning rate lr (each parameter uses lr·lr_scale).
  void step(std::vector<ParamRef<T>>& params, double lr);
  int64_t steps() const { return t_; }

  // State for checkpoints: first / second moments per parameter, in the order of the ParamRef
  // list passed to step(). init_state() allocates zero moments so a checkpoint can be loaded
  // before the first step.
  void init_state(const std::vector<ParamRef<T>>& params) {
    m_.clear(), v_.clear();
    for (const auto& p : params)
      m_.emplace_back(p.p->data.size(), T(0)), v_.emplace_back(p.p->data.size(), T(0));
  }
  std::vector<std::vector<T>>& exp_avg() { return m_; }
  std::vector<std::vector<T>>& exp_avg_sq() { return v_; }
  const std::vector<std::vector<T>>& exp_avg() const { return m_; }
  const std::vector<std::vector<T>>& exp_avg_sq() const { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  double b1_, b2_, eps_;
  int64_t t_ = 0;
  std::vector<std::vector<T>> m_, v_;
};

template <class T>
class SgdMomentum {
 public:
  explicit SgdMomentum(double momentum = 0.9) : mu_(momentum) {}
  void step(std::vector<ParamRef<T>>& params, double lr);
  int64_t steps() const { return t_; }

  // State for checkpoints: the momentum buffer per parameter, in the order of the ParamRef list
  // passed to step(); the first step (steps() == 0) starts the buffer at the gradient, as torch.
  // init_state() allocates zero buffers so a checkpoint can be loaded before the first step.
  void init_state(const std::vector<ParamRef<T>>& params) {
    buf_.clear();
    for (const auto& p : params) buf_.emplace_back(p.p->data.size(), T(0));
  }
  std::vector<std::vector<T>>& momentum_buffer() { return buf_; }
  const std::vector<std::vector<T>>& momentum_buffer() const { return buf_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  double mu_;
  int64_t t_ = 0;
  std::vector<std::vector<T>> buf_;
};

}  // namespace hacm::ref
