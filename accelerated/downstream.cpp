#include "accelerated/downstream.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "accelerated/hyperbolic.h"
#include "accelerated/transformer.h"

namespace hacm::accel {

static at::Tensor param(const StateDict& sd, const std::string& name) {
  auto it = sd.find(name);
  if (it == sd.end()) throw std::runtime_error("missing parameter '" + name + "' in state dict");
  return it->second;
}

void encoder_place_indices(EncoderConfig& cfg, const at::Device& device) {
  if (!cfg.idx_kept.empty()) cfg.kept_index = index_tensor(cfg.idx_kept, device);
}

void add_finetune_head(StateDict& sd, const at::Tensor& fc1_weight, const at::Tensor& fc2_weight) {
  const int64_t hidden = fc1_weight.size(0), classes = fc2_weight.size(0);
  auto opts = at::TensorOptions().device(fc1_weight.device());
  sd["head.fc1.weight"] = fc1_weight.detach().set_requires_grad(true);
  sd["head.fc1.bias"] = at::zeros({hidden}, opts).set_requires_grad(true);
  sd["head.bn.weight"] = at::ones({hidden}, opts).set_requires_grad(true);
  sd["head.bn.bias"] = at::zeros({hidden}, opts).set_requires_grad(true);
  sd["head.bn.running_mean"] = at::zeros({hidden}, opts);
  sd["head.bn.running_var"] = at::ones({hidden}, opts);
  sd["head.fc2.weight"] = fc2_weight.detach().set_requires_grad(true);
  sd["head.fc2.bias"] = at::zeros({classes}, opts).set_requires_grad(true);
}

at::Tensor downstream_encoder_forward(const StateDict& sd, const EncoderConfig& cfg,
                                      const at::Tensor& x5) {
  const int64_t N = x5.size(0), T = x5.size(2), M = x5.size(4), NM = N * M;
  at::Tensor x = x5.permute({0, 4, 2, 3, 1}).reshape({NM, T, x5.size(3), 3});
  if (!cfg.idx_kept.empty())
    x = x.index_select(2, index_tensor(cfg.idx_kept, x.device(), cfg.kept_index));
  at::Tensor E = patch_embed_forward(x, param(sd, "joints_embed.proj.weight"),
                                     param(sd, "joints_embed.proj.bias"));
  E = E + param(sd, "pos_embed") + param(sd, "temp_embed");
  if (cfg.hyperbolic) E = expmap_with_projection_forward(E);
  const int64_t TP = E.size(1), V = E.size(2), d = E.size(3);
  at::Tensor z = E.reshape({NM, TP * V, d});
  std::vector<double> dp(size_t(cfg.depth), 0.0);
  for (int64_t i = 0; i < cfg.depth; ++i)  // torch.linspace(0, drop_path, depth)[i]: 0 for one
    dp[size_t(i)] = cfg.depth > 1 ? cfg.drop_path * double(i) / double(cfg.depth - 1) : 0.0;
  z = block_stack_forward(z, sd, "blocks.", cfg.depth, cfg.heads, "norm.", false, dp);
  return z.reshape({N, M, TP, V, d});
}

at::Tensor linprobe_features_forward(const at::Tensor& tokens) {
  return tokens.mean({1, 2, 3});
}

at::Tensor linprobe_head_forward(const at::Tensor& feat, const StateDict& sd,
                                 const std::string& fc_prefix, const std::string& bn_prefix,
                                 bool batch_stats) {
  at::Tensor h = feat;
  if (!bn_prefix.empty()) {
    at::Tensor rm = param(sd, bn_prefix + "running_mean"),
               rv = param(sd, bn_prefix + "running_var");
    // functional batch_norm updates running stats in training mode; pass copies so the
    // stored statistics change only through the training loop's explicit update.
    h = at::batch_norm(h, {}, {}, batch_stats ? rm.clone() : rm, batch_stats ? rv.clone() : rv,
                       batch_stats, 0.1, 1e-6, false);
  }
  return at::linear(h, param(sd, fc_prefix + "weight"), param(sd, fc_prefix + "bias"));
}

at::Tensor finetune_head_forward(const at::Tensor& tokens, const StateDict& sd,
                                 const std::string& prefix, bool training, double dropout,
                                 at::Tensor* feat_out, at::Tensor* fc1_out) {
  const int64_t N = tokens.size(0), M = tokens.size(1), V = tokens.size(3), d = tokens.size(4);
  at::Tensor t = dropout > 0 ? at::dropout(tokens, dropout, training) : tokens;
  at::Tensor feat = t.mean(2).reshape({N, M, V * d}).mean(1);  // [N, V*d], joint-major
  if (feat_out) *feat_out = feat;
  at::Tensor h = at::linear(feat, param(sd, prefix + "fc1.weight"), param(sd, prefix + "fc1.bias"));
  if (fc1_out) *fc1_out = h;
  h = at::batch_norm(h, param(sd, prefix + "bn.weight"), param(sd, prefix + "bn.bias"),
                     param(sd, prefix + "bn.running_mean"), param(sd, prefix + "bn.running_var"),
                     training, 0.1, 1e-5, false);
  h = at::relu(h);
  return at::linear(h, param(sd, prefix + "fc2.weight"), param(sd, prefix + "fc2.bias"));
}

}  // namespace hacm::accel
