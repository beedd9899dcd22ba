#include "accelerated/transformer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "accelerated/fused_attention.h"
#include "accelerated/fused_layer_norm.h"
#include "accelerated/fused_linear.h"

namespace hacm::accel {

static const at::Tensor& param(const StateDict& sd, const std::string& name) {
  auto it = sd.find(name);
  if (it == sd.end()) throw std::runtime_error("missing parameter '" + name + "' in state dict");
  return it->second;
}

// The storage type of a LayerNorm's result: ATen's under CUDA autocast (float32), or the
// autocast type for a LayerNorm whose only consumer is a matmul; else x's.
static at::ScalarType layer_norm_dtype(const at::Tensor& x, bool matmul_input) {
  if (x.is_cuda() && at::autocast::is_autocast_enabled(at::kCUDA))
    return matmul_input ? at::autocast::get_autocast_dtype(at::kCUDA) : at::kFloat;
  return x.scalar_type();
}

static at::Tensor layer_norm_as(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                double eps, bool matmul_input) {
  const at::ScalarType out = layer_norm_dtype(x, matmul_input);
  if (fused_layer_norm_applies(x, w, b, out)) return fused_layer_norm(x, w, b, eps, out);
  return at::layer_norm(x, {x.size(-1)}, w, b, eps);
}

at::Tensor layer_norm_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                              double eps) {
  return layer_norm_as(x, w, b, eps, false);
}

at::Tensor layer_norm_matmul_input(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                   double eps) {
  return layer_norm_as(x, w, b, eps, true);
}

at::Tensor attention_forward(const at::Tensor& x, const StateDict& sd, const std::string& prefix,
                             int64_t heads, at::Tensor* probs_out) {
  const int64_t B = x.size(0), N = x.size(1), d = x.size(2), hd = d / heads;
  at::Tensor qkv =
      linear_forward(x, param(sd, prefix + "qkv.weight"), param(sd, prefix + "qkv.bias"));
  if (!probs_out) {  // head dimension 32 in bf16: the custom kernels, with or without gradient
    at::Tensor o;
    if (fused_attention_applies(qkv, heads))
      o = fused_attention(qkv, heads);
    else if (fused_attention_training_applies(qkv, heads))
      o = fused_attention_training(qkv, heads);
    if (o.defined())
      return linear_forward(o, param(sd, prefix + "proj.weight"), param(sd, prefix + "proj.bias"));
  }
  // q, k, v as views of qkv [B, N, 3d] ((3, h, hd) order of the last dim): split's backward is one
  // cat into [B, N, 3d], where indexing a permuted [3, B, h, N, hd] cost three zero-filled
  // full-size gradients and two additions (SelectBackward: 1.4 ms of an 18 ms bf16 step).
  const auto parts = qkv.split(d, -1);
  auto heads_view = [&](const at::Tensor& t) {  // [B, N, d] -> [B, h, N, hd]
    return t.view({B, N, heads, hd}).transpose(1, 2);
  };
  at::Tensor q = heads_view(parts[0]), k = heads_view(parts[1]), v = heads_view(parts[2]);
  at::Tensor out;
  if (probs_out) {
    at::Tensor probs =
        at::softmax(at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(hd))), -1);
    *probs_out = probs;
    out = at::matmul(probs, v);
  } else {
    // Fused kernel where available (flash / memory-efficient on CUDA, math on CPU).
    out = at::scaled_dot_product_attention(q, k, v);
  }
  out = out.transpose(1, 2).reshape({B, N, d});
  return linear_forward(out, param(sd, prefix + "proj.weight"), param(sd, prefix + "proj.bias"));
}

static at::Tensor drop_path_forward(const at::Tensor& branch, double p) {
  if (p <= 0) return branch;
  at::Tensor keep = at::empty({branch.size(0), 1, 1}, branch.options()).bernoulli_(1.0 - p);
  return branch * keep / (1.0 - p);
}

namespace {

// A residual stream whose last addition is still pending (value = base + branch; branch undefined:
// value = base), so that the LayerNorm which reads it next can do the addition in its own pass.
struct Residual {
  at::Tensor base, branch;
};

// r -> {value of r [..., d], LayerNorm(value) [..., d]}: with the addition fused into the
// LayerNorm where the kernel applies, else `base + branch` then layer_norm_as (the same ops and
// order as an unfused block).
std::pair<at::Tensor, at::Tensor> add_layer_norm(const Residual& r, const at::Tensor& w,
                                                 const at::Tensor& b, bool matmul_input) {
  if (!r.branch.defined()) return {r.base, layer_norm_as(r.base, w, b, 1e-5, matmul_input)};
  if (r.base.is_cuda()) {
    const at::ScalarType out = layer_norm_dtype(r.base, matmul_input);
    if (fused_add_layer_norm_applies(r.base, r.branch, w, b, out))
      return fused_add_layer_norm(r.base, r.branch, w, b, 1e-5, out);
  }
  at::Tensor v = r.base + r.branch;
  return {v, layer_norm_as(v, w, b, 1e-5, matmul_input)};
}

// One pre-LN block on a pending stream: x + attn(LN1 x) + mlp(LN2 .), the last addition left
// pending for the next LayerNorm.
Residual block_step(const Residual& x, const StateDict& sd, const std::string& prefix,
                    int64_t heads, double drop_path) {
  auto [v, h] =
      add_layer_norm(x, param(sd, prefix + "norm1.weight"), param(sd, prefix + "norm1.bias"), true);
  Residual y{v, drop_path_forward(attention_forward(h, sd, prefix + "attn.", heads), drop_path)};
  auto [u, h2] =
      add_layer_norm(y, param(sd, prefix + "norm2.weight"), param(sd, prefix + "norm2.bias"), true);
  h2 = linear_gelu_forward(h2, param(sd, prefix + "mlp.fc1.weight"),
                           param(sd, prefix + "mlp.fc1.bias"));
  h2 = linear_forward(h2, param(sd, prefix + "mlp.fc2.weight"), param(sd, prefix + "mlp.fc2.bias"));
  return {u, drop_path_forward(h2, drop_path)};
}

}  // namespace

at::Tensor block_forward(const at::Tensor& x, const StateDict& sd, const std::string& prefix,
                         int64_t heads, double drop_path) {
  const Residual r = block_step({x, at::Tensor()}, sd, prefix, heads, drop_path);
  return r.base + r.branch;
}

at::Tensor block_stack_forward(const at::Tensor& x, const StateDict& sd,
                               const std::string& block_prefix, int64_t depth, int64_t heads,
                               const std::string& norm_prefix, bool matmul_input,
                               const std::vector<double>& drop_path) {
  if (!drop_path.empty() && int64_t(drop_path.size()) != depth)
    throw std::invalid_argument("block_stack_forward: " + std::to_string(drop_path.size()) +
                                " drop-path rates for " + std::to_string(depth) + " blocks");
  Residual r{x, at::Tensor()};
  for (int64_t i = 0; i < depth; ++i)
    r = block_step(r, sd, block_prefix + std::to_string(i) + ".", heads,
                   drop_path.empty() ? 0.0 : drop_path[size_t(i)]);
  return add_layer_norm(r, param(sd, norm_prefix + "weight"), param(sd, norm_prefix + "bias"),
                        matmul_input)
      .second;
}

at::Tensor patch_embed_forward(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias) {
  const int64_t NM = x.size(0), T = x.size(1), V = x.size(2), C = x.size(3);
  const int64_t d = weight.size(0), tp = weight.size(2), TP = T / tp;
  // [NM, TP, tp(u), V, C] -> [NM, TP, V, C, u] so the flattened feature index is c*tp + u,
  // the same order as the conv weight [d, C, tp, 1] flattened.
  at::Tensor xp =
      x.reshape({NM, TP, tp, V, C}).permute({0, 1, 3, 4, 2}).reshape({NM, TP, V, C * tp});
  return at::linear(xp, weight.reshape({d, C * tp}), bias);
}

}  // namespace hacm::accel
