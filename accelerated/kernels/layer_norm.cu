// Fused LayerNorm kernels (see layer_norm.h). Lane l of a warp holds columns l, l + 32, ...
// (coalesced loads for any storage type); the row statistics are warp-shuffle sums; the weight
// and bias gradients are summed per lane over a block's rows, then over the warps of the block
// (shared memory), then over blocks by a second kernel, always in the same order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "accelerated/kernels/cuda_util.cuh"
#include "accelerated/kernels/layer_norm.h"

namespace hacm::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block of the forward, warps per block of both kernels

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

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename Tx, typename Ty, int VPT>
__global__ void __launch_bounds__(kWarps * 32)
    ln_forward_kernel(const Tx* __restrict__ x, const float* __restrict__ w,
                      const float* __restrict__ b, Ty* __restrict__ y, float* __restrict__ mean_out,
                      float* __restrict__ rstd_out, int64_t rows, float eps) {
  constexpr int C = VPT * 32;
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= rows) return;
  const Tx* xr = x + row * C;
  float v[VPT];
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    v[j] = load(xr + lane + 32 * j);
    s += v[j];
  }
  const float mean = warp_sum(s) / float(C);
  float q = 0.f;  // two-pass variance from registers: no cancellation for large means
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const float d = v[j] - mean;
    q += d * d;
  }
  const float rstd = rsqrtf(warp_sum(q) / float(C) + eps);
  Ty* yr = y + row * C;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const int c = lane + 32 * j;
    store(yr + c, (v[j] - mean) * rstd * w[c] + b[c]);
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, xhat = (x - mean) * rstd;
// dw += dy * xhat, db += dy per lane, then per block into partial[block, 0:C] and
// partial[gridDim + block, 0:C].
template <typename Tx, typename Tdy, int VPT>
__global__ void __launch_bounds__(kWarps * 32)
    ln_backward_kernel(const Tdy* __restrict__ dy, const Tx* __restrict__ x,
                       const float* __restrict__ w, const float* __restrict__ mean,
                       const float* __restrict__ rstd, Tx* __restrict__ dx,
                       float* __restrict__ partial, int64_t rows) {
  constexpr int C = VPT * 32;
  __shared__ float red[kWarps][C];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float wv[VPT], adw[VPT], adb[VPT];
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    wv[j] = w[lane + 32 * j];
    adw[j] = adb[j] = 0.f;
  }
  for (int64_t row = int64_t(blockIdx.x) * kWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kWarps) {
    const float m = mean[row], r = rstd[row];
    const Tx* xr = x + row * C;
    const Tdy* dyr = dy + row * C;
    float xh[VPT], g[VPT];
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      const int c = lane + 32 * j;
      xh[j] = (load(xr + c) - m) * r;
      const float d = load(dyr + c);
      adw[j] += d * xh[j];
      adb[j] += d;
      g[j] = d * wv[j];
      s1 += g[j];
      s2 += g[j] * xh[j];
    }
    s1 = warp_sum(s1) / float(C);
    s2 = warp_sum(s2) / float(C);
    Tx* dxr = dx + row * C;
#pragma unroll
    for (int j = 0; j < VPT; ++j) store(dxr + lane + 32 * j, r * (g[j] - s1 - xh[j] * s2));
  }
  for (int pass = 0; pass < 2; ++pass) {
#pragma unroll
    for (int j = 0; j < VPT; ++j) red[warp][lane + 32 * j] = pass == 0 ? adw[j] : adb[j];
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      float t = 0.f;
#pragma unroll
      for (int k = 0; k < kWarps; ++k) t += red[k][c];
      partial[(int64_t(pass) * gridDim.x + blockIdx.x) * C + c] = t;
    }
    __syncthreads();
  }
}

// out[c] = sum over blocks of partial[block, c] (dw from the first half, db from the second).
__global__ void ln_sum_partials_kernel(const float* __restrict__ partial, int blocks, int C,
                                       float* __restrict__ dw, float* __restrict__ db) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float tw = 0.f, tb = 0.f;
  for (int k = 0; k < blocks; ++k) {
    tw += partial[int64_t(k) * C + c];
    tb += partial[int64_t(blocks + k) * C + c];
  }
  dw[c] = tw;
  db[c] = tb;
}

int backward_blocks(int64_t rows) {
  // Up to 4 blocks per multiprocessor: enough rows per block to amortise the partial sums.
  const int64_t want = (rows + kWarps - 1) / kWarps;
  return int(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(4) * multiprocessors())));
}

template <typename Tx, typename Ty, int VPT>
void forward_as(const void* x, const float* w, const float* b, void* y, float* mean, float* rstd,
                int64_t rows, float eps, cudaStream_t s) {
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  ln_forward_kernel<Tx, Ty, VPT><<<unsigned(blocks), kWarps * 32, 0, s>>>(
      static_cast<const Tx*>(x), w, b, static_cast<Ty*>(y), mean, rstd, rows, eps);
}

template <int VPT>
void forward_cols(const void* x, Dtype tx, const float* w, const float* b, void* y, Dtype ty,
                  float* mean, float* rstd, int64_t rows, float eps, cudaStream_t s) {
  using BF = __nv_bfloat16;
  if (tx == Dtype::kF32 && ty == Dtype::kF32)
    forward_as<float, float, VPT>(x, w, b, y, mean, rstd, rows, eps, s);
  else if (tx == Dtype::kF32)
    forward_as<float, BF, VPT>(x, w, b, y, mean, rstd, rows, eps, s);
  else if (ty == Dtype::kF32)
    forward_as<BF, float, VPT>(x, w, b, y, mean, rstd, rows, eps, s);
  else
    forward_as<BF, BF, VPT>(x, w, b, y, mean, rstd, rows, eps, s);
}

template <typename Tx, typename Tdy, int VPT>
void backward_as(const void* dy, const void* x, const float* w, const float* mean,
                 const float* rstd, void* dx, float* scratch, int blocks, int64_t rows,
                 cudaStream_t s) {
  ln_backward_kernel<Tx, Tdy, VPT><<<unsigned(blocks), kWarps * 32, 0, s>>>(
      static_cast<const Tdy*>(dy), static_cast<const Tx*>(x), w, mean, rstd, static_cast<Tx*>(dx),
      scratch, rows);
}

template <int VPT>
void backward_cols(const void* dy, Dtype tdy, const void* x, Dtype tx, const float* w,
                   const float* mean, const float* rstd, void* dx, float* scratch, int blocks,
                   int64_t rows, cudaStream_t s) {
  using BF = __nv_bfloat16;
  if (tx == Dtype::kF32 && tdy == Dtype::kF32)
    backward_as<float, float, VPT>(dy, x, w, mean, rstd, dx, scratch, blocks, rows, s);
  else if (tx == Dtype::kF32)
    backward_as<float, BF, VPT>(dy, x, w, mean, rstd, dx, scratch, blocks, rows, s);
  else if (tdy == Dtype::kF32)
    backward_as<BF, float, VPT>(dy, x, w, mean, rstd, dx, scratch, blocks, rows, s);
  else
    backward_as<BF, BF, VPT>(dy, x, w, mean, rstd, dx, scratch, blocks, rows, s);
}

// Calls f(std::integral_constant<int, VPT>) for a width with a kernel (VPT = cols / 32 values per
// lane); layer_norm_supports lists the same widths.
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

bool layer_norm_supports(int64_t cols) {
  return cols == 64 || cols == 128 || cols == 256 || cols == 512;
}

void layer_norm_forward(const void* x, Dtype tx, const float* w, const float* b, void* y, Dtype ty,
                        float* mean, float* rstd, int64_t rows, int64_t cols, float eps,
                        cudaStream_t s) {
  if (rows == 0) return;
  with_width(cols, "layer_norm_forward", [&](auto vpt) {
    forward_cols<decltype(vpt)::value>(x, tx, w, b, y, ty, mean, rstd, rows, eps, s);
  });
  check_launch("layer_norm forward");
}

int64_t layer_norm_backward_scratch(int64_t rows, int64_t cols) {
  return 2 * int64_t(backward_blocks(rows)) * cols;
}

void layer_norm_backward(const void* dy, Dtype tdy, const void* x, Dtype tx, const float* w,
                         const float* mean, const float* rstd, void* dx, float* dw, float* db,
                         float* scratch, int64_t rows, int64_t cols, cudaStream_t s) {
  const int blocks = backward_blocks(rows);
  with_width(cols, "layer_norm_backward", [&](auto vpt) {
    backward_cols<decltype(vpt)::value>(dy, tdy, x, tx, w, mean, rstd, dx, scratch, blocks, rows,
                                        s);
  });
  check_launch("layer_norm backward");
  ln_sum_partials_kernel<<<unsigned((cols + 127) / 128), 128, 0, s>>>(scratch, blocks, int(cols),
                                                                      dw, db);
  check_launch("layer_norm weight-gradient sums");
}

}  // namespace hacm::cuda
