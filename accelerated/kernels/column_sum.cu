// Column sums (see column_sum.h). A block covers 64 columns (two per lane of a warp: one 4-byte
// bf16x2 or 8-byte float2 load per row, 128 / 256 contiguous bytes per warp) and a strided subset
// of rows (8 warps, each its own rows); the 8 warps' sums meet in shared memory, and a second
// kernel (sum_partials) adds the per-block partials in a fixed order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "accelerated/kernels/column_sum.h"
#include "accelerated/kernels/cuda_util.cuh"
#include "accelerated/kernels/partial_sums.h"

namespace hacm::cuda {
namespace {

constexpr int kWarps = 8, kCols = 64;

__device__ __forceinline__ float2 load2(const float* p) {
  return *reinterpret_cast<const float2*>(p);
}
__device__ __forceinline__ float2 load2(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    column_sum_kernel(const T* __restrict__ x, int64_t rows, int64_t cols,
                      float* __restrict__ partial) {
  __shared__ float red[kWarps][kCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = int64_t(blockIdx.x) * kCols + 2 * lane;
  float a0 = 0.f, a1 = 0.f;
  if (c < cols) {  // cols is even: c + 1 < cols too
    const int64_t stride = int64_t(gridDim.y) * kWarps;
#pragma unroll 4
    for (int64_t r = int64_t(blockIdx.y) * kWarps + warp; r < rows; r += stride) {
      const float2 v = load2(x + r * cols + c);
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
int row_parts(int64_t rows, int64_t cols) {
  const int64_t col_blocks = (cols + kCols - 1) / kCols;
  const int64_t want = std::max<int64_t>(1, int64_t(4) * multiprocessors() / col_blocks);
  return int(std::max<int64_t>(1, std::min<int64_t>(want, (rows + kWarps - 1) / kWarps)));
}

}  // namespace

bool column_sum_supports(int64_t cols, const void* x) {
  return cols > 0 && cols % 2 == 0 && reinterpret_cast<uintptr_t>(x) % 8 == 0;
}

int64_t column_sum_scratch(int64_t rows, int64_t cols) {
  return int64_t(row_parts(rows, cols)) * cols;
}

void column_sum(const void* x, Dtype tx, int64_t rows, int64_t cols, float* out, float* scratch,
                cudaStream_t s) {
  if (!column_sum_supports(cols, x))
    throw std::invalid_argument("column_sum: width " + std::to_string(cols) +
                                " or alignment without a kernel");
  const int parts = row_parts(rows, cols);
  const dim3 grid(unsigned((cols + kCols - 1) / kCols), unsigned(parts));
  if (tx == Dtype::kBF16)
    column_sum_kernel<__nv_bfloat16>
        <<<grid, kWarps * 32, 0, s>>>(static_cast<const __nv_bfloat16*>(x), rows, cols, scratch);
  else
    column_sum_kernel<float>
        <<<grid, kWarps * 32, 0, s>>>(static_cast<const float*>(x), rows, cols, scratch);
  check_launch("column_sum partial sums");
  sum_partials(scratch, parts, cols, out, s);
}

}  // namespace hacm::cuda
