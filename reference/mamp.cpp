// MAMP baseline (see mamp.h). Shares the block, LayerNorm, linear, embedding and loss components
// with HA-CM; the differences are the masking (motion, ascending) and the Euclidean tokens.
#include "reference/mamp.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/error.h"
#include "reference/embed.h"
#include "reference/recon_loss.h"

namespace hacm::ref {
namespace {}  // namespace

template <class T>
MampWeights<T> MampWeights<T>::load(const Checkpoint<T>& ck, MampConfig& cfg) {
  MampWeights<T> w;
  static_cast<EncoderParams<T>&>(w) = load_encoder(ck, -1, cfg.depth);
  static_cast<DecoderParams<T>&>(w) = load_decoder(ck, w, "mask_token", cfg.decoder_depth);
  const int64_t D = w.conv_w.dim(0), Dd = w.decoder_embed.w.dim(0);
  if (D % cfg.heads != 0 || Dd % cfg.heads != 0)
    throw input_error(
        ck.source, 0,
        "width " + std::to_string(D) + " not divisible by " + std::to_string(cfg.heads) + " heads");
  return w;
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>*>> MampWeights<T>::named() {
  NamedTensors<T> r;
  append_named(r, static_cast<EncoderParams<T>&>(*this));
  append_named(r, static_cast<DecoderParams<T>&>(*this), "mask_token");
  return r;
}

template <class T>
MampWeights<T> MampWeights<T>::zeros_like() const {
  return zeros_like_named(*this);
}

template <class T>
Tensor<T> patchify_forward(const Tensor<T>& x, int64_t tp) {
  const int64_t B = x.dim(0), Tn = x.dim(1), J = x.dim(2), C = x.dim(3), TP = Tn / tp;
  Tensor<T> p({B, TP * J, tp * C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < J; ++v)
        for (int64_t u = 0; u < tp; ++u)
          for (int64_t c = 0; c < C; ++c)
            p[((b * TP + t) * J + v) * tp * C + u * C + c] =
                x[((b * Tn + t * tp + u) * J + v) * C + c];
  return p;
}

template <class T>
Tensor<T> patchify_backward(const Tensor<T>& g, int64_t tp, int64_t Tn) {
  const int64_t B = g.dim(0), C = g.dim(2) / tp, TP = Tn / tp, J = g.dim(1) / TP;
  Tensor<T> x({B, Tn, J, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < J; ++v)
        for (int64_t u = 0; u < tp; ++u)
          for (int64_t c = 0; c < C; ++c)
            x[((b * Tn + t * tp + u) * J + v) * C + c] =
                g[((b * TP + t) * J + v) * tp * C + u * C + c];
  return x;
}

template <class T>
MampForward<T> mamp_forward(const Tensor<T>& x5, const Tensor<T>& U, const MampWeights<T>& w,
                            const MampConfig& cfg, const std::vector<int64_t>* order) {
  MampForward<T> f;
  f.persons = x5.dim(4);
  f.x = to_person_major_forward(x5);  // [NM, T, J, 3]
  const int64_t NM = f.x.dim(0), Tn = f.x.dim(1), J = f.x.dim(2), C = f.x.dim(3);
  const int64_t tp = w.conv_w.dim(2), TP = Tn / tp, L = TP * J, D = w.conv_w.dim(0), F = tp * C;
  if (TP != w.temp.dim(1)) throw std::invalid_argument("mamp_forward: T/tp != temp_embed patches");
  const int64_t K = int64_t(double(L) * (1.0 - cfg.mask_ratio));  // Python int(L·(1 − r))

  // ---- Motion-aware masking (no gradient).
  Tensor<T> P = patchify_forward(f.x, tp);  // [NM, L, F]
  f.motion_raw = Tensor<T>({NM, L});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < J; ++v) {
        const int64_t tt = t == 0 ? 1 : t;  // τ = 0 copies τ = 1
        T s = 0;
        for (int64_t i = 0; i < F; ++i)
          s +=
              std::abs(P[((n * TP + tt) * J + v) * F + i] - P[((n * TP + tt - 1) * J + v) * F + i]);
        f.motion_raw[n * L + t * J + v] = s / T(F);
      }
  Selection<T> keys = gumbel_topk_forward(f.motion_raw, U, 1.0 - cfg.mask_ratio, cfg.tau);
  std::vector<int64_t> asc(size_t(NM * L));
  if (order) {
    asc = *order;
  } else {
    for (int64_t n = 0; n < NM; ++n) {
      int64_t* o = asc.data() + n * L;
      std::iota(o, o + L, int64_t(0));
      const T* kb = keys.key.ptr() + n * L;
      std::stable_sort(o, o + L, [kb](int64_t a, int64_t c) { return kb[a] < kb[c]; });
    }
  }
  f.sel = selection_from_order<T>(asc, NM, L, K);
  f.sel.score_norm = keys.score_norm;
  f.sel.prob = keys.prob;
  f.sel.key = keys.key;

  // ---- Encoder on the kept Euclidean tokens.
  Tensor<T> E = add_pos_temp_forward(patch_embed_forward(f.x, w.conv_w, w.conv_b), w.pos, w.temp)
                    .reshaped({NM, L, D});
  f.enc_in = gather_tokens_forward(E, f.sel.ids_keep, K);
  Tensor<T> h = f.enc_in;
  f.enc_c.resize(w.blocks.size());
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    f.enc_x.push_back(h);
    h = block_forward<T>(h, w.blocks[i], cfg.heads, &f.enc_c[i], cfg.ln_eps);
  }
  f.enc_out = std::move(h);
  f.latent = layernorm_forward(f.enc_out, w.norm, cfg.ln_eps, &f.norm_c);

  // ---- Decoder: [embed(latent), mask...][ids_restore].
  f.pred = mae_decoder_forward(f.latent, f.sel.ids_restore, TP, J, w, cfg.heads, cfg.ln_eps, f.dec);

  // ---- Target: frame differences (last frame 0), patchified, normalised.
  Tensor<T> motion(f.x.shape);
  const int64_t row = J * C;
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t + 1 < Tn; ++t)
      for (int64_t i = 0; i < row; ++i)
        motion[(n * Tn + t) * row + i] =
            f.x[(n * Tn + t + 1) * row + i] - f.x[(n * Tn + t) * row + i];
  f.target = patchify_forward(motion, tp);
  f.loss = recon_loss_forward(f.pred, f.target, f.sel.mask, cfg.target_eps, f.target_norm);
  return f;
}

template <class T>
MampGrads<T> mamp_backward(const MampForward<T>& f, const Tensor<T>& x5, const MampWeights<T>& w,
                           const MampConfig& cfg) {
  MampGrads<T> g;
  g.w = w.zeros_like();
  MampWeights<T>& gw = g.w;
  const int64_t NM = f.x.dim(0), Tn = f.x.dim(1), J = f.x.dim(2), C = f.x.dim(3);
  const int64_t tp = w.conv_w.dim(2), TP = Tn / tp, L = TP * J, D = w.conv_w.dim(0);

  Tensor<T> g_pred, g_target;
  recon_loss_backward(f.pred, f.target, f.target_norm, f.sel.mask, cfg.target_eps, g_pred,
                      g_target);
  Tensor<T> g_motion = patchify_backward(g_target, tp, Tn);
  Tensor<T> g_x(f.x.shape);
  const int64_t row = J * C;
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t + 1 < Tn; ++t)
      for (int64_t i = 0; i < row; ++i) {
        const T gm = g_motion[(n * Tn + t) * row + i];
        g_x[(n * Tn + t + 1) * row + i] += gm;
        g_x[(n * Tn + t) * row + i] -= gm;
      }

  Tensor<T> g_latent = mae_decoder_backward(f.latent, f.sel.ids_restore, TP, J, w, cfg.heads,
                                            cfg.ln_eps, f.dec, g_pred, gw);
  Tensor<T> g_h = layernorm_backward(f.enc_out, w.norm, f.norm_c, g_latent, gw.norm);
  for (size_t i = w.blocks.size(); i-- > 0;)
    g_h = block_backward<T>(f.enc_x[i], w.blocks[i], cfg.heads, f.enc_c[i], g_h, gw.blocks[i],
                            cfg.ln_eps);
  Tensor<T> g_E = gather_tokens_backward(g_h, f.sel.ids_keep, L).reshaped({NM, TP, J, D});
  g_E = add_pos_temp_backward(g_E, gw.pos, gw.temp);
  Tensor<T> g_xe = patch_embed_backward(f.x, w.conv_w, g_E, gw.conv_w, gw.conv_b);
  for (int64_t i = 0; i < g_x.numel(); ++i) g_x[i] += g_xe[i];
  g.x5 = to_person_major_backward(g_x, f.persons);
  (void)x5;
  return g;
}

#define HACM_INSTANTIATE(T)                                                                       \
  template struct MampWeights<T>;                                                                 \
  template MampForward<T> mamp_forward(const Tensor<T>&, const Tensor<T>&, const MampWeights<T>&, \
                                       const MampConfig&, const std::vector<int64_t>*);           \
  template MampGrads<T> mamp_backward(const MampForward<T>&, const Tensor<T>&,                    \
                                      const MampWeights<T>&, const MampConfig&);                  \
  template Tensor<T> patchify_forward(const Tensor<T>&, int64_t);                                 \
  template Tensor<T> patchify_backward(const Tensor<T>&, int64_t, int64_t);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
