#include "core/model_init.h"

#include <cmath>

#include "core/rng.h"

namespace hacm {

namespace {

struct Init {
  Rng rng;
  std::map<std::string, NdArray> out;
  explicit Init(uint64_t seed) : rng(seed, 0x1417) {}

  NdArray& make(const std::string& name, std::vector<int64_t> shape) {
    out[name] = NdArray::zeros(DType::f4, std::move(shape));
    return out[name];
  }
  void uniform(const std::string& name, std::vector<int64_t> shape, double bound) {
    NdArray& a = make(name, std::move(shape));
    float* p = a.data<float>();
    for (int64_t i = 0; i < a.numel(); ++i) p[i] = float(rng.uniform(-bound, bound));
  }
  void normal(const std::string& name, std::vector<int64_t> shape, double std) {
    NdArray& a = make(name, std::move(shape));
    float* p = a.data<float>();
    for (int64_t i = 0; i < a.numel(); ++i) {
      double v = rng.normal(0.0, std);
      p[i] = float(
          std::fmax(-2.0, std::fmin(2.0, v)));  // absolute clamp, as the authors' trunc_normal_
    }
  }
  void constant(const std::string& name, std::vector<int64_t> shape, float v) {
    NdArray& a = make(name, std::move(shape));
    float* p = a.data<float>();
    for (int64_t i = 0; i < a.numel(); ++i) p[i] = v;
  }
  void linear(const std::string& prefix, int64_t in, int64_t out_features) {
    uniform(prefix + ".weight", {out_features, in}, std::sqrt(6.0 / double(in + out_features)));
    constant(prefix + ".bias", {out_features}, 0.f);
  }
  void layer_norm(const std::string& prefix, int64_t d) {
    constant(prefix + ".weight", {d}, 1.f);
    constant(prefix + ".bias", {d}, 0.f);
  }
  void block(const std::string& p, int64_t d, int64_t ratio) {
    layer_norm(p + ".norm1", d);
    linear(p + ".attn.qkv", d, 3 * d);
    linear(p + ".attn.proj", d, d);
    layer_norm(p + ".norm2", d);
    linear(p + ".mlp.fc1", d, ratio * d);
    linear(p + ".mlp.fc2", ratio * d, d);
  }
};

}  // namespace

std::map<std::string, NdArray> init_pretrain_params(const ModelShape& s, uint64_t seed) {
  Init in(seed);
  const int64_t d = s.dim, dd = s.decoder_dim, TP = s.frames / s.t_patch, V = s.joints;
  const double conv_bound = 1.0 / std::sqrt(double(3 * s.t_patch));
  in.uniform("joints_embed.proj.weight", {d, 3, s.t_patch, 1}, conv_bound);
  in.uniform("joints_embed.proj.bias", {d}, conv_bound);
  in.normal("pos_embed", {1, 1, V, d}, 0.02);
  in.normal("temp_embed", {1, TP, 1, d}, 0.02);
  for (int64_t i = 0; i < s.depth; ++i) in.block("blocks." + std::to_string(i), d, s.mlp_ratio);
  in.layer_norm("norm", d);
  if (s.hacm) {
    in.linear("l1", d, d);
    in.linear("l2", d, d);
  }
  in.linear("decoder_embed", d, dd);
  in.normal(s.hacm ? "mask_token_t" : "mask_token", {1, 1, dd}, 0.02);
  for (int64_t j = 0; j < s.decoder_depth; ++j)
    in.block("decoder_blocks." + std::to_string(j), dd, s.mlp_ratio);
  in.layer_norm("decoder_norm", dd);
  in.normal("decoder_pos_embed", {1, 1, V, dd}, 0.02);
  in.normal("decoder_temp_embed", {1, TP, 1, dd}, 0.02);
  in.linear("decoder_pred", dd, 3 * s.t_patch);
  return std::move(in.out);
}

}  // namespace hacm
