// Conversions between core NdArray (npy/npz) and LibTorch tensors, and the shared checkpoint
// format: an npz whose member names are PyTorch state_dict names (blocks.0.attn.qkv.weight, ...).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/ndarray.h"

namespace hacm::accel {

using StateDict = std::map<std::string, at::Tensor>;

// Copy an array into a new CPU tensor of `dtype` (values converted).
at::Tensor to_tensor(const NdArray& a, c10::ScalarType dtype);
// Copy a tensor (any device, contiguous or not) into a heap NdArray of the same dtype
// (float, double, int32, int64, uint8, bool).
NdArray to_ndarray(const at::Tensor& t);
// Every member of a checkpoint npz, converted to `dtype` (integer members keep int64).
StateDict load_state_dict(const std::string& path, c10::ScalarType dtype);
void save_state_dict(const std::string& path, const StateDict& sd);
// Small per-step host -> device transfers (batches, draws, masking uniforms). A copy from
// pageable memory synchronises the CUDA stream before it starts, so every such copy would make
// the host wait for the step in flight. host_buffer() is page-locked when `device` is CUDA (plain
// memory otherwise); to_device() then copies without blocking (the caching host allocator keeps
// the buffer until the copy has run). On the CPU, to_device() returns `t` itself.
at::Tensor host_buffer(const std::vector<int64_t>& shape, c10::ScalarType dtype,
                       c10::Device device);
at::Tensor to_device(const at::Tensor& t, c10::Device device);
// An int64 index tensor of `v` on `device`: `placed` itself when it is defined and already on
// `device`, else a new one (a host-to-device copy, which a CUDA graph capture forbids: models
// keep a placed copy in their config, see hacm_place_indices / encoder_place_indices).
at::Tensor index_tensor(const std::vector<int64_t>& v, c10::Device device,
                        const at::Tensor& placed = at::Tensor());
// A float32 tensor of `shape` on `device` holding float(U[lo,hi)) drawn in row-major order from
// our Rng(seed): the masking uniforms of the runner (U[0,1)), identical for both backends on any
// machine, and seeded benchmark inputs.
at::Tensor rng_uniform(const std::vector<int64_t>& shape, uint64_t seed, c10::Device device,
                       double lo = 0.0, double hi = 1.0);

}  // namespace hacm::accel
