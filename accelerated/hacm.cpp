#include "accelerated/hacm.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <stdexcept>

#include "accelerated/hyperbolic.h"
#include "accelerated/transformer.h"
#include "core/skeleton.h"

namespace hacm::accel {

HacmConfig::HacmConfig()
    : idx_kept(hacm_kept_joints().begin(), hacm_kept_joints().end()),
      idx_null(hacm_root_joints().begin(), hacm_root_joints().end()) {}

static const at::Tensor& param(const StateDict& sd, const std::string& name) {
  auto it = sd.find(name);
  if (it == sd.end()) throw std::runtime_error("missing parameter '" + name + "' in state dict");
  return it->second;
}

void hacm_place_indices(HacmConfig& cfg, const at::Device& device) {
  cfg.kept_index = index_tensor(cfg.idx_kept, device);
  cfg.null_index = index_tensor(cfg.idx_null, device);
}

// Gather rows of x [B, L, C] with idx [B, K] -> [B, K, C].
static at::Tensor gather_rows(const at::Tensor& x, const at::Tensor& idx) {
  return at::gather(x, 1, idx.unsqueeze(-1).expand({idx.size(0), idx.size(1), x.size(2)}));
}

Selection gumbel_topk_forward(const at::Tensor& score, const at::Tensor& U, int64_t K,
                              double temperature, bool descending, const at::Tensor* inject) {
  at::NoGradGuard no_grad;  // selection only feeds argsort: no gradient (as in the released code)
  Selection s;
  s.score_norm = score / (temperature * std::get<0>(score.max(-1, true)) + 1e-10);
  s.prob = at::softmax(s.score_norm, -1);
  s.key = at::log(s.prob) - at::log(-at::log(U + 1e-10) + 1e-10);
  s.ids_shuffle = inject ? *inject : at::argsort(s.key, /*stable=*/true, -1, descending);
  s.ids_keep = s.ids_shuffle.narrow(1, 0, K);
  s.ids_restore = at::argsort(s.ids_shuffle, /*stable=*/true, -1, false);
  at::Tensor m = at::ones_like(score);
  m.narrow(1, 0, K).zero_();
  s.mask = at::gather(m, 1, s.ids_restore);
  return s;
}

at::Tensor temporal_scores_forward(const at::Tensor& mc_even, const StateDict& sd, double scale) {
  at::NoGradGuard no_grad;  // l1/l2 receive no gradient in the released code
  at::Tensor q = at::linear(mc_even, param(sd, "l1.weight"), param(sd, "l1.bias"));  // [NM,TPh,V,d]
  at::Tensor k = at::linear(mc_even, param(sd, "l2.weight"), param(sd, "l2.bias"));
  // S[n,v,t,u] = Σ_c q[n,t,v,c] k[n,u,v,c]
  at::Tensor S = at::matmul(q.permute({0, 2, 1, 3}), k.permute({0, 2, 3, 1}));  // [NM,V,TPh,TPh]
  return at::softmax(S * scale, 1);  // softmax over joints (released)
}

void spatial_distances_forward(const at::Tensor& Hs, const at::Tensor& father, double factor,
                               at::Tensor* D, at::Tensor* Df) {
  const int64_t V = Hs.size(2);
  at::Tensor sq = (Hs * Hs).sum(-1);                       // [NM,TPh,V]
  at::Tensor gram = at::matmul(Hs, Hs.transpose(-2, -1));  // [NM,TPh,V,V]
  at::Tensor diff2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * gram).clamp_min(0);
  // The diagonal is exactly 0; the expansion leaves rounding noise there, which the tiny
  // (1-|u|^2)^2 denominators near the boundary would blow up.
  diff2 = diff2 * (1.0 - at::eye(V, Hs.options()));
  at::Tensor om = 1.0 - sq;  // [NM,TPh,V]
  *D = at::acosh(1.0 + factor * diff2 / (om.unsqueeze(-1) * om.unsqueeze(-2)));
  *Df = poincare_distance_forward(father.unsqueeze(2), Hs, factor);  // [NM,TPh,V]
}

HacmOutputs hacm_forward(const StateDict& sd, const HacmConfig& cfg, const at::Tensor& x5,
                         const at::Tensor& U_t, const at::Tensor& U_s, const HacmInject* inject) {
  const bool released = cfg.variant == "released";
  if (!released && cfg.variant != "corrected")
    throw std::invalid_argument("unknown HA-CM variant " + cfg.variant);
  const at::Device dev = x5.device();
  const int64_t N = x5.size(0), T = x5.size(2), M = x5.size(4), NM = N * M;
  const int64_t V = int64_t(cfg.idx_kept.size()), d = cfg.dim, tp = cfg.t_patch, TP = T / tp,
                TPh = TP / 2;
  const int64_t Lg = TPh * V, L = 2 * Lg, K = int64_t(cfg.keep_ratio * double(Lg));
  const double scale = cfg.t_logit_scale > 0 ? cfg.t_logit_scale : std::sqrt(double(d));
  HacmOutputs o;

  // [N,3,T,25,M] -> [NM,T,25,3]; split into kept and root joints.
  at::Tensor x = x5.permute({0, 4, 2, 3, 1}).reshape({NM, T, x5.size(3), 3});
  at::Tensor xk = x.index_select(2, index_tensor(cfg.idx_kept, dev, cfg.kept_index));  // [NM,T,V,3]
  at::Tensor xn = x.index_select(2, index_tensor(cfg.idx_null, dev, cfg.null_index));  // [NM,T,7,3]

  at::Tensor cw = param(sd, "joints_embed.proj.weight");
  at::Tensor cb = param(sd, "joints_embed.proj.bias");
  at::Tensor E = patch_embed_forward(xk, cw, cb);                        // [NM,TP,V,d]
  at::Tensor En = patch_embed_forward(xn, cw, cb);                       // [NM,TP,7,d]
  at::Tensor mc = E + param(sd, "pos_embed") + param(sd, "temp_embed");  // [NM,TP,V,d]
  at::Tensor H = expmap_with_projection_forward(mc);

  // Criteria (no gradient).
  {
    at::NoGradGuard no_grad;
    o.t_att = temporal_scores_forward(mc.slice(1, 0, TP, 2), sd, scale);  // [NM,V,TPh,TPh]
    at::Tensor st = o.t_att.sum(2);                                       // [NM,V,TPh] (v, u)
    o.score_t = released ? st.reshape({NM, Lg}) : st.permute({0, 2, 1}).reshape({NM, Lg});
    at::Tensor Hs = H.slice(1, 1, TP, 2);  // [NM,TPh,V,d]
    at::Tensor father =
        expmap_with_projection_forward(En).mean(2).slice(1, 1, TP, 2);  // [NM,TPh,d]
    at::Tensor D, Df;
    spatial_distances_forward(Hs, father, cfg.dist_factor, &D, &Df);
    at::Tensor ss = D.sum(2) + 0.01 * Df;  // [NM,TPh,V] (τ', j)
    // released: the joint-major score vector is applied to time-major tokens (quirk 1).
    o.score_s = released ? ss.permute({0, 2, 1}).reshape({NM, Lg}) : ss.reshape({NM, Lg});
  }
  Selection sel_t = gumbel_topk_forward(o.score_t, U_t, K, cfg.temperature, true,
                                        inject ? &inject->ids_shuffle_t : nullptr);
  Selection sel_s = gumbel_topk_forward(o.score_s, U_s, K, cfg.temperature, true,
                                        inject ? &inject->ids_shuffle_s : nullptr);
  o.key_t = sel_t.key, o.key_s = sel_s.key;
  o.ids_shuffle_t = sel_t.ids_shuffle, o.ids_shuffle_s = sel_s.ids_shuffle;

  // Group tokens: temporal = even patches, spatial = odd patches.
  at::Tensor He = H.slice(1, 0, TP, 2), Ho = H.slice(1, 1, TP, 2);          // [NM,TPh,V,d]
  at::Tensor Zt = released ? He.permute({0, 2, 1, 3}).reshape({NM, Lg, d})  // joint-major
                           : He.reshape({NM, Lg, d});                       // time-major
  at::Tensor Zs = Ho.reshape({NM, Lg, d});                                  // time-major
  o.enc_in =
      at::cat({gather_rows(Zt, sel_t.ids_keep), gather_rows(Zs, sel_s.ids_keep)}, 1);  // [NM,2K,d]

  o.latent = block_stack_forward(o.enc_in, sd, "blocks.", cfg.depth, cfg.heads, "norm.", false);

  // Cross-contrast loss on the group means (raw dot products, softmax rows vs identity).
  o.cc_a = o.latent.narrow(1, 0, K).mean(1);
  o.cc_b = o.latent.narrow(1, K, K).mean(1);
  o.cc_g = o.latent.mean(1);
  at::Tensor I = at::eye(NM, o.latent.options());
  o.sim_t = at::softmax(at::matmul(o.cc_b, o.cc_g.t()), -1);
  o.sim_s = at::softmax(at::matmul(o.cc_a, o.cc_g.t()), -1);
  o.sim_inter = at::softmax(at::matmul(o.cc_a, o.cc_b.t()), -1);
  o.loss_cc = at::mse_loss(o.sim_t, I) + at::mse_loss(o.sim_s, I) + at::mse_loss(o.sim_inter, I);

  // Decoder input.
  at::Tensor y =
      at::linear(o.latent, param(sd, "decoder_embed.weight"), param(sd, "decoder_embed.bias"));
  at::Tensor mtok = param(sd, "mask_token_t");  // [1,1,d]
  at::Tensor dec;
  if (released) {
    at::Tensor seq = at::cat({y, mtok.expand({NM, L - 2 * K, d})}, 1);        // [x_t, x_s, mask...]
    o.ids_restore = at::cat({sel_t.ids_restore, sel_s.ids_restore + Lg}, 1);  // quirk 2, as coded
    dec = gather_rows(seq, o.ids_restore);
    o.mask = at::cat({sel_t.mask, sel_s.mask}, 1);
  } else {
    // Grid slot of a group token k (time-major): τ = 2·(k div V) + g, v = k mod V.
    auto grid = [&](const at::Tensor& k, int64_t g) {
      return (at::floor_divide(k, V) * 2 + g) * V + k.remainder(V);
    };
    at::Tensor slots = at::cat({grid(sel_t.ids_keep, 0), grid(sel_s.ids_keep, 1)}, 1);  // [NM,2K]
    at::Tensor canvas = mtok.to(y.scalar_type()).expand({NM, L, d});  // autocast: y may be bf16
    dec = canvas.scatter(1, slots.unsqueeze(-1).expand({NM, 2 * K, d}), y);
    at::Tensor m = at::ones({NM, L}, o.latent.options());
    o.mask = m.scatter(1, slots, at::zeros({NM, 2 * K}, m.options()));
    o.ids_restore = slots;
  }
  dec = (dec.reshape({NM, TP, V, d}) + param(sd, "decoder_pos_embed") +
         param(sd, "decoder_temp_embed"))
            .reshape({NM, L, d});
  dec = block_stack_forward(dec, sd, "decoder_blocks.", cfg.decoder_depth, cfg.heads,
                            "decoder_norm.", true);
  o.pred = at::linear(dec, param(sd, "decoder_pred.weight"),
                      param(sd, "decoder_pred.bias"));  // [NM,L,3tp]

  // Target: frame-difference motion mapped into the ball, patchified (not detached, as coded).
  o.motion =
      at::cat({xk.slice(1, 1, T) - xk.slice(1, 0, T - 1), at::zeros_like(xk.slice(1, 0, 1))}, 1);
  o.motion_h = expmap_with_projection_forward(o.motion);
  at::Tensor patches =
      o.motion_h.reshape({NM, TP, tp, V, 3}).permute({0, 1, 3, 2, 4}).reshape({NM, TP, V, tp * 3});
  if (released)  // cat(even rows, odd rows), each half time-major (quirk 3 lives in the pairing)
    o.target = at::cat({patches.slice(1, 0, TP, 2).reshape({NM, Lg, tp * 3}),
                        patches.slice(1, 1, TP, 2).reshape({NM, Lg, tp * 3})},
                       1);
  else
    o.target = patches.reshape({NM, L, tp * 3});
  at::Tensor mean = o.target.mean(-1, true);
  at::Tensor var = o.target.var(-1, /*unbiased=*/true, /*keepdim=*/true);
  o.target_norm = (o.target - mean) / at::sqrt(var + 1e-6);
  at::Tensor per_slot = (o.pred - o.target_norm).pow(2).mean(-1);  // [NM,L]
  o.loss_rec = (per_slot * o.mask).sum() / o.mask.sum();
  o.loss = o.loss_rec + o.loss_cc;
  return o;
}

}  // namespace hacm::accel
