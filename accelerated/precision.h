// Numeric modes of the accelerated backend, shared by the runner, the benchmarks and the tests:
//   fp32  float32 everywhere, TF32 off (as the authors train; the differential tests' mode);
//   tf32  float32 tensors, TF32 tensor-core matmuls on CUDA (no effect on the CPU);
//   bf16  autocast to bfloat16 for matmuls / linear layers on the tensor's device; parameters,
//         gradients and the optimiser stay float32 (fp32 master weights).
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace hacm::accel {

enum class Precision { kFp32, kTf32, kBf16 };

// "fp32" | "tf32" | "bf16"; anything else throws std::invalid_argument naming the value.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

// The device in words, for result files and benchmark context: the GPU's name with its compute
// capability and memory, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB)" (a result's "device":
// "cuda" alone does not say which GPU made it), or "cpu (<processor>; torch kernels AVX2)".
std::string device_description(c10::Device device);

// TF32 flags of cuBLAS and cuDNN (process-wide): on for tf32, off otherwise (bf16 keeps what is
// not autocast in true float32).
void set_matmul_precision(Precision p);

// bf16 autocast on `device`'s type for the guard's lifetime (no-op for fp32 / tf32). `cache`
// keeps the casts of the weights for the guard's lifetime; a CUDA graph capture needs it off
// (a cached cast would outlive the capture's memory pool). The cache is cleared on exit.
class Autocast {
 public:
  Autocast(Precision p, c10::Device device, bool cache = true);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool on_ = false, prev_enabled_ = false, prev_cache_ = true;
  c10::DeviceType type_;
  c10::ScalarType prev_dtype_ = c10::ScalarType::Float;
};

}  // namespace hacm::accel
