// HA-CM downstream encoder (model/transformer.py of the release; every token, no masking) and the
// two heads, with backwards for training them. Twin of accelerated/downstream.h.
//   x5 [N,3,T,25,M] -> kept joints -> conv + pos + temp -> ewp (HA-CM; MAMP: none) -> blocks ->
//   norm -> tokens [N, M, TP, V, D]
//   linear probe: mean over M, TP, V -> [N, D] -> (BatchNorm1d(D, affine=False, eps 1e-6)) -> fc
//   fine-tune: mean over TP -> [N, M, V·D] (J-major) -> mean over M -> fc1 -> BatchNorm1d (eps
//   1e-5, affine) -> ReLU -> fc2.
// Training regularisers of fine-tuning: drop-path on every residual branch of the blocks (block i
// at rate r·i/(depth − 1), torch.linspace(0, r, depth), per sample of the N·M batch) and dropout
// on the tokens before the head. Their masks are inputs (drawn from our Rng by the helpers below,
// or fixed by tests); without them the forward is the eval forward.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "reference/checkpoint.h"
#include "reference/embed.h"
#include "reference/transformer.h"

namespace hacm::ref {

struct EncoderConfig {
  int heads = 8;
  int64_t depth = -1;                             // -1: count blocks.i in the weights
  std::vector<int64_t> kept = ntu_kept_joints();  // empty: all joints (MAMP)
  bool hyperbolic = true;
  double ln_eps = kLayerNormEps;
};

template <class T>
struct EncoderWeights : EncoderParams<T> {
  static EncoderWeights load(const Checkpoint<T>& ck, EncoderConfig& cfg);
  EncoderWeights zeros_like() const;
  std::vector<std::pair<std::string, Tensor<T>*>> named();
};

template <class T>
struct EncoderCache {
  Tensor<T> xk;  // [NM, T, V, 3]
  Tensor<T> mc;  // [NM, TP, V, D] before ewp
  std::vector<Tensor<T>> x;
  std::vector<BlockCache<T>> c;
  Tensor<T> out;  // before norm
  LayerNormCache<T> norm_c;
};
// x5 [N, 3, T, J, M] -> tokens [N, M, TP, V, D]. `drop` (optional, training): one BranchScales
// per block, each [N·M] (person-major samples, n·M + m), e.g. from drop_path_scales.
template <class T>
Tensor<T> encoder_forward(const Tensor<T>& x5, const EncoderWeights<T>& w, const EncoderConfig& cfg,
                          EncoderCache<T>* cache = nullptr,
                          const std::vector<BranchScales<T>>* drop = nullptr);
// g_tokens [N, M, TP, V, D] -> parameter gradients accumulated into g (no input gradient). The
// drop-path scales of the forward come from the cache.
template <class T>
void encoder_backward(const EncoderWeights<T>& w, const EncoderConfig& cfg,
                      const EncoderCache<T>& cache, const Tensor<T>& g_tokens,
                      EncoderWeights<T>& g);

// ---- Drop-path and dropout masks (drawn from our Rng; tests may build their own).
// Per-block drop-path scales for `depth` blocks over B samples: block i has rate
// p_i = rate·i/(depth − 1) (0 for depth 1, as torch.linspace(0, rate, 1)); for each block the
// attention branch's B draws, then the MLP branch's: sample kept (scale 1/(1 − p_i)) iff
// rng.uniform() >= p_i, else 0. A block with p_i = 0 draws nothing and gets empty scales.
template <class T>
std::vector<BranchScales<T>> drop_path_scales(int64_t depth, int64_t B, double rate, Rng& rng);
// Dropout keep mask of `shape`: element kept (1/(1 − p)) iff rng.uniform() >= p, else 0;
// p = 0: all ones, no draws.
template <class T>
Tensor<T> dropout_mask(const std::vector<int64_t>& shape, double p, Rng& rng);
// x [...] ∘ mask [same shape] (mask from dropout_mask: the 1/(1 − p) is in it).
template <class T>
Tensor<T> dropout_forward(const Tensor<T>& x, const Tensor<T>& mask);
// gout [...] -> gx = gout ∘ mask.
template <class T>
Tensor<T> dropout_backward(const Tensor<T>& mask, const Tensor<T>& gout);

// ---- BatchNorm1d over [N, C]. Empty weight/bias = affine=False.
template <class T>
struct BatchNormParams {
  Tensor<T> w, b;                       // [C] each or empty
  Tensor<T> running_mean, running_var;  // [C]
};
template <class T>
struct BatchNormCache {
  std::vector<T> mean, rstd;  // [C] statistics used
  Tensor<T> xhat;             // [N, C]
};
// batch_stats: normalise with the batch mean and biased variance (training), else the running
// statistics. momentum > 0 with batch_stats also updates the running statistics in place
// (PyTorch: unbiased variance, r = (1 − m)·r + m·batch).
template <class T>
Tensor<T> batchnorm_forward(const Tensor<T>& x, BatchNormParams<T>& p, double eps, bool batch_stats,
                            double momentum = 0, BatchNormCache<T>* cache = nullptr);
// gout [N, C] -> gx [N, C]; g.w, g.b accumulated when affine. Batch statistics only when
// batch_stats (running statistics are constants).
template <class T>
Tensor<T> batchnorm_backward(const BatchNormParams<T>& p, const BatchNormCache<T>& cache,
                             bool batch_stats, const Tensor<T>& gout, BatchNormParams<T>& g);

// ---- Heads.
template <class T>
struct LinprobeHead {
  bool bn = true;  // main_linprobe's BatchNorm1d(affine=False, eps 1e-6) before the fc
  BatchNormParams<T> norm;
  LinearParams<T> fc;  // [classes, D]
};
template <class T>
struct FinetuneHead {
  LinearParams<T> fc1;  // [hidden, V·D]
  BatchNormParams<T> bn;
  LinearParams<T> fc2;  // [classes, hidden]
};
inline constexpr double kLinprobeBnEps = 1e-6, kFinetuneBnEps = 1e-5;

// tokens [N, M, TP, V, D] -> [N, D]
template <class T>
Tensor<T> linprobe_features(const Tensor<T>& tokens);
// tokens [N, M, TP, V, D] -> [N, V·D] (mean over TP, J-major flatten, mean over M)
template <class T>
Tensor<T> finetune_features(const Tensor<T>& tokens);
// g_feat [N, V·D] -> g_tokens [N, M, TP, V, D]
template <class T>
Tensor<T> finetune_features_backward(const Tensor<T>& g_feat, const std::vector<int64_t>& shape);

template <class T>
struct HeadCache {
  Tensor<T> feat, h1, bn_out;  // head input, fc1 output (finetune), after BN
  BatchNormCache<T> bn;
};
// feat [N, D] -> logits [N, classes]
template <class T>
Tensor<T> linprobe_head_forward(const Tensor<T>& feat, LinprobeHead<T>& h, bool batch_stats,
                                double momentum = 0, HeadCache<T>* cache = nullptr);
// g_logits [N, classes] -> g_feat [N, D]; g.fc accumulated.
template <class T>
Tensor<T> linprobe_head_backward(const LinprobeHead<T>& h, const HeadCache<T>& cache,
                                 bool batch_stats, const Tensor<T>& g_logits, LinprobeHead<T>& g);
// feat [N, V·D] -> logits
template <class T>
Tensor<T> finetune_head_forward(const Tensor<T>& feat, FinetuneHead<T>& h, bool batch_stats,
                                double momentum = 0, HeadCache<T>* cache = nullptr);
template <class T>
Tensor<T> finetune_head_backward(const FinetuneHead<T>& h, const HeadCache<T>& cache,
                                 bool batch_stats, const Tensor<T>& g_logits, FinetuneHead<T>& g);

// Heads from weights_heads.npz-style names: `<prefix>fc.0.running_*` / `fc.1.*` (linprobe) and
// `<prefix>fc1.*`, `bn.*`, `fc2.*` (finetune).
template <class T>
LinprobeHead<T> load_linprobe_head(const Checkpoint<T>& ck, const std::string& prefix);
template <class T>
FinetuneHead<T> load_finetune_head(const Checkpoint<T>& ck, const std::string& prefix);

// Cross-entropy of logits [N, K] with integer labels, label smoothing s (timm
// LabelSmoothingCrossEntropy: (1 − s)·nll + s·mean(−log p)), mean over N. g_logits gets ∂/∂logits.
template <class T>
T cross_entropy(const Tensor<T>& logits, const std::vector<int64_t>& labels, double smoothing,
                Tensor<T>* g_logits = nullptr);

}  // namespace hacm::ref
