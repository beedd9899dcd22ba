// Partial-row sums (see partial_sums.h). A block covers 32 columns, lane l column l: every load of
// a warp is 128 contiguous bytes. The 16 warps of a block take the partial rows round-robin
// (warp w: rows w, w + 16, ...), each with four independent accumulators so that several loads
// are in flight; the 16 x 4 sums then meet in shared memory and warp 0 adds them in a fixed order.
#include <cuda_runtime.h>

#include "accelerated/kernels/cuda_util.cuh"
#include "accelerated/kernels/partial_sums.h"

namespace hacm::cuda {
namespace {

constexpr int kWarps = 16, kAcc = 4;

__global__ void __launch_bounds__(kWarps * 32)
    sum_partials_kernel(const float* __restrict__ partial, int64_t parts, int64_t cols,
                        float* __restrict__ out) {
  __shared__ float red[kWarps][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = int64_t(blockIdx.x) * 32 + lane;
  float acc[kAcc] = {0.f, 0.f, 0.f, 0.f};
  if (c < cols) {
    int64_t k = warp;
    for (; k + (kAcc - 1) * kWarps < parts; k += kAcc * kWarps) {
#pragma unroll
      for (int a = 0; a < kAcc; ++a) acc[a] += partial[(k + a * kWarps) * cols + c];
    }
    for (int a = 0; k < parts; k += kWarps, ++a) acc[a] += partial[k * cols + c];
  }
  red[warp][lane] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  __syncthreads();
  if (warp == 0 && c < cols) {
    float t = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) t += red[w][lane];
    out[c] = t;
  }
}

}  // namespace

void sum_partials(const float* partial, int64_t parts, int64_t cols, float* out,
                  cudaStream_t stream) {
  if (cols <= 0) return;
  sum_partials_kernel<<<unsigned((cols + 31) / 32), kWarps * 32, 0, stream>>>(partial, parts, cols,
                                                                              out);
  check_launch("partial sums");
}

}  // namespace hacm::cuda
