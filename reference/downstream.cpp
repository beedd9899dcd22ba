// Downstream encoder, BatchNorm1d, heads and cross-entropy (see downstream.h).
#include "reference/downstream.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "reference/hyperbolic.h"

namespace hacm::ref {

template <class T>
EncoderWeights<T> EncoderWeights<T>::load(const Checkpoint<T>& ck, EncoderConfig& cfg) {
  EncoderWeights<T> w;
  static_cast<EncoderParams<T>&>(w) = load_encoder(ck, -1, cfg.depth);
  return w;
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>*>> EncoderWeights<T>::named() {
  NamedTensors<T> r;
  append_named(r, static_cast<EncoderParams<T>&>(*this));
  return r;
}

template <class T>
EncoderWeights<T> EncoderWeights<T>::zeros_like() const {
  return zeros_like_named(*this);
}

template <class T>
Tensor<T> encoder_forward(const Tensor<T>& x5, const EncoderWeights<T>& w, const EncoderConfig& cfg,
                          EncoderCache<T>* cache, const std::vector<BranchScales<T>>* drop) {
  EncoderCache<T> local;
  EncoderCache<T>& c = cache ? *cache : local;
  const int64_t N = x5.dim(0), M = x5.dim(4);
  Tensor<T> x = to_person_major_forward(x5);
  c.xk = cfg.kept.empty() ? x : select_joints_forward(x, cfg.kept);
  c.mc = add_pos_temp_forward(patch_embed_forward(c.xk, w.conv_w, w.conv_b), w.pos, w.temp);
  const int64_t NM = c.mc.dim(0), TP = c.mc.dim(1), V = c.mc.dim(2), D = c.mc.dim(3);
  Tensor<T> h =
      (cfg.hyperbolic ? expmap_with_projection_forward(c.mc) : c.mc).reshaped({NM, TP * V, D});
  if (drop && drop->size() != w.blocks.size())
    throw std::invalid_argument("encoder_forward: " + std::to_string(drop->size()) +
                                " drop-path entries for " + std::to_string(w.blocks.size()) +
                                " blocks");
  c.x.clear();
  c.c.assign(w.blocks.size(), BlockCache<T>());
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    c.x.push_back(h);
    h = block_forward<T>(h, w.blocks[i], cfg.heads, &c.c[i], cfg.ln_eps,
                         drop ? &(*drop)[i] : nullptr);
  }
  c.out = std::move(h);
  return layernorm_forward(c.out, w.norm, cfg.ln_eps, &c.norm_c).reshaped({N, M, TP, V, D});
}

template <class T>
void encoder_backward(const EncoderWeights<T>& w, const EncoderConfig& cfg,
                      const EncoderCache<T>& c, const Tensor<T>& g_tokens, EncoderWeights<T>& g) {
  const int64_t NM = c.mc.dim(0), TP = c.mc.dim(1), V = c.mc.dim(2), D = c.mc.dim(3);
  Tensor<T> gh =
      layernorm_backward(c.out, w.norm, c.norm_c, g_tokens.reshaped({NM, TP * V, D}), g.norm);
  for (size_t i = w.blocks.size(); i-- > 0;)
    gh = block_backward<T>(c.x[i], w.blocks[i], cfg.heads, c.c[i], gh, g.blocks[i], cfg.ln_eps);
  gh = gh.reshaped({NM, TP, V, D});
  if (cfg.hyperbolic) gh = expmap_with_projection_backward(c.mc, gh);
  gh = add_pos_temp_backward(gh, g.pos, g.temp);
  patch_embed_backward(c.xk, w.conv_w, gh, g.conv_w, g.conv_b);
}

// ---------------------------------------------------------------------------------------------
template <class T>
std::vector<BranchScales<T>> drop_path_scales(int64_t depth, int64_t B, double rate, Rng& rng) {
  std::vector<BranchScales<T>> r(static_cast<size_t>(std::max<int64_t>(depth, 0)));
  for (int64_t i = 0; i < depth; ++i) {
    const double p = depth > 1 ? rate * double(i) / double(depth - 1) : 0.0;
    if (p <= 0) continue;
    const T keep = T(1.0 / (1.0 - p));
    for (std::vector<T>* s : {&r[size_t(i)].attn, &r[size_t(i)].mlp}) {
      s->resize(size_t(B));
      for (auto& v : *s) v = rng.uniform() >= p ? keep : T(0);
    }
  }
  return r;
}

template <class T>
Tensor<T> dropout_mask(const std::vector<int64_t>& shape, double p, Rng& rng) {
  Tensor<T> m(shape, T(1));
  if (p <= 0) return m;
  const T keep = T(1.0 / (1.0 - p));
  for (auto& v : m.data) v = rng.uniform() >= p ? keep : T(0);
  return m;
}

template <class T>
Tensor<T> dropout_forward(const Tensor<T>& x, const Tensor<T>& mask) {
  if (!x.same_shape(mask))
    throw std::invalid_argument("dropout_forward: x " + shape_str(x.shape) + " vs mask " +
                                shape_str(mask.shape));
  Tensor<T> y = x;
  for (int64_t i = 0; i < y.numel(); ++i) y[i] *= mask[i];
  return y;
}

template <class T>
Tensor<T> dropout_backward(const Tensor<T>& mask, const Tensor<T>& gout) {
  return dropout_forward(gout, mask);  // linear in x: the same elementwise product
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> batchnorm_forward(const Tensor<T>& x, BatchNormParams<T>& p, double eps, bool batch_stats,
                            double momentum, BatchNormCache<T>* cache) {
  const int64_t N = x.dim(0), C = x.dim(1);
  BatchNormCache<T> local;
  BatchNormCache<T>& c = cache ? *cache : local;
  c.mean.assign(size_t(C), T(0));
  c.rstd.assign(size_t(C), T(0));
  c.xhat = Tensor<T>(x.shape);
  Tensor<T> y(x.shape);
  for (int64_t j = 0; j < C; ++j) {
    T mean, var;
    if (batch_stats) {
      mean = 0;
      for (int64_t i = 0; i < N; ++i) mean += x[i * C + j];
      mean /= T(N);
      var = 0;
      for (int64_t i = 0; i < N; ++i) var += (x[i * C + j] - mean) * (x[i * C + j] - mean);
      if (momentum > 0) {
        p.running_mean[j] = T(1 - momentum) * p.running_mean[j] + T(momentum) * mean;
        p.running_var[j] = T(1 - momentum) * p.running_var[j] + T(momentum) * var / T(N - 1);
      }
      var /= T(N);
    } else {
      mean = p.running_mean[j];
      var = p.running_var[j];
    }
    const T rstd = T(1) / std::sqrt(var + T(eps));
    c.mean[size_t(j)] = mean;
    c.rstd[size_t(j)] = rstd;
    for (int64_t i = 0; i < N; ++i) {
      const T xh = (x[i * C + j] - mean) * rstd;
      c.xhat[i * C + j] = xh;
      y[i * C + j] = p.w.numel() ? xh * p.w[j] + p.b[j] : xh;
    }
  }
  return y;
}

template <class T>
Tensor<T> batchnorm_backward(const BatchNormParams<T>& p, const BatchNormCache<T>& c,
                             bool batch_stats, const Tensor<T>& gout, BatchNormParams<T>& g) {
  const int64_t N = gout.dim(0), C = gout.dim(1);
  if (p.w.numel() && g.w.numel() == 0) g.w = Tensor<T>(p.w.shape), g.b = Tensor<T>(p.b.shape);
  Tensor<T> gx(gout.shape);
  for (int64_t j = 0; j < C; ++j) {
    T sg = 0, sgx = 0;
    const T gamma = p.w.numel() ? p.w[j] : T(1);
    for (int64_t i = 0; i < N; ++i) {
      sg += gout[i * C + j];
      sgx += gout[i * C + j] * c.xhat[i * C + j];
    }
    if (p.w.numel()) g.w[j] += sgx, g.b[j] += sg;
    const T r = c.rstd[size_t(j)];
    for (int64_t i = 0; i < N; ++i) {
      const T gxh = gout[i * C + j] * gamma;
      // Batch statistics: gx = r·(gxh − mean(gxh) − xhat·mean(gxh·xhat)).
      gx[i * C + j] =
          batch_stats ? gamma * r * (gout[i * C + j] - sg / T(N) - c.xhat[i * C + j] * sgx / T(N))
                      : gxh * r;
    }
  }
  return gx;
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> linprobe_features(const Tensor<T>& tok) {
  const int64_t N = tok.dim(0), D = tok.dim(4), per = tok.numel() / (N * D);
  Tensor<T> f({N, D});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < per; ++r)
      for (int64_t d = 0; d < D; ++d) f[n * D + d] += tok[(n * per + r) * D + d];
  for (auto& v : f.data) v /= T(per);
  return f;
}

template <class T>
Tensor<T> finetune_features(const Tensor<T>& tok) {
  const int64_t N = tok.dim(0), M = tok.dim(1), TP = tok.dim(2), V = tok.dim(3), D = tok.dim(4);
  Tensor<T> f({N, V * D});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t t = 0; t < TP; ++t)
        for (int64_t i = 0; i < V * D; ++i)
          f[n * V * D + i] += tok[((n * M + m) * TP + t) * V * D + i];
  for (auto& v : f.data) v /= T(M * TP);
  return f;
}

template <class T>
Tensor<T> finetune_features_backward(const Tensor<T>& gf, const std::vector<int64_t>& shape) {
  const int64_t N = shape[0], M = shape[1], TP = shape[2], VD = shape[3] * shape[4];
  Tensor<T> g(shape);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t t = 0; t < TP; ++t)
        for (int64_t i = 0; i < VD; ++i)
          g[((n * M + m) * TP + t) * VD + i] = gf[n * VD + i] / T(M * TP);
  return g;
}

template <class T>
Tensor<T> linprobe_head_forward(const Tensor<T>& feat, LinprobeHead<T>& h, bool batch_stats,
                                double momentum, HeadCache<T>* cache) {
  HeadCache<T> local;
  HeadCache<T>& c = cache ? *cache : local;
  c.feat = feat;
  c.bn_out =
      h.bn ? batchnorm_forward(feat, h.norm, kLinprobeBnEps, batch_stats, momentum, &c.bn) : feat;
  return linear_forward(c.bn_out, h.fc);
}

template <class T>
Tensor<T> linprobe_head_backward(const LinprobeHead<T>& h, const HeadCache<T>& c, bool batch_stats,
                                 const Tensor<T>& g_logits, LinprobeHead<T>& g) {
  Tensor<T> gb = linear_backward(c.bn_out, h.fc, g_logits, g.fc);
  if (!h.bn) return gb;
  return batchnorm_backward(h.norm, c.bn, batch_stats, gb, g.norm);
}

template <class T>
Tensor<T> finetune_head_forward(const Tensor<T>& feat, FinetuneHead<T>& h, bool batch_stats,
                                double momentum, HeadCache<T>* cache) {
  HeadCache<T> local;
  HeadCache<T>& c = cache ? *cache : local;
  c.feat = feat;
  c.h1 = linear_forward(feat, h.fc1);
  c.bn_out = batchnorm_forward(c.h1, h.bn, kFinetuneBnEps, batch_stats, momentum, &c.bn);
  Tensor<T> r = c.bn_out;
  for (auto& v : r.data) v = std::max(v, T(0));
  return linear_forward(r, h.fc2);
}

template <class T>
Tensor<T> finetune_head_backward(const FinetuneHead<T>& h, const HeadCache<T>& c, bool batch_stats,
                                 const Tensor<T>& g_logits, FinetuneHead<T>& g) {
  Tensor<T> r = c.bn_out;
  for (auto& v : r.data) v = std::max(v, T(0));
  Tensor<T> gr = linear_backward(r, h.fc2, g_logits, g.fc2);
  for (int64_t i = 0; i < gr.numel(); ++i)
    if (!(c.bn_out[i] > T(0))) gr[i] = 0;
  Tensor<T> gh = batchnorm_backward(h.bn, c.bn, batch_stats, gr, g.bn);
  return linear_backward(c.feat, h.fc1, gh, g.fc1);
}

template <class T>
LinprobeHead<T> load_linprobe_head(const Checkpoint<T>& ck, const std::string& pre) {
  LinprobeHead<T> h;
  h.fc = load_linear(ck, pre + "fc.1");
  const int64_t D = h.fc.w.dim(1);
  h.bn = ck.has(pre + "fc.0.running_mean");
  if (h.bn) {
    h.norm.running_mean = ck.at(pre + "fc.0.running_mean", {D});
    h.norm.running_var = ck.at(pre + "fc.0.running_var", {D});
  }
  return h;
}

template <class T>
FinetuneHead<T> load_finetune_head(const Checkpoint<T>& ck, const std::string& pre) {
  FinetuneHead<T> h;
  h.fc1 = load_linear(ck, pre + "fc1");
  const int64_t H = h.fc1.w.dim(0);
  h.bn.w = ck.at(pre + "bn.weight", {H});
  h.bn.b = ck.at(pre + "bn.bias", {H});
  h.bn.running_mean = ck.at(pre + "bn.running_mean", {H});
  h.bn.running_var = ck.at(pre + "bn.running_var", {H});
  h.fc2 = load_linear(ck, pre + "fc2", H);
  return h;
}

template <class T>
T cross_entropy(const Tensor<T>& logits, const std::vector<int64_t>& labels, double s,
                Tensor<T>* g) {
  const int64_t N = logits.dim(0), K = logits.dim(1);
  if (g) *g = Tensor<T>(logits.shape);
  T total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* z = logits.ptr() + n * K;
    const T mx = *std::max_element(z, z + K);
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    const T lse = mx + std::log(sum);
    T mean_nll = 0;
    for (int64_t k = 0; k < K; ++k) mean_nll += lse - z[k];
    mean_nll /= T(K);
    const int64_t y = labels[size_t(n)];
    total += T(1 - s) * (lse - z[y]) + T(s) * mean_nll;
    if (g)
      for (int64_t k = 0; k < K; ++k) {
        const T p = std::exp(z[k] - lse);
        (*g)[n * K + k] = (p - T(1 - s) * T(k == y) - T(s) / T(K)) / T(N);
      }
  }
  return total / T(N);
}

#define HACM_INSTANTIATE(T)                                                                        \
  template struct EncoderWeights<T>;                                                               \
  template Tensor<T> encoder_forward(const Tensor<T>&, const EncoderWeights<T>&,                   \
                                     const EncoderConfig&, EncoderCache<T>*,                       \
                                     const std::vector<BranchScales<T>>*);                         \
  template std::vector<BranchScales<T>> drop_path_scales(int64_t, int64_t, double, Rng&);          \
  template Tensor<T> dropout_mask(const std::vector<int64_t>&, double, Rng&);                      \
  template Tensor<T> dropout_forward(const Tensor<T>&, const Tensor<T>&);                          \
  template Tensor<T> dropout_backward(const Tensor<T>&, const Tensor<T>&);                         \
  template void encoder_backward(const EncoderWeights<T>&, const EncoderConfig&,                   \
                                 const EncoderCache<T>&, const Tensor<T>&, EncoderWeights<T>&);    \
  template Tensor<T> batchnorm_forward(const Tensor<T>&, BatchNormParams<T>&, double, bool,        \
                                       double, BatchNormCache<T>*);                                \
  template Tensor<T> batchnorm_backward(const BatchNormParams<T>&, const BatchNormCache<T>&, bool, \
                                        const Tensor<T>&, BatchNormParams<T>&);                    \
  template Tensor<T> linprobe_features(const Tensor<T>&);                                          \
  template Tensor<T> finetune_features(const Tensor<T>&);                                          \
  template Tensor<T> finetune_features_backward(const Tensor<T>&, const std::vector<int64_t>&);    \
  template Tensor<T> linprobe_head_forward(const Tensor<T>&, LinprobeHead<T>&, bool, double,       \
                                           HeadCache<T>*);                                         \
  template Tensor<T> linprobe_head_backward(const LinprobeHead<T>&, const HeadCache<T>&, bool,     \
                                            const Tensor<T>&, LinprobeHead<T>&);                   \
  template Tensor<T> finetune_head_forward(const Tensor<T>&, FinetuneHead<T>&, bool, double,       \
                                           HeadCache<T>*);                                         \
  template Tensor<T> finetune_head_backward(const FinetuneHead<T>&, const HeadCache<T>&, bool,     \
                                            const Tensor<T>&, FinetuneHead<T>&);                   \
  template LinprobeHead<T> load_linprobe_head(const Checkpoint<T>&, const std::string&);           \
  template FinetuneHead<T> load_finetune_head(const Checkpoint<T>&, const std::string&);           \
  template T cross_entropy(const Tensor<T>&, const std::vector<int64_t>&, double, Tensor<T>*);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
