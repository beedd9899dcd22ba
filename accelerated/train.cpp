#include "accelerated/train.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <stdexcept>

#include "accelerated/custom_kernels.h"

namespace hacm::accel {

double cosine_lr(double e, double lr, double min_lr, double warmup, double epochs) {
  if (e < warmup) return lr * e / warmup;
  if (epochs <= warmup) return lr;
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * (e - warmup) / (epochs - warmup)));
}

static bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

std::vector<ParamGroup> weight_decay_groups(const StateDict& params, double wd) {
  ParamGroup decay{{}, wd, 1.0}, no_decay{{}, 0.0, 1.0};
  for (const auto& [k, v] : params) {
    if (!v.requires_grad()) continue;
    (v.dim() == 1 || ends_with(k, ".bias") ? no_decay : decay).names.push_back(k);
  }
  return {decay, no_decay};
}

std::vector<ParamGroup> layer_decay_groups(const StateDict& params, double wd, double decay,
                                           int64_t depth) {
  std::map<std::pair<int64_t, bool>, ParamGroup> groups;
  for (const auto& [k, v] : params) {
    if (!v.requires_grad()) continue;
    int64_t id = depth + 1;
    if (k.rfind("joints_embed", 0) == 0 || k == "pos_embed" || k == "temp_embed")
      id = 0;
    else if (k.rfind("blocks.", 0) == 0)
      id = std::stoll(k.substr(7, k.find('.', 7) - 7)) + 1;
    bool no_wd = v.dim() == 1 || ends_with(k, ".bias");
    ParamGroup& g = groups[{id, no_wd}];
    g.weight_decay = no_wd ? 0.0 : wd;
    g.lr_scale = std::pow(decay, double(depth + 1 - id));
    g.names.push_back(k);
  }
  std::vector<ParamGroup> out;
  for (auto& [key, g] : groups) out.push_back(g);
  return out;
}

void Optimizer::zero_grad() {
  for (const auto& g : groups_)
    for (const auto& n : g.names) {
      at::Tensor& p = params_.at(n);
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
}

AdamW::AdamW(StateDict& params, std::vector<ParamGroup> groups, double b1, double b2, double eps)
    : Optimizer(params, std::move(groups)), b1_(b1), b2_(b2), eps_(eps) {
  for (const auto& g : groups_)
    for (const auto& n : g.names) {
      m_[n] = at::zeros_like(params_.at(n)).detach();
      v_[n] = at::zeros_like(params_.at(n)).detach();
    }
}

// torch's fused AdamW (one multi-tensor kernel per group: every element's update in registers,
// ~28 bytes of traffic per parameter) where all of a group's tensors are float32 CUDA tensors,
// contiguous, on one device; false (and nothing done) otherwise. The step count goes in as a
// device scalar read by the kernel (torch keeps one per parameter; they are all equal here).
bool AdamW::fused_step(double lr) {
  if (!custom_kernel(Kernel::kFusedAdamW)) return false;  // A/B switch: the plain composition
  std::vector<std::vector<at::Tensor>> ps(groups_.size()), gs(groups_.size()), ms(groups_.size()),
      vs(groups_.size());
  c10::optional<at::Device> dev;
  for (size_t i = 0; i < groups_.size(); ++i)
    for (const auto& n : groups_[i].names) {
      at::Tensor& p = params_.at(n);
      if (!p.grad().defined()) continue;
      const at::Tensor &g = p.grad(), &m = m_.at(n), &v = v_.at(n);
      if (!dev) dev = p.device();
      // The fused kernel's rules (same device, dtype and dense layout for p, g, m, v): the
      // composition below takes anything else.
      auto fits = [&](const at::Tensor& t) {
        return t.device() == *dev && t.scalar_type() == at::kFloat && t.is_contiguous();
      };
      if (!p.is_cuda() || !fits(p) || !fits(g) || !fits(m) || !fits(v)) return false;
      ps[i].push_back(p), gs[i].push_back(g), ms[i].push_back(m), vs[i].push_back(v);
    }
  if (!dev) return true;  // no gradients: nothing to do (as the foreach path)
  if (!step_t_.defined() || step_t_.device() != *dev)
    step_t_ = at::zeros({}, at::TensorOptions().device(*dev).dtype(at::kFloat));
  step_t_.fill_(double(steps_));
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (ps[i].empty()) continue;
    const std::vector<at::Tensor> steps(ps[i].size(), step_t_);
    at::_fused_adamw_(ps[i], gs[i], ms[i], vs[i], {}, steps, lr * groups_[i].lr_scale, b1_, b2_,
                      groups_[i].weight_decay, eps_, /*amsgrad=*/false, /*maximize=*/false);
  }
  return true;
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  if (fused_step(lr)) return;
  const double bc1 = 1.0 - std::pow(b1_, double(steps_)), bc2 = 1.0 - std::pow(b2_, double(steps_));
  // Multi-tensor (_foreach) kernels over every parameter of every group at once: the groups differ
  // only in their scalars (lr scale, weight decay), which go in as per-tensor scalar lists. A
  // handful of launches per step whatever the number of groups (layer-wise lr decay makes ~20);
  // the arithmetic per tensor is that of torch's single-tensor AdamW, and groups touch disjoint
  // tensors, so doing one group after the other or all at once gives the same values.
  std::vector<at::Tensor> ps, grads, ms, vs, decayed;
  std::vector<at::Scalar> step_scale, decay_scale;
  for (const auto& g : groups_) {
    const double glr = lr * g.lr_scale;
    for (const auto& n : g.names) {
      at::Tensor& p = params_.at(n);
      if (!p.grad().defined()) continue;
      ps.push_back(p), grads.push_back(p.grad()), ms.push_back(m_[n]), vs.push_back(v_[n]);
      step_scale.emplace_back(-glr / bc1);
      if (g.weight_decay != 0)
        decayed.push_back(p), decay_scale.emplace_back(1.0 - glr * g.weight_decay);
    }
  }
  if (ps.empty()) return;
  if (!decayed.empty()) at::_foreach_mul_(decayed, decay_scale);
  at::_foreach_mul_(ms, b1_);
  at::_foreach_add_(ms, grads, 1.0 - b1_);
  at::_foreach_mul_(vs, b2_);
  at::_foreach_addcmul_(vs, grads, grads, 1.0 - b2_);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(vs);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, eps_);
  at::_foreach_addcdiv_(ps, ms, denom, step_scale);
}

static void save_map(const StateDict& sd, std::map<std::string, NdArray>& out,
                     const std::string& prefix) {
  for (const auto& [k, v] : sd) out[prefix + k] = to_ndarray(v);
}
static void load_map(StateDict& sd, const std::map<std::string, NdArray>& in,
                     const std::string& prefix) {
  for (auto& [k, v] : sd) {
    auto it = in.find(prefix + k);
    if (it == in.end()) throw std::runtime_error("checkpoint lacks optimiser state " + prefix + k);
    at::NoGradGuard no_grad;
    v.copy_(to_tensor(it->second, v.scalar_type()));
  }
}

void AdamW::save(std::map<std::string, NdArray>& out, const std::string& prefix) const {
  save_map(m_, out, prefix + "exp_avg.");
  save_map(v_, out, prefix + "exp_avg_sq.");
  out[prefix + "step"] = NdArray::from<int64_t>({}, &steps_);
}
void AdamW::load(const std::map<std::string, NdArray>& in, const std::string& prefix) {
  load_map(m_, in, prefix + "exp_avg.");
  load_map(v_, in, prefix + "exp_avg_sq.");
  steps_ = in.at(prefix + "step").at_i64(0);
}

Sgd::Sgd(StateDict& params, std::vector<ParamGroup> groups, double momentum)
    : Optimizer(params, std::move(groups)), mu_(momentum) {
  for (const auto& g : groups_)
    for (const auto& n : g.names) buf_[n] = at::zeros_like(params_.at(n)).detach();
}

void Sgd::step(double lr) {
  at::NoGradGuard no_grad;
  for (const auto& g : groups_)
    for (const auto& n : g.names) {
      at::Tensor& p = params_.at(n);
      if (!p.grad().defined()) continue;
      at::Tensor grad = p.grad();
      if (g.weight_decay != 0) grad = grad + g.weight_decay * p;
      // torch initialises the buffer with the first gradient, which equals mu*0 + g.
      buf_[n].mul_(steps_ == 0 ? 0.0 : mu_).add_(grad);
      p.add_(buf_[n], -lr * g.lr_scale);
    }
  ++steps_;
}
void Sgd::save(std::map<std::string, NdArray>& out, const std::string& prefix) const {
  save_map(buf_, out, prefix + "momentum_buffer.");
  out[prefix + "step"] = NdArray::from<int64_t>({}, &steps_);
}
void Sgd::load(const std::map<std::string, NdArray>& in, const std::string& prefix) {
  load_map(buf_, in, prefix + "momentum_buffer.");
  steps_ = in.at(prefix + "step").at_i64(0);
}

at::Tensor cross_entropy_forward(const at::Tensor& logits, const at::Tensor& labels,
                                 double smoothing) {
  at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1);
  at::Tensor nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1);
  if (smoothing <= 0) return nll.mean();
  return ((1.0 - smoothing) * nll - smoothing * logp.mean(-1)).mean();
}

}  // namespace hacm::accel
