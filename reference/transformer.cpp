// Transformer block components (see transformer.h). Large contractions are Eigen matrix products
// over row-major views; the attention heads are strided views into the packed qkv buffer.
#include "reference/transformer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace hacm::ref {
namespace {

void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}
template <class T>
void ensure_like(Tensor<T>& g, const Tensor<T>& p) {
  if (g.numel() == 0 && p.numel() != 0) g = Tensor<T>(p.shape);
}
// t [B, ...]: row b times s[b] (drop-path); s empty = unchanged.
template <class T>
void scale_samples(Tensor<T>& t, const std::vector<T>& s) {
  if (s.empty()) return;
  const int64_t B = t.dim(0), per = t.numel() / std::max<int64_t>(B, 1);
  need(int64_t(s.size()) == B,
       "drop-path scales: " + std::to_string(s.size()) + " for a batch of " + std::to_string(B));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < per; ++i) t[b * per + i] *= s[size_t(b)];
}

}  // namespace

template <class T>
LinearParams<T> load_linear(const Checkpoint<T>& ck, const std::string& prefix, int64_t in,
                            int64_t out) {
  LinearParams<T> p;
  p.w = ck.at(prefix + ".weight");
  const int64_t o = p.w.ndim() == 2 ? p.w.dim(0) : -1, i = p.w.ndim() == 2 ? p.w.dim(1) : -1;
  ck.at(prefix + ".weight", {out >= 0 ? out : o, in >= 0 ? in : i});  // throws on mismatch
  if (ck.has(prefix + ".bias")) p.b = ck.at(prefix + ".bias", {p.w.dim(0)});
  return p;
}

template <class T>
LayerNormParams<T> load_layernorm(const Checkpoint<T>& ck, const std::string& prefix, int64_t C) {
  LayerNormParams<T> p;
  p.w = ck.at(prefix + ".weight");
  if (C < 0) C = p.w.numel();
  p.w = ck.at(prefix + ".weight", {C});
  p.b = ck.at(prefix + ".bias", {C});
  return p;
}

template <class T>
BlockParams<T> load_block(const Checkpoint<T>& ck, const std::string& prefix, int64_t C) {
  BlockParams<T> p;
  p.norm1 = load_layernorm(ck, prefix + ".norm1", C);
  C = p.norm1.w.numel();
  p.qkv = load_linear(ck, prefix + ".attn.qkv", C, 3 * C);
  p.proj = load_linear(ck, prefix + ".attn.proj", C, C);
  p.norm2 = load_layernorm(ck, prefix + ".norm2", C);
  p.fc1 = load_linear(ck, prefix + ".mlp.fc1", C);
  p.fc2 = load_linear(ck, prefix + ".mlp.fc2", p.fc1.w.dim(0), C);
  return p;
}

template <class T>
int64_t count_blocks(const Checkpoint<T>& ck, const std::string& stem) {
  int64_t n = 0;
  while (ck.has(stem + std::to_string(n) + ".norm1.weight")) ++n;
  return n;
}

namespace {
// ck.at(name) with -1 in `want` matching any extent.
template <class T>
const Tensor<T>& at_pattern(const Checkpoint<T>& ck, const std::string& name,
                            const std::vector<int64_t>& want) {
  const Tensor<T>& t = ck.at(name);
  bool ok = t.ndim() == int(want.size());
  for (size_t k = 0; ok && k < want.size(); ++k) ok = want[k] < 0 || t.dim(int(k)) == want[k];
  if (!ok)
    throw input_error(
        ck.source, 0,
        "tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(want));
  return t;
}
}  // namespace

template <class T>
EncoderParams<T> load_encoder(const Checkpoint<T>& ck, int64_t V, int64_t& depth) {
  EncoderParams<T> w;
  w.conv_w = ck.at("joints_embed.proj.weight");
  if (w.conv_w.ndim() != 4 || w.conv_w.dim(3) != 1)
    throw input_error(
        ck.source, 0,
        "joints_embed.proj.weight: want [D, C, tp, 1], got " + shape_str(w.conv_w.shape));
  const int64_t D = w.conv_w.dim(0);
  w.conv_b = ck.at("joints_embed.proj.bias", {D});
  w.pos = at_pattern(ck, "pos_embed", {1, 1, V, D});
  w.temp = at_pattern(ck, "temp_embed", {1, -1, 1, D});
  if (depth < 0) depth = count_blocks(ck, "blocks.");
  for (int64_t i = 0; i < depth; ++i)
    w.blocks.push_back(load_block(ck, "blocks." + std::to_string(i), D));
  w.norm = load_layernorm(ck, "norm", D);
  return w;
}

template <class T>
BlockParams<T> zeros_like(const BlockParams<T>& p) {
  auto z = [](const Tensor<T>& t) { return Tensor<T>(t.shape); };
  BlockParams<T> g;
  g.norm1 = {z(p.norm1.w), z(p.norm1.b)};
  g.qkv = {z(p.qkv.w), z(p.qkv.b)};
  g.proj = {z(p.proj.w), z(p.proj.b)};
  g.norm2 = {z(p.norm2.w), z(p.norm2.b)};
  g.fc1 = {z(p.fc1.w), z(p.fc1.b)};
  g.fc2 = {z(p.fc2.w), z(p.fc2.b)};
  return g;
}

template <class T>
void export_block(const BlockParams<T>& p, const std::string& pre,
                  std::map<std::string, Tensor<T>>& out) {
  out[pre + ".norm1.weight"] = p.norm1.w;
  out[pre + ".norm1.bias"] = p.norm1.b;
  out[pre + ".attn.qkv.weight"] = p.qkv.w;
  out[pre + ".attn.qkv.bias"] = p.qkv.b;
  out[pre + ".attn.proj.weight"] = p.proj.w;
  out[pre + ".attn.proj.bias"] = p.proj.b;
  out[pre + ".norm2.weight"] = p.norm2.w;
  out[pre + ".norm2.bias"] = p.norm2.b;
  out[pre + ".mlp.fc1.weight"] = p.fc1.w;
  out[pre + ".mlp.fc1.bias"] = p.fc1.b;
  out[pre + ".mlp.fc2.weight"] = p.fc2.w;
  out[pre + ".mlp.fc2.bias"] = p.fc2.b;
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> linear_forward(const Tensor<T>& x, const LinearParams<T>& p) {
  const int64_t in = p.w.dim(1), out = p.w.dim(0);
  need(x.dim(-1) == in,
       "linear_forward: x " + shape_str(x.shape) + " vs w " + shape_str(p.w.shape));
  std::vector<int64_t> s = x.shape;
  s.back() = out;
  Tensor<T> y(s);
  MapR<T> Y = as_matrix(y, out);
  Y.noalias() = as_matrix(x, in) * CMapR<T>(p.w.ptr(), out, in).transpose();
  if (p.b.numel()) Y.rowwise() += CVecMap<T>(p.b.ptr(), out).transpose();
  return y;
}

template <class T>
Tensor<T> linear_backward(const Tensor<T>& x, const LinearParams<T>& p, const Tensor<T>& gout,
                          LinearParams<T>& g) {
  const int64_t in = p.w.dim(1), out = p.w.dim(0);
  ensure_like(g.w, p.w);
  ensure_like(g.b, p.b);
  CMapR<T> G = as_matrix(gout, out);
  CMapR<T> X = as_matrix(x, in);
  MapR<T>(g.w.ptr(), out, in).noalias() += G.transpose() * X;
  if (p.b.numel()) VecMap<T>(g.b.ptr(), out) += G.colwise().sum().transpose();
  Tensor<T> gx(x.shape);
  as_matrix(gx, in).noalias() = G * CMapR<T>(p.w.ptr(), out, in);
  return gx;
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> layernorm_forward(const Tensor<T>& x, const LayerNormParams<T>& p, double eps,
                            LayerNormCache<T>* cache) {
  const int64_t C = x.dim(-1), R = x.rows();
  need(p.w.numel() == C,
       "layernorm_forward: x " + shape_str(x.shape) + " vs w " + shape_str(p.w.shape));
  Tensor<T> y(x.shape);
  if (cache) cache->mean.assign(size_t(R), 0), cache->rstd.assign(size_t(R), 0);
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x.ptr() + r * C;
    T mean = 0;
    for (int64_t i = 0; i < C; ++i) mean += xr[i];
    mean /= T(C);
    T var = 0;  // biased, two-pass
    for (int64_t i = 0; i < C; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= T(C);
    const T rstd = T(1) / std::sqrt(var + T(eps));
    T* yr = y.ptr() + r * C;
    for (int64_t i = 0; i < C; ++i) yr[i] = (xr[i] - mean) * rstd * p.w[i] + p.b[i];
    if (cache) cache->mean[size_t(r)] = mean, cache->rstd[size_t(r)] = rstd;
  }
  return y;
}

// With x̂ = (x − μ)·rstd and gx̂ = gout·w:  gx = rstd·(gx̂ − mean(gx̂) − x̂·mean(gx̂·x̂)).
template <class T>
Tensor<T> layernorm_backward(const Tensor<T>& x, const LayerNormParams<T>& p,
                             const LayerNormCache<T>& cache, const Tensor<T>& gout,
                             LayerNormParams<T>& g) {
  const int64_t C = x.dim(-1), R = x.rows();
  ensure_like(g.w, p.w);
  ensure_like(g.b, p.b);
  Tensor<T> gx(x.shape);
  std::vector<T> xhat(static_cast<size_t>(C)), gxh(static_cast<size_t>(C));
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x.ptr() + r * C;
    const T* gr = gout.ptr() + r * C;
    const T mean = cache.mean[size_t(r)], rstd = cache.rstd[size_t(r)];
    T m1 = 0, m2 = 0;
    for (int64_t i = 0; i < C; ++i) {
      xhat[size_t(i)] = (xr[i] - mean) * rstd;
      gxh[size_t(i)] = gr[i] * p.w[i];
      g.w[i] += gr[i] * xhat[size_t(i)];
      g.b[i] += gr[i];
      m1 += gxh[size_t(i)];
      m2 += gxh[size_t(i)] * xhat[size_t(i)];
    }
    m1 /= T(C);
    m2 /= T(C);
    T* o = gx.ptr() + r * C;
    for (int64_t i = 0; i < C; ++i) o[i] = rstd * (gxh[size_t(i)] - m1 - xhat[size_t(i)] * m2);
  }
  return gx;
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> gelu_forward(const Tensor<T>& x) {
  Tensor<T> y(x.shape);
  const T inv_sqrt2 = T(0.70710678118654752440);
  for (int64_t i = 0; i < x.numel(); ++i)
    y[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * inv_sqrt2));
  return y;
}

// d/dx [x·Φ(x)] = Φ(x) + x·φ(x).
template <class T>
Tensor<T> gelu_backward(const Tensor<T>& x, const Tensor<T>& gout) {
  Tensor<T> gx(x.shape);
  const T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt2pi = T(0.39894228040143267794);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const T v = x[i];
    const T cdf = T(0.5) * (T(1) + std::erf(v * inv_sqrt2));
    const T pdf = inv_sqrt2pi * std::exp(T(-0.5) * v * v);
    gx[i] = gout[i] * (cdf + v * pdf);
  }
  return gx;
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> attention_core_forward(const Tensor<T>& qkv, int heads, Tensor<T>* probs_out) {
  need(qkv.ndim() == 3 && qkv.dim(2) % 3 == 0,
       "attention_core_forward: want [B,N,3C], got " + shape_str(qkv.shape));
  const int64_t B = qkv.dim(0), N = qkv.dim(1), C = qkv.dim(2) / 3, H = heads, hd = C / H;
  need(H > 0 && C % H == 0, "attention_forward: width not divisible by heads");
  const T scale = T(std::pow(double(hd), -0.5));
  Tensor<T> probs({B, H, N, N}), ctx({B, N, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const T* base = qkv.ptr() + b * N * 3 * C + h * hd;
      CMapRS<T> Q(base, N, hd, Eigen::OuterStride<>(3 * C));
      CMapRS<T> K(base + C, N, hd, Eigen::OuterStride<>(3 * C));
      CMapRS<T> V(base + 2 * C, N, hd, Eigen::OuterStride<>(3 * C));
      MapR<T> P(probs.ptr() + (b * H + h) * N * N, N, N);
      P.noalias() = Q * K.transpose();
      P *= scale;
      for (int64_t i = 0; i < N; ++i) {  // row softmax over keys
        const T m = P.row(i).maxCoeff();
        P.row(i) = (P.row(i).array() - m).exp();
        P.row(i) /= P.row(i).sum();
      }
      MapRS<T>(ctx.ptr() + b * N * C + h * hd, N, hd, Eigen::OuterStride<>(C)).noalias() = P * V;
    }
  *probs_out = std::move(probs);
  return ctx;
}

template <class T>
Tensor<T> attention_forward(const Tensor<T>& x, const LinearParams<T>& qkv_p,
                            const LinearParams<T>& proj_p, int heads, AttentionCache<T>* cache) {
  need(x.ndim() == 3, "attention_forward: want [B,N,C], got " + shape_str(x.shape));
  Tensor<T> qkv = linear_forward(x, qkv_p);  // [B, N, 3C]: (3, H, hd) per token
  Tensor<T> probs;
  Tensor<T> ctx = attention_core_forward(qkv, heads, &probs);
  Tensor<T> out = linear_forward(ctx, proj_p);
  if (cache) {
    cache->qkv = std::move(qkv);
    cache->probs = std::move(probs);
    cache->ctx = std::move(ctx);
  }
  return out;
}

// Per head: gP = gO Vᵀ, gV = Pᵀ gO, gS = P ∘ (gP − rowsum(gP ∘ P)), gQ = gS K·s, gK = gSᵀ Q·s.
template <class T>
Tensor<T> attention_core_backward(const Tensor<T>& qkv, const Tensor<T>& probs,
                                  const Tensor<T>& gctx, int heads) {
  const int64_t B = qkv.dim(0), N = qkv.dim(1), C = qkv.dim(2) / 3, H = heads, hd = C / H;
  const T scale = T(std::pow(double(hd), -0.5));
  Tensor<T> gqkv({B, N, 3 * C});
  MatR<T> gP(N, N), gS(N, N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t off = b * N * 3 * C + h * hd;
      const Eigen::OuterStride<> s3(3 * C);
      CMapRS<T> Q(qkv.ptr() + off, N, hd, s3), K(qkv.ptr() + off + C, N, hd, s3),
          V(qkv.ptr() + off + 2 * C, N, hd, s3);
      MapRS<T> gQ(gqkv.ptr() + off, N, hd, s3), gK(gqkv.ptr() + off + C, N, hd, s3),
          gV(gqkv.ptr() + off + 2 * C, N, hd, s3);
      CMapR<T> P(probs.ptr() + (b * H + h) * N * N, N, N);
      CMapRS<T> gO(gctx.ptr() + b * N * C + h * hd, N, hd, Eigen::OuterStride<>(C));
      gP.noalias() = gO * V.transpose();
      gV.noalias() = P.transpose() * gO;
      for (int64_t i = 0; i < N; ++i) {
        const T dotp = gP.row(i).dot(P.row(i));
        gS.row(i) = P.row(i).array() * (gP.row(i).array() - dotp);
      }
      gS *= scale;
      gQ.noalias() = gS * K;
      gK.noalias() = gS.transpose() * Q;
    }
  return gqkv;
}

template <class T>
Tensor<T> attention_backward(const Tensor<T>& x, const LinearParams<T>& qkv_p,
                             const LinearParams<T>& proj_p, int heads, const AttentionCache<T>& c,
                             const Tensor<T>& gout, LinearParams<T>& g_qkv,
                             LinearParams<T>& g_proj) {
  Tensor<T> gctx = linear_backward(c.ctx, proj_p, gout, g_proj);
  return linear_backward(x, qkv_p, attention_core_backward(c.qkv, c.probs, gctx, heads), g_qkv);
}

// ---------------------------------------------------------------------------------------------
template <class T>
Tensor<T> block_forward(const Tensor<T>& x, const BlockParams<T>& p, int heads,
                        BlockCache<T>* cache, double eps, const BranchScales<T>* scales) {
  BlockCache<T> local;
  BlockCache<T>& c = cache ? *cache : local;
  c.scales = scales ? *scales : BranchScales<T>();
  c.a_in = layernorm_forward(x, p.norm1, eps, &c.ln1);
  Tensor<T> a = attention_forward(c.a_in, p.qkv, p.proj, heads, &c.attn);
  scale_samples(a, c.scales.attn);
  c.x1 = x;
  for (int64_t i = 0; i < x.numel(); ++i) c.x1[i] += a[i];
  c.m_in = layernorm_forward(c.x1, p.norm2, eps, &c.ln2);
  c.h = linear_forward(c.m_in, p.fc1);
  c.act = gelu_forward(c.h);
  Tensor<T> m = linear_forward(c.act, p.fc2);
  scale_samples(m, c.scales.mlp);
  Tensor<T> y = c.x1;
  for (int64_t i = 0; i < y.numel(); ++i) y[i] += m[i];
  return y;
}

template <class T>
Tensor<T> block_backward(const Tensor<T>& x, const BlockParams<T>& p, int heads,
                         const BlockCache<T>& c, const Tensor<T>& gout, BlockParams<T>& g,
                         double eps) {
  // MLP branch (times its drop-path scale); the residual passes gout straight to x1.
  Tensor<T> gm = gout;
  scale_samples(gm, c.scales.mlp);
  Tensor<T> gact = linear_backward(c.act, p.fc2, gm, g.fc2);
  Tensor<T> gh = gelu_backward(c.h, gact);
  Tensor<T> gm_in = linear_backward(c.m_in, p.fc1, gh, g.fc1);
  Tensor<T> gx1 = layernorm_backward(c.x1, p.norm2, c.ln2, gm_in, g.norm2);
  for (int64_t i = 0; i < gx1.numel(); ++i) gx1[i] += gout[i];
  // Attention branch (times its drop-path scale); the residual passes gx1 straight to x.
  Tensor<T> ga = gx1;
  scale_samples(ga, c.scales.attn);
  Tensor<T> ga_in = attention_backward(c.a_in, p.qkv, p.proj, heads, c.attn, ga, g.qkv, g.proj);
  Tensor<T> gx = layernorm_backward(x, p.norm1, c.ln1, ga_in, g.norm1);
  for (int64_t i = 0; i < gx.numel(); ++i) gx[i] += gx1[i];
  return gx;
}

#define HACM_INSTANTIATE(T)                                                                        \
  template LinearParams<T> load_linear(const Checkpoint<T>&, const std::string&, int64_t,          \
                                       int64_t);                                                   \
  template LayerNormParams<T> load_layernorm(const Checkpoint<T>&, const std::string&, int64_t);   \
  template BlockParams<T> load_block(const Checkpoint<T>&, const std::string&, int64_t);           \
  template EncoderParams<T> load_encoder(const Checkpoint<T>&, int64_t, int64_t&);                 \
  template int64_t count_blocks(const Checkpoint<T>&, const std::string&);                         \
  template BlockParams<T> zeros_like(const BlockParams<T>&);                                       \
  template void export_block(const BlockParams<T>&, const std::string&,                            \
                             std::map<std::string, Tensor<T>>&);                                   \
  template Tensor<T> linear_forward(const Tensor<T>&, const LinearParams<T>&);                     \
  template Tensor<T> linear_backward(const Tensor<T>&, const LinearParams<T>&, const Tensor<T>&,   \
                                     LinearParams<T>&);                                            \
  template Tensor<T> layernorm_forward(const Tensor<T>&, const LayerNormParams<T>&, double,        \
                                       LayerNormCache<T>*);                                        \
  template Tensor<T> layernorm_backward(const Tensor<T>&, const LayerNormParams<T>&,               \
                                        const LayerNormCache<T>&, const Tensor<T>&,                \
                                        LayerNormParams<T>&);                                      \
  template Tensor<T> gelu_forward(const Tensor<T>&);                                               \
  template Tensor<T> gelu_backward(const Tensor<T>&, const Tensor<T>&);                            \
  template Tensor<T> attention_forward(const Tensor<T>&, const LinearParams<T>&,                   \
                                       const LinearParams<T>&, int, AttentionCache<T>*);           \
  template Tensor<T> attention_backward(const Tensor<T>&, const LinearParams<T>&,                  \
                                        const LinearParams<T>&, int, const AttentionCache<T>&,     \
                                        const Tensor<T>&, LinearParams<T>&, LinearParams<T>&);     \
  template Tensor<T> attention_core_forward(const Tensor<T>&, int, Tensor<T>*);                    \
  template Tensor<T> attention_core_backward(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                             int);                                                 \
  template Tensor<T> block_forward(const Tensor<T>&, const BlockParams<T>&, int, BlockCache<T>*,   \
                                   double, const BranchScales<T>*);                                \
  template Tensor<T> block_backward(const Tensor<T>&, const BlockParams<T>&, int,                  \
                                    const BlockCache<T>&, const Tensor<T>&, BlockParams<T>&,       \
                                    double);
HACM_INSTANTIATE(float)
HACM_INSTANTIATE(double)
#undef HACM_INSTANTIATE

}  // namespace hacm::ref
