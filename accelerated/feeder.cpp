#include "accelerated/feeder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "accelerated/tensor_io.h"
#include "core/error.h"
#include "core/rng.h"

namespace hacm::accel {

namespace {
constexpr int64_t kVals = kFeederC * kFeederV * kFeederM;  // 150 values per frame
}

DeviceFeeder::DeviceFeeder(const Feeder& host, c10::Device device) : host_(host), device_(device) {
  const int64_t N = host.size(), T = host.frames();
  const double gib = double(N) * double(T) * double(kVals) * 4.0 / double(1 << 30);
  try {
    x_ = at::empty({N * T, kVals}, at::TensorOptions().dtype(at::kFloat).device(device));
  } catch (const c10::Error&) {
    throw InputError("the training split (" + std::to_string(N) + " clips, " +
                     std::to_string(gib).substr(0, 5) + " GiB) does not fit on " + device.str() +
                     "; set \"data_device\": \"host\" in the protocol");
  }
  // Copy in chunks through one (pinned, on CUDA) staging buffer: the npz member may be
  // misaligned for float access and is memory-mapped, so it is never loaded whole into RAM.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, (64 << 20) / (T * kVals * 4)));
  at::Tensor stage = at::empty(
      {chunk * T, kVals}, at::TensorOptions().dtype(at::kFloat).pinned_memory(device.is_cuda()));
  for (int64_t i = 0; i < N; i += chunk) {
    const int64_t n = std::min(chunk, N - i);
    std::memcpy(stage.data_ptr<float>(), reinterpret_cast<const void*>(host.clip(i)),
                size_t(n * T * kVals) * sizeof(float));
    x_.narrow(0, i * T, n * T).copy_(stage.narrow(0, 0, n * T));
  }
  std::vector<int64_t> lab(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) lab[size_t(i)] = host.label(i);
  labels_ = at::tensor(lab, at::TensorOptions().dtype(at::kLong)).to(device);
}

int64_t DeviceFeeder::resident_bytes() const {
  return x_.numel() * int64_t(sizeof(float));
}

FeederBatchDraws DeviceFeeder::draws(const int64_t* idx, int64_t B, uint64_t seed) const {
  // One small host tensor per batch: [idx, bias, length] int64 and R float32.
  at::Tensor ints = host_buffer({3, B}, at::kLong, device_);
  at::Tensor R = host_buffer({B, 9}, at::kFloat, device_);
  int64_t* ip = ints.data_ptr<int64_t>();
  float* rp = R.data_ptr<float>();
  bool any_rot = false;
  for (int64_t b = 0; b < B; ++b) {
    if (idx[b] < 0 || idx[b] >= host_.size())
      throw std::out_of_range("DeviceFeeder: index " + std::to_string(idx[b]));
    Rng rng = Rng::derive(seed, uint64_t(idx[b]));
    FeederDraws d = host_.draws(idx[b], rng);
    ip[b] = idx[b], ip[B + b] = d.bias, ip[2 * B + b] = d.length;
    double Rd[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    if (d.rotate) rotation_matrix(d.angles, Rd);
    any_rot = any_rot || d.rotate;
    for (int k = 0; k < 9; ++k) rp[b * 9 + k] = float(Rd[k]);  // the float path's R
  }
  ints = to_device(ints, device_);
  FeederBatchDraws out{ints[0], ints[1], ints[2], at::Tensor()};
  if (any_rot) out.R = to_device(R, device_);
  return out;
}

at::Tensor DeviceFeeder::apply(const FeederBatchDraws& d) const {
  const FeederConfig& cfg = host_.config();
  const int64_t B = d.idx.size(0), W = cfg.window, T = host_.frames();
  auto fopt = at::TensorOptions().dtype(at::kFloat).device(device_);
  const at::Tensor len = d.length.to(device_).view({B, 1});
  const at::Tensor empty = len.le(0);        // [B, 1]
  const at::Tensor lenc = len.clamp_min(1);  // keeps empty clips' indices valid
  // F.interpolate(bilinear, align_corners=False) along time, in float32 as core/feeder.cpp:
  // src = max(len/W * (i + 0.5) - 0.5, 0); i0 = min(floor(src), len-1); l1 = clamp(src - i0, 0, 1).
  const at::Tensor i = at::arange(W, fopt).view({1, W});
  // Real(len) / Real(W) as a true division: CUDA divides by a CPU scalar through its reciprocal
  // (len * (1/W)), which rounds differently from the host feeder in some lanes.
  const at::Tensor scale = lenc.to(at::kFloat) / at::full({1, 1}, float(W), fopt);
  at::Tensor src = (scale * (i + 0.5f) - 0.5f).clamp_min(0.0f);
  at::Tensor i0 = at::minimum(src.floor().to(at::kLong), lenc - 1);
  at::Tensor l1 = (src - i0.to(at::kFloat)).clamp(0.0f, 1.0f);
  at::Tensor i1 = i0 + (i0 < lenc - 1).to(at::kLong);
  // Equal sizes copy frames exactly (as the CPU path's special case).
  const at::Tensor same = len.eq(W);
  const at::Tensor iw =
      at::arange(W, at::TensorOptions().dtype(at::kLong).device(device_)).view({1, W});
  i0 = at::where(same, iw, i0);
  i1 = at::where(same, iw, i1);
  l1 = at::where(same, at::zeros_like(l1), l1);
  const at::Tensor l0 = 1.0f - l1;
  const at::Tensor base = (d.idx.to(device_).view({B, 1}) * T + d.bias.to(device_).view({B, 1}));
  const at::Tensor f0 = x_.index_select(0, (base + i0).flatten()).view({B, W, kVals});
  const at::Tensor f1 = x_.index_select(0, (base + i1).flatten()).view({B, W, kVals});
  // Separate multiply and add (no fused multiply-add), as the CPU float path.
  at::Tensor p = (f0 * l0.unsqueeze(2)).add(f1 * l1.unsqueeze(2));  // [B, W, 150] = [B,W,M,V,C]
  p = p.view({B, W, kFeederM, kFeederV, 3});
  at::Tensor out;  // [B, 3, W, M, V]
  if (d.R.defined()) {
    const at::Tensor R = d.R.to(device_).view({B, 1, 1, 1, 9});
    const at::Tensor p0 = p.select(4, 0), p1 = p.select(4, 1), p2 = p.select(4, 2);
    std::vector<at::Tensor> ch;
    for (int c = 0; c < 3; ++c)  // R[c0]*p0 + R[c1]*p1 + R[c2]*p2, left to right
      ch.push_back((R.select(4, c * 3 + 0) * p0 + R.select(4, c * 3 + 1) * p1) +
                   R.select(4, c * 3 + 2) * p2);
    out = at::stack(ch, 1);
  } else {
    out = p.permute({0, 4, 1, 2, 3});
  }
  out = out.permute({0, 1, 2, 4, 3}).contiguous();  // [B, 3, W, V=25, M=2]
  if (cfg.vel) {                                    // d[t] = x[t+1] - x[t], d[W-1] = 0
    at::Tensor v = at::zeros_like(out);
    v.narrow(2, 0, W - 1).copy_(out.narrow(2, 1, W - 1) - out.narrow(2, 0, W - 1));
    out = v;
  }
  return at::where(empty.view({B, 1, 1, 1, 1}), at::zeros_like(out), out);
}

at::Tensor DeviceFeeder::get_batch(const int64_t* idx, int64_t B, uint64_t seed,
                                   at::Tensor* labels) const {
  FeederBatchDraws d = draws(idx, B, seed);
  if (labels) *labels = labels_.index_select(0, d.idx);
  return apply(d);
}

}  // namespace hacm::accel
