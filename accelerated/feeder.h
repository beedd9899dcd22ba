// Device-resident feeder: a split's clips live on the device (GPU memory, or a CPU tensor), and
// the authors' per-clip transforms (core/feeder.h: crop -> linear resize -> rotation -> optional
// velocity) run as batched tensor ops there, so a training step needs no host-side clip work and
// no host-to-device copy of the batch (issue #6: an NTU-60-sized epoch in a few seconds).
//
// The random draws (p, bias, angles) still come from the host feeder with the same derived Rng
// per clip (Feeder::draws), and the arithmetic is the float path of core/feeder.cpp op for op
// (separate multiplies and adds, no fused multiply-add), so the batches equal
// Feeder::get_batch's exactly (tests/diff_feeder.cpp).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

#include "core/feeder.h"

namespace hacm::accel {

// Per-clip draws for a batch, as tensors (host or device).
struct FeederBatchDraws {
  at::Tensor idx;     // [B] int64: clip indices into the split
  at::Tensor bias;    // [B] int64: first cropped frame
  at::Tensor length;  // [B] int64: cropped frames; 0 = empty clip (output zeros)
  at::Tensor R;       // [B, 9] float32 row-major R = Rz*Ry*Rx, or undefined = no rotation
};

class DeviceFeeder {
 public:
  // Copies host.size() clips (N, T, 150) float32 and the labels to `device` in chunks (bounded
  // host memory; the npz stays memory-mapped). Throws InputError if the split does not fit.
  // `host` must outlive this object (draws and configuration come from it).
  DeviceFeeder(const Feeder& host, c10::Device device);

  // Bytes of the resident clip array.
  int64_t resident_bytes() const;

  // Host-side draws for clips idx[0..B): clip b uses Rng::derive(seed, idx[b]) exactly as
  // Feeder::get_batch does. Returned on the device.
  FeederBatchDraws draws(const int64_t* idx, int64_t B, uint64_t seed) const;
  // Transforms with injected draws -> x5 [B, 3, W, 25, 2] float32 on the device.
  at::Tensor apply(const FeederBatchDraws& d) const;
  // draws + apply; labels [B] int64 on the device when `labels` is non-null.
  at::Tensor get_batch(const int64_t* idx, int64_t B, uint64_t seed, at::Tensor* labels) const;

 private:
  const Feeder& host_;
  c10::Device device_;
  at::Tensor x_;       // [N*T, 150] float32: frame rows of every clip
  at::Tensor labels_;  // [N] int64
};

}  // namespace hacm::accel
