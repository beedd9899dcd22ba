// MAE decoder of the pretraining models (see decoder.h).
#include "reference/decoder.h"

#include <algorithm>

#include "reference/embed.h"

namespace hacm::ref {

template <class T>
DecoderParams<T> load_decoder(const Checkpoint<T>& ck, const EncoderParams<T>& enc,
                              const std::string& mask_token_name, int64_t& decoder_depth) {
  const int64_t D = enc.conv_w.dim(0), V = enc.pos.dim(2), TP = enc.temp.dim(1);
  DecoderParams<T> w;
  w.decoder_embed = load_linear(ck, "decoder_embed", D);
  const int64_t Dd = w.decoder_embed.w.dim(0);
  w.mask_token = ck.at(mask_token_name, {1, 1, Dd});
  if (decoder_depth < 0) decoder_depth = count_blocks(ck, "decoder_blocks.");
  for (int64_t j = 0; j < decoder_depth; ++j)
    w.decoder_blocks.push_back(load_block(ck, "decoder_blocks." + std::to_string(j), Dd));
  w.decoder_norm = load_layernorm(ck, "decoder_norm", Dd);
  w.decoder_pos = ck.at("decoder_pos_embed", {1, 1, V, Dd});
  w.decoder_temp = ck.at("decoder_temp_embed", {1, TP, 1, Dd});
  w.decoder_pred = load_linear(ck, "decoder_pred", Dd, enc.conv_w.dim(2) * enc.conv_w.dim(1));
  return w;
}

template <class T>
Tensor<T> mae_decoder_forward(const Tensor<T>& latent, const std::vector<int64_t>& src, int64_t TP,
                              int64_t V, const DecoderParams<T>& w, int heads, double ln_eps,
                              DecoderCache<T>& cache) {
  Tensor<T> e = linear_forward(latent, w.decoder_embed);  // [NM, K, Dd]
  const int64_t NM = e.dim(0), K = e.dim(1), Dd = e.dim(2), P = TP * V;
  Tensor<T> dx({NM, P, Dd});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t p = 0; p < P; ++p) {
      const int64_t s = src[size_t(n * P + p)];
      const T* from = s < K ? e.ptr() + (n * K + s) * Dd : w.mask_token.ptr();
      std::copy_n(from, Dd, dx.ptr() + (n * P + p) * Dd);
    }
  dx = add_pos_temp_forward(dx.reshaped({NM, TP, V, Dd}), w.decoder_pos, w.decoder_temp)
           .reshaped({NM, P, Dd});
  cache.x.clear();
  cache.c.assign(w.decoder_blocks.size(), BlockCache<T>{});
  for (size_t j = 0; j < w.decoder_blocks.size(); ++j) {
    cache.x.push_back(dx);
    dx = block_forward<T>(dx, w.decoder_blocks[j], heads, &cache.c[j], ln_eps);
  }
  cache.out = std::move(dx);
  cache.normed = layernorm_forward(cache.out, w.decoder_norm, ln_eps, &cache.norm_c);
  return linear_forward(cache.normed, w.decoder_pred);
}

template <class T>
Tensor<T> mae_decoder_backward(const Tensor<T>& latent, const std::vector<int64_t>& src, int64_t TP,
                               int64_t V, const DecoderParams<T>& w, int heads, double ln_eps,
                               const DecoderCache<T>& cache, const Tensor<T>& g_pred,
                               DecoderParams<T>& g) {
  Tensor<T> g_dn = linear_backward(cache.normed, w.decoder_pred, g_pred, g.decoder_pred);
  Tensor<T> g_dx =
      layernorm_backward(cache.out, w.decoder_norm, cache.norm_c, g_dn, g.decoder_norm);
  for (size_t j = w.decoder_blocks.size(); j-- > 0;)
    g_dx = block_backward<T>(cache.x[j], w.decoder_blocks[j], heads, cache.c[j], g_dx,
                             g.decoder_blocks[j], ln_eps);
  const int64_t NM = latent.dim(0), K = latent.dim(1), Dd = g_dx.dim(2), P = TP * V;
  g_dx = add_pos_temp_backward(g_dx.reshaped({NM, TP, V, Dd}), g.decoder_pos, g.decoder_temp)
             .reshaped({NM, P, Dd});
  // Un-shuffle: scatter decoder rows back to the embedded latents and the shared mask token.
  Tensor<T> g_e({NM, K, Dd});
  for (int64_t n = 0; n < NM; ++n)
    for (int64_t p = 0; p < P; ++p) {
      const int64_t s = src[size_t(n * P + p)];
      T* to = s < K ? g_e.ptr() + (n * K + s) * Dd : g.mask_token.ptr();
      const T* from = g_dx.ptr() + (n * P + p) * Dd;
      for (int64_t d = 0; d < Dd; ++d) to[d] += from[d];
    }
  return linear_backward(latent, w.decoder_embed, g_e, g.decoder_embed);
}

#define HACM_INSTANTIATE(T)                                                                      \
  template DecoderParams<T> load_decoder(const Checkpoint<T>&, const EncoderParams<T>&,          \
                                         const std::string&, int64_t&);                          \
  template Tensor<T> mae_decoder_forward(const Tensor<T>&, const std::vector<int64_t>&, int64_t, \
                                         int64_t, const DecoderParams<T>&, int, double,          \
                                         DecoderCache<T>&);                                      \
  template Tensor<T> mae_decoder_backward(                                                       \
      const Tensor<T>&, const std::vector<int64_t>&, int64_t, int64_t, const DecoderParams<T>&,  \
      int, double, const DecoderCache<T>&, const Tensor<T>&, DecoderParams<T>&);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
