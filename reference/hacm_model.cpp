// HA-CM `released` forward loss (see hacm_model.h).
#include "reference/hacm_model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "reference/hyperbolic.h"
#include "reference/recon_loss.h"

namespace hacm::ref {
namespace {

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

// Row softmax of a [R, R] matrix in place.
template <class T>
void softmax_rows(MatR<T>& m) {
  for (int64_t i = 0; i < m.rows(); ++i) {
    const T mx = m.row(i).maxCoeff();
    m.row(i) = (m.row(i).array() - mx).exp();
    m.row(i) /= m.row(i).sum();
  }
}

template <class T>
T mse_to_identity(const MatR<T>& s) {
  T acc = 0;
  for (int64_t i = 0; i < s.rows(); ++i)
    for (int64_t j = 0; j < s.cols(); ++j) {
      const T d = s(i, j) - (i == j ? T(1) : T(0));
      acc += d * d;
    }
  return acc / T(s.size());
}

}  // namespace

bool HacmConfig::corrected() const {
  if (variant == "corrected") return true;
  need(variant == "released", "unknown HA-CM variant '" + variant + "' (released | corrected)");
  return false;
}

template <class T>
HacmWeights<T> HacmWeights<T>::load(const Checkpoint<T>& ck, HacmConfig& cfg) {
  HacmWeights<T> w;
  static_cast<EncoderParams<T>&>(w) = load_encoder(ck, int64_t(cfg.kept.size()), cfg.depth);
  const int64_t D = w.conv_w.dim(0);
  w.l1 = load_linear(ck, "l1", D);
  w.l2 = load_linear(ck, "l2", D, w.l1.w.dim(0));
  static_cast<DecoderParams<T>&>(w) = load_decoder(ck, w, "mask_token_t", cfg.decoder_depth);
  const int64_t Dd = w.decoder_embed.w.dim(0);
  if (D % cfg.heads != 0 || Dd % cfg.heads != 0)
    throw input_error(
        ck.source, 0,
        "width " + std::to_string(D) + " not divisible by " + std::to_string(cfg.heads) + " heads");
  return w;
}

template <class T>
HacmWeights<T> HacmWeights<T>::zeros_like() const {
  return zeros_like_named(*this);
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>*>> HacmWeights<T>::named() {
  NamedTensors<T> r;
  append_named(r, static_cast<EncoderParams<T>&>(*this));
  append_named(r, "l1", l1);
  append_named(r, "l2", l2);
  append_named(r, static_cast<DecoderParams<T>&>(*this), "mask_token_t");
  return r;
}

template <class T>
std::vector<std::pair<std::string, const Tensor<T>*>> HacmWeights<T>::named() const {
  std::vector<std::pair<std::string, const Tensor<T>*>> r;
  for (auto& [n, t] : const_cast<HacmWeights<T>*>(this)->named()) r.emplace_back(n, t);
  return r;
}

template <class T>
Checkpoint<T> HacmWeights<T>::to_checkpoint() const {
  Checkpoint<T> ck;
  for (const auto& [n, t] : named()) ck.tensors[n] = *t;
  return ck;
}

template <class T>
HacmForward<T> hacm_forward(const Tensor<T>& x5, const Tensor<T>& u_t, const Tensor<T>& u_s,
                            const HacmWeights<T>& w, const HacmConfig& cfg,
                            const std::vector<int64_t>* order_t,
                            const std::vector<int64_t>* order_s) {
  const bool corrected = cfg.corrected();
  HacmForward<T> f;
  f.persons = x5.dim(4);
  Tensor<T> x = to_person_major_forward(x5);  // [NM, T, J, 3]
  f.xk = select_joints_forward(x, cfg.kept);
  Tensor<T> xn = select_joints_forward(x, cfg.null);
  const Tensor<T>& xk = f.xk;
  const int64_t NM = xk.dim(0), Tn = xk.dim(1), V = xk.dim(2), C = xk.dim(3);
  const int64_t tp = w.conv_w.dim(2), TP = Tn / tp, D = w.conv_w.dim(0);
  need(TP == w.temp.dim(1), "hacm_forward: T/tp = " + std::to_string(TP) + " but temp_embed has " +
                                std::to_string(w.temp.dim(1)) + " patches");

  // ---- Embedding and hyperbolic map.
  f.mc = add_pos_temp_forward(patch_embed_forward(xk, w.conv_w, w.conv_b), w.pos, w.temp);
  f.emb_null = patch_embed_forward(xn, w.conv_w, w.conv_b);
  Tensor<T> H = expmap_with_projection_forward(f.mc);  // [NM, TP, V, D]
  const int64_t TE = (TP + 1) / 2, TO = TP / 2, Lt = V * TE, Ls = TO * V;
  // Group token -> grid slot. Temporal: released joint-major (k = v·TE + τ'), corrected
  // time-major (k = τ'·V + v); spatial: time-major in both.
  f.grid_t.resize(size_t(Lt));
  f.grid_s.resize(size_t(Ls));
  for (int64_t k = 0; k < Lt; ++k)
    f.grid_t[size_t(k)] = corrected ? (2 * (k / V)) * V + k % V : (2 * (k % TE)) * V + k / TE;
  for (int64_t k = 0; k < Ls; ++k) f.grid_s[size_t(k)] = (2 * (k / V) + 1) * V + k % V;
  Tensor<T> zt({NM, Lt, D}), zs({NM, Ls, D});
  for (int64_t n = 0; n < NM; ++n) {
    for (int64_t k = 0; k < Lt; ++k)
      std::copy_n(H.ptr() + (n * TP * V + f.grid_t[size_t(k)]) * D, D, zt.ptr() + (n * Lt + k) * D);
    for (int64_t k = 0; k < Ls; ++k)
      std::copy_n(H.ptr() + (n * TP * V + f.grid_s[size_t(k)]) * D, D, zs.ptr() + (n * Ls + k) * D);
  }

  // ---- Criteria and selection.
  f.temporal = temporal_scores_forward(f.mc, w.l1, w.l2, cfg.logit_scale);
  f.spatial = spatial_scores_forward(f.mc, f.emb_null, cfg.distance_factor, cfg.father_weight);
  // Released quirk 1: the joint-major spatial score is applied to the time-major Z_s as is. The
  // corrected variant permutes both scores to the time-major token order.
  Tensor<T> score_t = f.temporal.score, score_s = f.spatial.score;
  if (corrected) {
    for (int64_t n = 0; n < NM; ++n)
      for (int64_t tau = 0; tau < TE; ++tau)
        for (int64_t v = 0; v < V; ++v)
          score_t[n * Lt + tau * V + v] = f.temporal.score[n * Lt + v * TE + tau];
    for (int64_t n = 0; n < NM; ++n)
      for (int64_t tau = 0; tau < TO; ++tau)
        for (int64_t v = 0; v < V; ++v)
          score_s[n * Ls + tau * V + v] = f.spatial.score[n * Ls + v * TO + tau];
  }
  const int64_t Kt = int64_t(cfg.keep_ratio * double(Lt)),
                Ks = int64_t(cfg.keep_ratio * double(Ls));
  f.sel_t = order_t ? selection_from_order<T>(*order_t, NM, Lt, Kt)
                    : gumbel_topk_forward(score_t, u_t, cfg.keep_ratio, cfg.temperature);
  f.sel_s = order_s ? selection_from_order<T>(*order_s, NM, Ls, Ks)
                    : gumbel_topk_forward(score_s, u_s, cfg.keep_ratio, cfg.temperature);
  Tensor<T> vt = gather_tokens_forward(zt, f.sel_t.ids_keep, Kt),
            vs = gather_tokens_forward(zs, f.sel_s.ids_keep, Ks);
  const int64_t L = Kt + Ks, P = Lt + Ls;
  f.enc_in = Tensor<T>({NM, L, D});
  f.mask = Tensor<T>({NM, P});
  f.dec_src.assign(size_t(NM * P), L);  // default: mask token
  for (int64_t n = 0; n < NM; ++n) {
    std::copy_n(vt.ptr() + n * Kt * D, Kt * D, f.enc_in.ptr() + n * L * D);
    std::copy_n(vs.ptr() + n * Ks * D, Ks * D, f.enc_in.ptr() + (n * L + Kt) * D);
  }
  if (!corrected) {
    f.ids_restore.resize(size_t(NM * P));
    for (int64_t n = 0; n < NM; ++n) {
      for (int64_t k = 0; k < Lt; ++k) {
        f.mask[n * P + k] = f.sel_t.mask[n * Lt + k];
        f.ids_restore[size_t(n * P + k)] = f.sel_t.ids_restore[size_t(n * Lt + k)];
      }
      for (int64_t k = 0; k < Ls; ++k) {
        f.mask[n * P + Lt + k] = f.sel_s.mask[n * Ls + k];
        // Released quirk 2: + Lt (the code's 18·12) although the decoder sequence is
        // [vis_t, vis_s, mask...].
        f.ids_restore[size_t(n * P + Lt + k)] = f.sel_s.ids_restore[size_t(n * Ls + k)] + Lt;
      }
    }
    // Decoder row p takes [embed(latent), mask...][ids_restore[p]].
    for (size_t i = 0; i < f.dec_src.size(); ++i) f.dec_src[i] = std::min(f.ids_restore[i], L);
  } else {
    f.ids_restore.resize(size_t(NM * L));
    std::fill(f.mask.data.begin(), f.mask.data.end(), T(1));
    for (int64_t n = 0; n < NM; ++n)
      for (int64_t k = 0; k < L; ++k) {
        const int64_t slot = k < Kt ? f.grid_t[size_t(f.sel_t.ids_keep[size_t(n * Kt + k)])]
                                    : f.grid_s[size_t(f.sel_s.ids_keep[size_t(n * Ks + k - Kt)])];
        f.ids_restore[size_t(n * L + k)] = slot;
        f.dec_src[size_t(n * P + slot)] = k;
        f.mask[n * P + slot] = 0;
      }
  }

  // ---- Encoder.
  Tensor<T> h = f.enc_in;
  f.enc_c.resize(w.blocks.size());
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    f.enc_x.push_back(h);
    h = block_forward<T>(h, w.blocks[i], cfg.heads, &f.enc_c[i], cfg.ln_eps);
  }
  f.enc_out = std::move(h);
  f.latent = layernorm_forward(f.enc_out, w.norm, cfg.ln_eps, &f.norm_c);

  // ---- Cross-contrast loss: a = mean of the first L/2 latents, b = the rest, g = all.
  const int64_t half = L / 2;
  f.cc_a = Tensor<T>({NM, D});
  f.cc_b = Tensor<T>({NM, D});
  f.cc_g = Tensor<T>({NM, D});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t d = 0; d < D; ++d) {
      T sa = 0, sb = 0;
      for (int64_t k = 0; k < half; ++k) sa += f.latent[(n * L + k) * D + d];
      for (int64_t k = half; k < L; ++k) sb += f.latent[(n * L + k) * D + d];
      f.cc_a[n * D + d] = sa / T(half);
      f.cc_b[n * D + d] = sb / T(L - half);
      f.cc_g[n * D + d] = (sa + sb) / T(L);
    }
  CMapR<T> A(f.cc_a.ptr(), NM, D), Bm(f.cc_b.ptr(), NM, D), G(f.cc_g.ptr(), NM, D);
  MatR<T> st = Bm * G.transpose(), ss = A * G.transpose(), si = A * Bm.transpose();
  softmax_rows(st);
  softmax_rows(ss);
  softmax_rows(si);
  f.loss_cc = mse_to_identity(st) + mse_to_identity(ss) + mse_to_identity(si);
  auto to_tensor = [NM](const MatR<T>& m) {
    Tensor<T> t({NM, NM});
    MapR<T>(t.ptr(), NM, NM) = m;
    return t;
  };
  f.sim_t = to_tensor(st);
  f.sim_s = to_tensor(ss);
  f.sim_inter = to_tensor(si);

  // ---- Decoder: embed(latent) and mask tokens placed on the TP×V grid by dec_src.
  f.pred = mae_decoder_forward(f.latent, f.dec_src, TP, V, w, cfg.heads, cfg.ln_eps, f.dec);

  // ---- Target: ewp of the frame differences of the kept joints (last frame 0), patchified;
  // released: even patches then odd patches (each time-major), corrected: grid order.
  f.motion = Tensor<T>(xk.shape);
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t + 1 < Tn; ++t)
      for (int64_t i = 0; i < V * C; ++i)
        f.motion[(n * Tn + t) * V * C + i] =
            xk[(n * Tn + t + 1) * V * C + i] - xk[(n * Tn + t) * V * C + i];
  f.motion_h = expmap_with_projection_forward(f.motion);
  const int64_t F = tp * C;
  f.target = Tensor<T>({NM, P, F});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v) {
        const int64_t row = target_row(corrected, t, v, V, TE);
        for (int64_t u = 0; u < tp; ++u)
          for (int64_t c = 0; c < C; ++c)
            f.target[(n * P + row) * F + u * C + c] =
                f.motion_h[((n * Tn + t * tp + u) * V + v) * C + c];
      }
  // Released quirk 3 is implicit: pred slot p, target row p and mask p are paired by index.
  f.loss_rec = recon_loss_forward(f.pred, f.target, f.mask, cfg.target_eps, f.target_norm);
  f.loss = f.loss_rec + f.loss_cc;
  return f;
}

template struct HacmWeights<float>;
template struct HacmWeights<double>;
template HacmForward<float> hacm_forward(const Tensor<float>&, const Tensor<float>&,
                                         const Tensor<float>&, const HacmWeights<float>&,
                                         const HacmConfig&, const std::vector<int64_t>*,
                                         const std::vector<int64_t>*);
template HacmForward<double> hacm_forward(const Tensor<double>&, const Tensor<double>&,
                                          const Tensor<double>&, const HacmWeights<double>&,
                                          const HacmConfig&, const std::vector<int64_t>*,
                                          const std::vector<int64_t>*);

}  // namespace hacm::ref
