#include "accelerated/mamp.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <stdexcept>

#include "accelerated/hacm.h"
#include "accelerated/transformer.h"

namespace hacm::accel {

static at::Tensor param(const StateDict& sd, const std::string& name) {
  auto it = sd.find(name);
  if (it == sd.end()) throw std::runtime_error("missing parameter '" + name + "' in state dict");
  return it->second;
}

at::Tensor patchify_forward(const at::Tensor& x, int64_t tp) {
  const int64_t NM = x.size(0), T = x.size(1), V = x.size(2), C = x.size(3);
  return x.reshape({NM, T / tp, tp, V, C})
      .permute({0, 1, 3, 2, 4})
      .reshape({NM, (T / tp) * V, tp * C});
}

MampOutputs mamp_forward(const StateDict& sd, const MampConfig& cfg, const at::Tensor& x5,
                         const at::Tensor& U, const at::Tensor* inject) {
  const int64_t N = x5.size(0), T = x5.size(2), V = x5.size(3), M = x5.size(4), NM = N * M;
  const int64_t tp = cfg.t_patch, TP = T / tp, L = TP * V, d = cfg.dim;
  const int64_t K = int64_t(double(L) * (1.0 - cfg.mask_ratio));
  MampOutputs o;
  at::Tensor x = x5.permute({0, 4, 2, 3, 1}).reshape({NM, T, V, 3});

  // Motion of the raw patches: mean over the 12 features of |P_τ − P_{τ−1}|, τ = 0 copies τ = 1.
  {
    at::NoGradGuard no_grad;
    at::Tensor P = patchify_forward(x, tp).reshape({NM, TP, V, tp * 3});
    at::Tensor dm = (P.slice(1, 1, TP) - P.slice(1, 0, TP - 1)).abs();
    o.motion_raw = at::cat({dm.slice(1, 0, 1), dm}, 1).mean(-1).reshape({NM, L});
  }
  Selection sel = gumbel_topk_forward(o.motion_raw, U, K, cfg.tau, /*descending=*/false, inject);
  o.key = sel.key, o.ids_shuffle = sel.ids_shuffle, o.ids_keep = sel.ids_keep;
  o.ids_restore = sel.ids_restore, o.mask = sel.mask;

  at::Tensor E = patch_embed_forward(x, param(sd, "joints_embed.proj.weight"),
                                     param(sd, "joints_embed.proj.bias"));
  E = (E + param(sd, "pos_embed") + param(sd, "temp_embed")).reshape({NM, L, d});
  at::Tensor z = at::gather(E, 1, sel.ids_keep.unsqueeze(-1).expand({NM, K, d}));
  o.latent = block_stack_forward(z, sd, "blocks.", cfg.depth, cfg.heads, "norm.", false);

  at::Tensor y =
      at::linear(o.latent, param(sd, "decoder_embed.weight"), param(sd, "decoder_embed.bias"));
  at::Tensor mtok = param(sd, "mask_token").to(y.scalar_type());
  at::Tensor seq = at::cat({y, mtok.expand({NM, L - K, y.size(2)})}, 1);
  at::Tensor dec = at::gather(seq, 1, sel.ids_restore.unsqueeze(-1).expand({NM, L, y.size(2)}));
  dec = (dec.reshape({NM, TP, V, -1}) + param(sd, "decoder_pos_embed") +
         param(sd, "decoder_temp_embed"))
            .reshape({NM, L, -1});
  dec = block_stack_forward(dec, sd, "decoder_blocks.", cfg.decoder_depth, cfg.heads,
                            "decoder_norm.", true);
  o.pred = at::linear(dec, param(sd, "decoder_pred.weight"), param(sd, "decoder_pred.bias"));

  // Target: frame-difference motion (last frame 0), patchified, per-patch normalised.
  at::Tensor motion =
      at::cat({x.slice(1, 1, T) - x.slice(1, 0, T - 1), at::zeros_like(x.slice(1, 0, 1))}, 1);
  at::Tensor t = patchify_forward(motion, tp);
  o.target_norm = (t - t.mean(-1, true)) / at::sqrt(t.var(-1, true, true) + 1e-6);
  at::Tensor per = (o.pred - o.target_norm).pow(2).mean(-1);
  o.loss = (per * o.mask).sum() / o.mask.sum();
  return o;
}

}  // namespace hacm::accel
