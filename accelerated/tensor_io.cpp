#include "accelerated/tensor_io.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "core/npz.h"
#include "core/rng.h"

namespace hacm::accel {

static c10::ScalarType scalar_type_of(DType t) {
  switch (t) {
    case DType::f4:
      return at::kFloat;
    case DType::f8:
      return at::kDouble;
    case DType::i4:
      return at::kInt;
    case DType::i8:
      return at::kLong;
    case DType::u1:
      return at::kByte;
    case DType::b1:
      return at::kBool;
  }
  return at::kDouble;
}

static DType dtype_of(c10::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return DType::f4;
    case at::kDouble:
      return DType::f8;
    case at::kInt:
      return DType::i4;
    case at::kLong:
      return DType::i8;
    case at::kByte:
      return DType::u1;
    case at::kBool:
      return DType::b1;
    default:
      throw std::runtime_error(std::string("to_ndarray: unsupported dtype ") + c10::toString(t));
  }
}

at::Tensor to_tensor(const NdArray& a, c10::ScalarType dtype) {
  std::vector<int64_t> shape(a.shape.begin(), a.shape.end());
  // Copy first: the array may be a view into a mapping that must not be aliased by a tensor.
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(scalar_type_of(a.dtype)));
  if (a.nbytes()) std::memcpy(t.data_ptr(), a.bytes, a.nbytes());
  return t.to(dtype);
}

NdArray to_ndarray(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  NdArray a = NdArray::zeros(dtype_of(c.scalar_type()),
                             std::vector<int64_t>(c.sizes().begin(), c.sizes().end()));
  if (a.nbytes()) std::memcpy(a.bytes, c.data_ptr(), a.nbytes());
  return a;
}

StateDict load_state_dict(const std::string& path, c10::ScalarType dtype) {
  NpzReader r(path);
  StateDict sd;
  for (const auto& k : r.keys()) {
    NdArray a = r.get(k);
    bool is_int = a.dtype == DType::i4 || a.dtype == DType::i8;
    sd[k] = to_tensor(a, is_int ? at::kLong : dtype);
  }
  return sd;
}

void save_state_dict(const std::string& path, const StateDict& sd) {
  std::map<std::string, NdArray> arrays;
  for (const auto& [k, v] : sd) arrays[k] = to_ndarray(v);
  npz_save(path, arrays);
}

at::Tensor index_tensor(const std::vector<int64_t>& v, c10::Device device,
                        const at::Tensor& placed) {
  if (placed.defined() && placed.device() == device) return placed;
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).to(device);
}

at::Tensor host_buffer(const std::vector<int64_t>& shape, c10::ScalarType dtype,
                       c10::Device device) {
  return at::empty(shape, at::TensorOptions().dtype(dtype).pinned_memory(device.is_cuda()));
}

at::Tensor to_device(const at::Tensor& t, c10::Device device) {
  return t.to(device, /*non_blocking=*/t.is_pinned());
}

at::Tensor rng_uniform(const std::vector<int64_t>& shape, uint64_t seed, c10::Device device,
                       double lo, double hi) {
  at::Tensor t = host_buffer(shape, at::kFloat, device);
  Rng rng(seed);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng.uniform(lo, hi));
  return to_device(t, device);
}

}  // namespace hacm::accel
