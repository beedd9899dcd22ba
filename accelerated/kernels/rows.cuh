// Pieces shared by the row-wise kernels (LayerNorm, the Poincaré map): one warp per row of C
// values, lane l holding columns l, l + 32, ... (VPT = C / 32 values per lane, in registers), the
// row's sums by warp shuffles, float32 arithmetic whatever the storage type.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace hacm::cuda {
namespace {

__device__ __forceinline__ float load(const float* p) {
  return *p;
}
__device__ __forceinline__ float load(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
__device__ __forceinline__ void store(float* p, float v) {
  *p = v;
}
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}

// The sum over the 32 lanes, the same value in every lane (a fixed butterfly order).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The row of this warp in a kernel whose blocks hold `Warps` rows, one per warp.
template <int Warps>
__device__ __forceinline__ int64_t warp_row() {
  return int64_t(blockIdx.x) * Warps + (threadIdx.x >> 5);
}

// Row widths with a compiled kernel.
inline bool row_width_supported(int64_t cols) {
  return cols == 64 || cols == 128 || cols == 256 || cols == 512;
}

// Calls f(std::integral_constant<int, VPT>) for a width with a kernel (VPT = cols / 32 values per
// lane); row_width_supported lists the same widths.
template <typename F>
void with_width(int64_t cols, const char* what, F&& f) {
  switch (cols) {
    case 64:
      return f(std::integral_constant<int, 2>{});
    case 128:
      return f(std::integral_constant<int, 4>{});
    case 256:
      return f(std::integral_constant<int, 8>{});
    case 512:
      return f(std::integral_constant<int, 16>{});
    default:
      throw std::invalid_argument(std::string(what) + ": unsupported width " +
                                  std::to_string(cols));
  }
}

}  // namespace
}  // namespace hacm::cuda
