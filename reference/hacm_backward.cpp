// Backward of the HA-CM pre-training loss (see hacm_model.h), both variants. Walks the forward of
// hacm_model.cpp in reverse, reusing its caches:
//   loss_rec -> pred -> decoder_pred, decoder_norm, decoder blocks, decoder pos/temp
//            -> un-shuffle (dec_src): embed rows and the mask token -> decoder_embed -> latent
//   loss_rec -> target_norm -> target -> ewp(motion) -> motion -> kept joints (target path)
//   loss_cc  -> softmax rows -> cc_a, cc_b, cc_g -> latent
//   latent -> norm -> encoder blocks -> enc_in -> Z_t / Z_s gathers -> grid -> ewp -> mc
//          -> pos, temp, conv (kept joints) -> x5.
// The criteria (scores, Gumbel selection) only feed argsorts: no gradient (l1/l2 stay zero, the
// null-joint embedding gets none).
#include <cmath>

#include "reference/hacm_model.h"
#include "reference/hyperbolic.h"
#include "reference/recon_loss.h"

namespace hacm::ref {
namespace {

// Softmax rows S of Z = X·Yᵀ, loss term mean((S − I)²): accumulates dX, dY.
template <class T>
void cc_term_backward(const Tensor<T>& S, const CMapR<T>& X, const CMapR<T>& Y, MatR<T>& dX,
                      MatR<T>& dY) {
  const int64_t n = S.dim(0);
  CMapR<T> s(S.ptr(), n, n);
  MatR<T> dS = s;
  dS.diagonal().array() -= T(1);
  dS *= T(2) / T(n * n);
  MatR<T> dZ(n, n);
  for (int64_t i = 0; i < n; ++i) {
    const T dot = dS.row(i).dot(s.row(i));
    dZ.row(i) = s.row(i).array() * (dS.row(i).array() - dot);
  }
  dX.noalias() += dZ * Y;
  dY.noalias() += dZ.transpose() * X;
}

}  // namespace

template <class T>
HacmGrads<T> hacm_backward(const HacmForward<T>& f, const Tensor<T>& x5, const HacmWeights<T>& w,
                           const HacmConfig& cfg) {
  const bool corrected = cfg.corrected();
  HacmGrads<T> g;
  g.w = w.zeros_like();
  HacmWeights<T>& gw = g.w;
  const Tensor<T>& xk = f.xk;
  const int64_t NM = xk.dim(0), Tn = xk.dim(1), V = xk.dim(2), C = xk.dim(3);
  const int64_t tp = w.conv_w.dim(2), TP = Tn / tp, D = w.conv_w.dim(0);
  const int64_t TE = (TP + 1) / 2, Lt = int64_t(f.grid_t.size()), Ls = int64_t(f.grid_s.size());
  const int64_t P = Lt + Ls, L = f.latent.dim(1), F = tp * C;
  const int64_t Kt = f.sel_t.keep, Ks = f.sel_s.keep;

  // ---- Masked reconstruction loss (normalised target, not detached).
  Tensor<T> g_pred, g_target;
  recon_loss_backward(f.pred, f.target, f.target_norm, f.mask, cfg.target_eps, g_pred, g_target);

  // ---- Target path: target rows -> motion_h -> motion -> kept joints.
  Tensor<T> g_motion_h(f.motion_h.shape);
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t < TP; ++t)
      for (int64_t v = 0; v < V; ++v) {
        const int64_t row = target_row(corrected, t, v, V, TE);
        for (int64_t u = 0; u < tp; ++u)
          for (int64_t c = 0; c < C; ++c)
            g_motion_h[((n * Tn + t * tp + u) * V + v) * C + c] =
                g_target[(n * P + row) * F + u * C + c];
      }
  Tensor<T> g_motion = expmap_with_projection_backward(f.motion, g_motion_h);
  Tensor<T> g_xk(xk.shape);
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t t = 0; t + 1 < Tn; ++t)
      for (int64_t i = 0; i < V * C; ++i) {
        const T gm = g_motion[(n * Tn + t) * V * C + i];
        g_xk[(n * Tn + t + 1) * V * C + i] += gm;
        g_xk[(n * Tn + t) * V * C + i] -= gm;
      }

  // ---- Decoder.
  Tensor<T> g_latent =
      mae_decoder_backward(f.latent, f.dec_src, TP, V, w, cfg.heads, cfg.ln_eps, f.dec, g_pred, gw);

  // ---- Cross-contrast loss.
  {
    CMapR<T> A(f.cc_a.ptr(), NM, D), Bm(f.cc_b.ptr(), NM, D), G(f.cc_g.ptr(), NM, D);
    MatR<T> dA = MatR<T>::Zero(NM, D), dB = MatR<T>::Zero(NM, D), dG = MatR<T>::Zero(NM, D);
    cc_term_backward(f.sim_t, Bm, G, dB, dG);
    cc_term_backward(f.sim_s, A, G, dA, dG);
    cc_term_backward(f.sim_inter, A, Bm, dA, dB);
    const int64_t half = L / 2;
    for (int64_t n = 0; n < NM; ++n)
      for (int64_t k = 0; k < L; ++k) {
        T* gl = g_latent.ptr() + (n * L + k) * D;
        for (int64_t d = 0; d < D; ++d)
          gl[d] += (k < half ? dA(n, d) / T(half) : dB(n, d) / T(L - half)) + dG(n, d) / T(L);
      }
  }

  // ---- Encoder.
  Tensor<T> g_h = layernorm_backward(f.enc_out, w.norm, f.norm_c, g_latent, gw.norm);
  for (size_t i = w.blocks.size(); i-- > 0;)
    g_h = block_backward<T>(f.enc_x[i], w.blocks[i], cfg.heads, f.enc_c[i], g_h, gw.blocks[i],
                            cfg.ln_eps);
  // enc_in = [Z_t[keep_t], Z_s[keep_s]] -> grid cells of H.
  Tensor<T> g_H(f.mc.shape);
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t k = 0; k < Kt + Ks; ++k) {
      const int64_t slot = k < Kt ? f.grid_t[size_t(f.sel_t.ids_keep[size_t(n * Kt + k)])]
                                  : f.grid_s[size_t(f.sel_s.ids_keep[size_t(n * Ks + k - Kt)])];
      T* to = g_H.ptr() + (n * TP * V + slot) * D;
      const T* from = g_h.ptr() + (n * L + k) * D;
      for (int64_t d = 0; d < D; ++d) to[d] += from[d];
    }
  Tensor<T> g_mc = expmap_with_projection_backward(f.mc, g_H);
  Tensor<T> g_E = add_pos_temp_backward(g_mc, gw.pos, gw.temp);
  Tensor<T> g_xk_emb = patch_embed_backward(xk, w.conv_w, g_E, gw.conv_w, gw.conv_b);
  for (int64_t i = 0; i < g_xk.numel(); ++i) g_xk[i] += g_xk_emb[i];

  // ---- Input.
  g.x5 = to_person_major_backward(select_joints_backward(g_xk, cfg.kept, x5.dim(3)), f.persons);
  (void)Ls;
  return g;
}

template HacmGrads<float> hacm_backward(const HacmForward<float>&, const Tensor<float>&,
                                        const HacmWeights<float>&, const HacmConfig&);
template HacmGrads<double> hacm_backward(const HacmForward<double>&, const Tensor<double>&,
                                         const HacmWeights<double>&, const HacmConfig&);

}  // namespace hacm::ref
