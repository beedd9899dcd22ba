// Optimisers and schedules (see optim.h).
#include "reference/optim.h"

#include <cmath>
#include <stdexcept>

namespace hacm::ref {

bool no_weight_decay(const std::string& name, const std::vector<int64_t>& shape) {
  const std::string suffix = ".bias";
  const bool bias = name.size() >= suffix.size() &&
                    name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return shape.size() == 1 || bias;
}

int layer_id(const std::string& name, int64_t depth) {
  for (const char* stem : {"joints_embed", "pos_embed", "temp_embed"})
    if (name.rfind(stem, 0) == 0) return 0;
  if (name.rfind("blocks.", 0) == 0) return std::stoi(name.substr(7)) + 1;
  return int(depth) + 1;
}

double layer_lr_scale(const std::string& name, int64_t depth, double decay) {
  return std::pow(decay, double(depth + 1 - layer_id(name, depth)));
}

template <class T>
std::vector<ParamRef<T>> make_param_refs(
    const std::vector<std::pair<std::string, Tensor<T>*>>& params,
    const std::vector<std::pair<std::string, Tensor<T>*>>& grads, double weight_decay,
    double layer_decay, int64_t depth) {
  if (params.size() != grads.size()) throw std::invalid_argument("make_param_refs: size mismatch");
  std::vector<ParamRef<T>> r;
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].first != grads[i].first || !params[i].second->same_shape(*grads[i].second))
      throw std::invalid_argument("make_param_refs: " + params[i].first + " vs " + grads[i].first);
    ParamRef<T> p;
    p.name = params[i].first;
    p.p = params[i].second;
    p.g = grads[i].second;
    p.weight_decay = no_weight_decay(p.name, p.p->shape) ? 0.0 : weight_decay;
    p.lr_scale = layer_decay > 0 ? layer_lr_scale(p.name, depth, layer_decay) : 1.0;
    r.push_back(p);
  }
  return r;
}

double lr_at(double e, double lr, double min_lr, double warmup, double epochs) {
  if (e < warmup) return lr * e / warmup;
  if (epochs <= warmup) return lr;  // no cosine phase (avoids 0/0), as accel::cosine_lr
  const double pi = std::acos(-1.0);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(pi * (e - warmup) / (epochs - warmup)));
}

template <class T>
void AdamW<T>::step(std::vector<ParamRef<T>>& ps, double lr) {
  if (m_.empty()) {
    for (const auto& p : ps) {
      m_.emplace_back(p.p->data.size(), T(0));
      v_.emplace_back(p.p->data.size(), T(0));
    }
  }
  ++t_;
  const double bc1 = 1.0 - std::pow(b1_, double(t_)), bc2 = 1.0 - std::pow(b2_, double(t_));
  for (size_t k = 0; k < ps.size(); ++k) {
    ParamRef<T>& p = ps[k];
    const double plr = lr * p.lr_scale;
    const T decay = T(1.0 - plr * p.weight_decay), step = T(plr / bc1), sq2 = T(std::sqrt(bc2));
    std::vector<T>&m = m_[k], &v = v_[k];
    for (size_t i = 0; i < m.size(); ++i) {
      const T g = p.g->data[i];
      T& x = p.p->data[i];
      x *= decay;
      m[i] = T(b1_) * m[i] + T(1 - b1_) * g;
      v[i] = T(b2_) * v[i] + T(1 - b2_) * g * g;
      x -= step * m[i] / (std::sqrt(v[i]) / sq2 + T(eps_));
    }
  }
}

template <class T>
void SgdMomentum<T>::step(std::vector<ParamRef<T>>& ps, double lr) {
  const bool first = t_ == 0;
  if (buf_.empty()) init_state(ps);
  for (size_t k = 0; k < ps.size(); ++k) {
    ParamRef<T>& p = ps[k];
    std::vector<T>& b = buf_[k];
    for (size_t i = 0; i < b.size(); ++i) {
      const T g = p.g->data[i] + T(p.weight_decay) * p.p->data[i];
      b[i] = first ? g : T(mu_) * b[i] + g;
      p.p->data[i] -= T(lr * p.lr_scale) * b[i];
    }
  }
  ++t_;
}

#define HACM_INSTANTIATE(T)                                                             \
  template std::vector<ParamRef<T>> make_param_refs(                                    \
      const std::vector<std::pair<std::string, Tensor<T>*>>&,                           \
      const std::vector<std::pair<std::string, Tensor<T>*>>&, double, double, int64_t); \
  template class AdamW<T>;                                                              \
  template class SgdMomentum<T>;
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
