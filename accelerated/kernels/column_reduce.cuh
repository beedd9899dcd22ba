// The column-sum pattern shared by the column-sum and GELU-backward kernels: a block covers 64
// columns (two per lane of a warp: 4-byte bf16x2 or 8-byte float2 accesses, 128 / 256 contiguous
// bytes per warp) and a strided subset of rows (8 warps, each its own rows); the 8 warps' sums
// meet in shared memory and each block writes one row of partials, which sum_partials
// (partial_sums.h) adds in a fixed order. What is summed comes from a functor that may also
// write (the GELU backward stores dh and returns it).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "accelerated/kernels/cuda_util.cuh"

namespace hacm::cuda::colred {

constexpr int kWarps = 8, kCols = 64;

__device__ __forceinline__ float2 load2(const float* p) {
  return *reinterpret_cast<const float2*>(p);
}
__device__ __forceinline__ float2 load2(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
// Stores two values rounded to T and returns them as stored.
__device__ __forceinline__ float2 store2(float* p, float2 v) {
  *reinterpret_cast<float2*>(p) = v;
  return v;
}
__device__ __forceinline__ float2 store2(__nv_bfloat16* p, float2 v) {
  const __nv_bfloat162 b = __floats2bfloat162_rn(v.x, v.y);
  *reinterpret_cast<__nv_bfloat162*>(p) = b;
  return __bfloat1622float2(b);
}

// partial[blockIdx.y, c] = sum over this block's rows r of f(r * cols + c) (two columns c, c + 1
// per lane: f returns both). cols even.
template <typename F>
__global__ void __launch_bounds__(kWarps * 32)
    column_reduce_kernel(F f, int64_t rows, int64_t cols, float* __restrict__ partial) {
  __shared__ float red[kWarps][kCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = int64_t(blockIdx.x) * kCols + 2 * lane;
  float a0 = 0.f, a1 = 0.f;
  if (c < cols) {  // cols is even: c + 1 < cols too
    const int64_t stride = int64_t(gridDim.y) * kWarps;
#pragma unroll 4
    for (int64_t r = int64_t(blockIdx.y) * kWarps + warp; r < rows; r += stride) {
      const float2 v = f(r * cols + c);
      a0 += v.x;
      a1 += v.y;
    }
  }
  red[warp][2 * lane] = a0;
  red[warp][2 * lane + 1] = a1;
  __syncthreads();
  if (threadIdx.x < kCols) {
    const int64_t cc = int64_t(blockIdx.x) * kCols + threadIdx.x;
    float t = 0.f;
#pragma unroll
    for (int k = 0; k < kWarps; ++k) t += red[k][threadIdx.x];
    if (cc < cols) partial[int64_t(blockIdx.y) * cols + cc] = t;
  }
}

// Row slices: about 4 blocks per multiprocessor in all, at least 8 rows (one per warp) each.
inline int row_parts(int64_t rows, int64_t cols) {
  const int64_t col_blocks = (cols + kCols - 1) / kCols;
  const int64_t want = std::max<int64_t>(1, int64_t(4) * multiprocessors() / col_blocks);
  return int(std::max<int64_t>(1, std::min<int64_t>(want, (rows + kWarps - 1) / kWarps)));
}

inline dim3 grid(int64_t rows, int64_t cols) {
  return dim3(unsigned((cols + kCols - 1) / kCols), unsigned(row_parts(rows, cols)));
}

}  // namespace hacm::cuda::colred
