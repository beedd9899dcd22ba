// MAE decoder of the two pretraining models (HA-CM spec §3.5; MAMP): the encoder's latents are
// embedded, placed with a shared mask token on the TP×V token grid (the un-shuffle), given the
// decoder's positional and temporal embeddings, run through the decoder blocks and norm, and
// projected to tp·3 values per token.
//   latent [NM, K, D] -> decoder_embed -> rows [NM, P = TP·V, Dd] (row p = latent src[p] or the
//   mask token) -> + decoder_pos[v] + decoder_temp[τ] -> blocks -> decoder_norm -> pred [NM, P,
//   tp·3]
#pragma once
#include <string>
#include <vector>

#include "reference/checkpoint.h"
#include "reference/tensor.h"
#include "reference/transformer.h"

namespace hacm::ref {

// MAE decoder of the two pretraining models.
template <class T>
struct DecoderParams {
  LinearParams<T> decoder_embed;  // [Dd, D]
  Tensor<T> mask_token;           // [1, 1, Dd]
  std::vector<BlockParams<T>> decoder_blocks;
  LayerNormParams<T> decoder_norm;
  Tensor<T> decoder_pos, decoder_temp;  // [1, 1, V, Dd], [1, TP, 1, Dd]
  LinearParams<T> decoder_pred;         // [tp·3, Dd]
};
// Shapes checked against the encoder's (D, V, TP, tp); the mask token is "mask_token_t" in HA-CM
// and "mask_token" in MAMP. decoder_depth < 0: count "decoder_blocks.j".
template <class T>
DecoderParams<T> load_decoder(const Checkpoint<T>& ck, const EncoderParams<T>& enc,
                              const std::string& mask_token_name, int64_t& decoder_depth);
template <class T>
DecoderParams<T> load_decoder(const Checkpoint<T>& ck, const EncoderParams<T>& enc,
                              const std::string& mask_token_name, int64_t& decoder_depth);
template <class T>
void append_named(NamedTensors<T>& r, DecoderParams<T>& p, const std::string& mask_token_name) {
  append_named(r, "decoder_embed", p.decoder_embed);
  r.emplace_back(mask_token_name, &p.mask_token);
  for (size_t j = 0; j < p.decoder_blocks.size(); ++j)
    append_named(r, "decoder_blocks." + std::to_string(j), p.decoder_blocks[j]);
  append_named(r, "decoder_norm", p.decoder_norm);
  r.emplace_back("decoder_pos_embed", &p.decoder_pos);
  r.emplace_back("decoder_temp_embed", &p.decoder_temp);
  append_named(r, "decoder_pred", p.decoder_pred);
}

// Forward activations kept for the backward.
template <class T>
struct DecoderCache {
  std::vector<Tensor<T>> x;  // input of each block [NM, P, Dd]
  std::vector<BlockCache<T>> c;
  Tensor<T> out, normed;  // before / after decoder_norm
  LayerNormCache<T> norm_c;
};

// latent [NM, K, D]; src [NM·P]: latent index of decoder row p of sample n (>= K: the mask
// token). Returns pred [NM, P, tp·3].
template <class T>
Tensor<T> mae_decoder_forward(const Tensor<T>& latent, const std::vector<int64_t>& src, int64_t TP,
                              int64_t V, const DecoderParams<T>& w, int heads, double ln_eps,
                              DecoderCache<T>& cache);
// g_pred [NM, P, tp·3] -> g_latent [NM, K, D]; parameter gradients accumulated into g.
template <class T>
Tensor<T> mae_decoder_backward(const Tensor<T>& latent, const std::vector<int64_t>& src, int64_t TP,
                               int64_t V, const DecoderParams<T>& w, int heads, double ln_eps,
                               const DecoderCache<T>& cache, const Tensor<T>& g_pred,
                               DecoderParams<T>& g);

}  // namespace hacm::ref
