// Pre-LN ViT block of HA-CM (spec §3.3), identical in encoder and decoder:
//   x = x + proj(MHA(LN1(x)));  x = x + fc2(GELU(fc1(LN2(x))))
// LayerNorm eps 1e-5, qkv reshaped (B, N, 3, H, C/H), softmax(q kᵀ · (C/H)^-0.5) over keys,
// exact-erf GELU, attention dropouts 0. Linear weights are PyTorch's [out, in]. Drop-path
// (stochastic depth, fine-tuning) enters as optional per-sample scales of the two residual
// branches.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "reference/checkpoint.h"
#include "reference/tensor.h"

namespace hacm::ref {

template <class T>
struct LinearParams {
  Tensor<T> w;  // [out, in]
  Tensor<T> b;  // [out] (empty = no bias)
};
template <class T>
struct LayerNormParams {
  Tensor<T> w, b;  // [C] each
};
template <class T>
struct BlockParams {
  LayerNormParams<T> norm1;
  LinearParams<T> qkv, proj;  // qkv [3C, C], proj [C, C]
  LayerNormParams<T> norm2;
  LinearParams<T> fc1, fc2;  // fc1 [hidden, C], fc2 [C, hidden]
};

// Parameters from a checkpoint under `prefix` (e.g. "blocks.0"); shapes are checked against C.
template <class T>
LinearParams<T> load_linear(const Checkpoint<T>& ck, const std::string& prefix, int64_t in = -1,
                            int64_t out = -1);
template <class T>
LayerNormParams<T> load_layernorm(const Checkpoint<T>& ck, const std::string& prefix,
                                  int64_t C = -1);
template <class T>
BlockParams<T> load_block(const Checkpoint<T>& ck, const std::string& prefix, int64_t C = -1);
// Zero tensors of the same shapes (gradient accumulators).
template <class T>
BlockParams<T> zeros_like(const BlockParams<T>& p);
// (state_dict name, tensor) lists, in PyTorch's parameter order: the `named()` of every model's
// weights is built from these, so the naming of a block lives in one place.
template <class T>
using NamedTensors = std::vector<std::pair<std::string, Tensor<T>*>>;
template <class T>
void append_named(NamedTensors<T>& r, const std::string& prefix, LinearParams<T>& p) {
  r.emplace_back(prefix + ".weight", &p.w);
  if (p.b.numel()) r.emplace_back(prefix + ".bias", &p.b);
}
template <class T>
void append_named(NamedTensors<T>& r, const std::string& prefix, LayerNormParams<T>& p) {
  r.emplace_back(prefix + ".weight", &p.w);
  r.emplace_back(prefix + ".bias", &p.b);
}
template <class T>
void append_named(NamedTensors<T>& r, const std::string& prefix, BlockParams<T>& b) {
  append_named(r, prefix + ".norm1", b.norm1);
  append_named(r, prefix + ".attn.qkv", b.qkv);
  append_named(r, prefix + ".attn.proj", b.proj);
  append_named(r, prefix + ".norm2", b.norm2);
  append_named(r, prefix + ".mlp.fc1", b.fc1);
  append_named(r, prefix + ".mlp.fc2", b.fc2);
}

// ---- The encoder every model here is built from, with the released state_dict names:
// token embedding (a stride-tp conv over [3, tp] patches) + positional and temporal
// embeddings + blocks + final norm (HA-CM and MAMP pretraining, the downstream encoder).
template <class T>
struct EncoderParams {
  Tensor<T> conv_w, conv_b;  // [D, 3, tp, 1], [D]
  Tensor<T> pos, temp;       // [1, 1, V, D], [1, TP, 1, D]
  std::vector<BlockParams<T>> blocks;
  LayerNormParams<T> norm;
};
// V < 0: any joint count (read from pos_embed). depth < 0: count "blocks.i" and store the count.
// Throws InputError naming the checkpoint and tensor on a missing tensor or a bad shape.
template <class T>
EncoderParams<T> load_encoder(const Checkpoint<T>& ck, int64_t V, int64_t& depth);
// Number of consecutive "<stem><i>.norm1.weight" in the checkpoint (stem "blocks.").
template <class T>
int64_t count_blocks(const Checkpoint<T>& ck, const std::string& stem);
template <class T>
void append_named(NamedTensors<T>& r, EncoderParams<T>& p) {
  r.emplace_back("joints_embed.proj.weight", &p.conv_w);
  r.emplace_back("joints_embed.proj.bias", &p.conv_b);
  r.emplace_back("pos_embed", &p.pos);
  r.emplace_back("temp_embed", &p.temp);
  for (size_t i = 0; i < p.blocks.size(); ++i)
    append_named(r, "blocks." + std::to_string(i), p.blocks[i]);
  append_named(r, "norm", p.norm);
}
// A copy of `w` with every tensor of w.named() zero (gradient accumulators).
template <class W>
W zeros_like_named(const W& w) {
  W z = w;
  for (auto& [name, t] : z.named()) std::fill(t->data.begin(), t->data.end(), 0);
  return z;
}

// Adds "prefix.norm1.weight", ... to a name -> tensor map (e.g. to export gradients).
template <class T>
void export_block(const BlockParams<T>& p, const std::string& prefix,
                  std::map<std::string, Tensor<T>>& out);

// ---- Linear: x [..., in] -> [..., out]
template <class T>
Tensor<T> linear_forward(const Tensor<T>& x, const LinearParams<T>& p);
// x [..., in] (forward input), gout [..., out] -> gx [..., in]; g.w, g.b accumulated.
template <class T>
Tensor<T> linear_backward(const Tensor<T>& x, const LinearParams<T>& p, const Tensor<T>& gout,
                          LinearParams<T>& g);

// ---- LayerNorm over the last dim: x [..., C] -> [..., C]; cache gets mean and 1/std per row.
template <class T>
struct LayerNormCache {
  std::vector<T> mean, rstd;  // [rows]
};
template <class T>
Tensor<T> layernorm_forward(const Tensor<T>& x, const LayerNormParams<T>& p, double eps,
                            LayerNormCache<T>* cache = nullptr);
// x [..., C] (forward input), gout [..., C] -> gx [..., C]; g.w, g.b accumulated.
template <class T>
Tensor<T> layernorm_backward(const Tensor<T>& x, const LayerNormParams<T>& p,
                             const LayerNormCache<T>& cache, const Tensor<T>& gout,
                             LayerNormParams<T>& g);

// ---- GELU (exact erf): elementwise.
template <class T>
Tensor<T> gelu_forward(const Tensor<T>& x);
template <class T>
Tensor<T> gelu_backward(const Tensor<T>& x, const Tensor<T>& gout);

// ---- Multi-head self-attention: x [B, N, C] -> [B, N, C].
template <class T>
struct AttentionCache {
  Tensor<T> qkv;    // [B, N, 3C]
  Tensor<T> probs;  // [B, H, N, N] softmax(q kᵀ · scale)
  Tensor<T> ctx;    // [B, N, C]  (P V, heads concatenated)
};
template <class T>
Tensor<T> attention_forward(const Tensor<T>& x, const LinearParams<T>& qkv,
                            const LinearParams<T>& proj, int heads,
                            AttentionCache<T>* cache = nullptr);
// The part between the two projections, for callers that hold the packed projection (the CUDA
// attention kernels' tests): qkv [B, N, 3C] ((q|k|v, head, C/H) per token) -> ctx [B, N, C] =
// softmax(q kᵀ · (C/H)^-0.5) v per head, heads side by side; probs [B, H, N, N] (resized).
template <class T>
Tensor<T> attention_core_forward(const Tensor<T>& qkv, int heads, Tensor<T>* probs);
// qkv [B, N, 3C], probs [B, H, N, N] from the forward, gctx [B, N, C] -> gqkv [B, N, 3C].
template <class T>
Tensor<T> attention_core_backward(const Tensor<T>& qkv, const Tensor<T>& probs,
                                  const Tensor<T>& gctx, int heads);
// x [B, N, C] (forward input), gout [B, N, C] -> gx [B, N, C]; g_qkv, g_proj accumulated.
template <class T>
Tensor<T> attention_backward(const Tensor<T>& x, const LinearParams<T>& qkv,
                             const LinearParams<T>& proj, int heads, const AttentionCache<T>& cache,
                             const Tensor<T>& gout, LinearParams<T>& g_qkv,
                             LinearParams<T>& g_proj);

// ---- Block: x [B, N, C] -> [B, N, C].
// Drop-path of one block: per-sample scales of the residual branches, [B] each, 0 (dropped) or
// 1/(1 − p) (kept), so x1 = x + attn·s_attn, y = x1 + mlp·s_mlp. Empty = 1 (eval, rate 0).
template <class T>
struct BranchScales {
  std::vector<T> attn, mlp;
};
template <class T>
struct BlockCache {
  LayerNormCache<T> ln1, ln2;
  Tensor<T> a_in;  // LN1(x)       [B, N, C]
  AttentionCache<T> attn;
  Tensor<T> x1;            // x + attn     [B, N, C]
  Tensor<T> m_in;          // LN2(x1)      [B, N, C]
  Tensor<T> h;             // fc1(m_in)    [B, N, hidden]
  Tensor<T> act;           // GELU(h)      [B, N, hidden]
  BranchScales<T> scales;  // the drop-path scales used (empty = none)
};
inline constexpr double kLayerNormEps = 1e-5;
// `scales` (optional): drop-path branch scales, kept in the cache for the backward.
template <class T>
Tensor<T> block_forward(const Tensor<T>& x, const BlockParams<T>& p, int heads,
                        BlockCache<T>* cache = nullptr, double eps = kLayerNormEps,
                        const BranchScales<T>* scales = nullptr);
// x [B, N, C] (forward input), gout [B, N, C] -> gx [B, N, C]; g accumulated. The drop-path
// scales of the forward come from the cache.
template <class T>
Tensor<T> block_backward(const Tensor<T>& x, const BlockParams<T>& p, int heads,
                         const BlockCache<T>& cache, const Tensor<T>& gout, BlockParams<T>& g,
                         double eps = kLayerNormEps);

}  // namespace hacm::ref
