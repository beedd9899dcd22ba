// Fused LayerNorm kernels (see layer_norm.h). Lane l of a warp holds columns l, l + 32, ...
// (coalesced loads for any storage type); the row statistics are warp-shuffle sums; the weight
// and bias gradients are summed per lane over a block's rows, then over the warps of the block
// (shared memory), then over blocks by sum_partials (partial_sums.h), always in the same order.
// The residual forms (add_layer_norm_*) are the same kernels with the branch pointers set: the
// forward adds the branch into the float32 stream first, the backward adds the incoming gradient
// of the sum and writes the branch's copy of the result.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "accelerated/kernels/cuda_util.cuh"
#include "accelerated/kernels/layer_norm.h"
#include "accelerated/kernels/partial_sums.h"
#include "accelerated/kernels/rows.cuh"

namespace hacm::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block of the forward, warps per block of both kernels

// y = LN(v) * w + b for v = x (r == nullptr) or v = x + r, the float32 sum also stored to s.
template <typename Tx, typename Tr, typename Ty, int VPT>
__global__ void __launch_bounds__(kWarps * 32)
    ln_forward_kernel(const Tx* __restrict__ x, const Tr* __restrict__ r, float* __restrict__ s,
                      const float* __restrict__ w, const float* __restrict__ b, Ty* __restrict__ y,
                      float* __restrict__ mean_out, float* __restrict__ rstd_out, int64_t rows,
                      float eps) {
  constexpr int C = VPT * 32;
  const int lane = threadIdx.x & 31;
  const int64_t row = warp_row<kWarps>();
  if (row >= rows) return;
  const Tx* xr = x + row * C;
  float v[VPT];
#pragma unroll
  for (int j = 0; j < VPT; ++j) v[j] = load(xr + lane + 32 * j);
  if (r) {  // uniform branch; one float32 rounding, as ATen's x + r
    const Tr* rr = r + row * C;
    float* sr = s + row * C;
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      v[j] = __fadd_rn(v[j], load(rr + lane + 32 * j));
      sr[lane + 32 * j] = v[j];
    }
  }
  // Explicitly rounded operations here and in the backward: every instantiation (storage types,
  // with or without the residual add) computes the same bits from the same float32 values.
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) sum = __fadd_rn(sum, v[j]);
  const float mean = __fdiv_rn(warp_sum(sum), float(C));
  float q = 0.f;  // two-pass variance from registers: no cancellation for large means
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const float d = __fsub_rn(v[j], mean);
    q = __fmaf_rn(d, d, q);
  }
  const float rstd = rsqrtf(__fadd_rn(__fdiv_rn(warp_sum(q), float(C)), eps));
  Ty* yr = y + row * C;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const int c = lane + 32 * j;
    store(yr + c, __fmaf_rn(__fmul_rn(__fsub_rn(v[j], mean), rstd), w[c], b[c]));
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, xhat = (x - mean) * rstd,
// plus ds (the gradient the input receives from elsewhere; none when nullptr), also written to
// dr in the branch's type when dr != nullptr. Each term is rounded as autograd's unfused
// LayerNorm backward, add and cast would round it (explicit _rn operations: no contraction), so
// the fused and unfused residual forms agree to the bit. dw += dy * xhat, db += dy per lane, then
// per block into partial[block, 0:C] and partial[gridDim + block, 0:C].
template <typename Tx, typename Tdy, typename Tr, int VPT>
__global__ void __launch_bounds__(kWarps * 32)
    ln_backward_kernel(const Tdy* __restrict__ dy, const Tx* __restrict__ x,
                       const float* __restrict__ w, const float* __restrict__ mean,
                       const float* __restrict__ rstd, const float* __restrict__ ds,
                       Tx* __restrict__ dx, Tr* __restrict__ dr, float* __restrict__ partial,
                       int64_t rows) {
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
      xh[j] = __fmul_rn(__fsub_rn(load(xr + c), m), r);
      const float d = load(dyr + c);
      adw[j] = __fmaf_rn(d, xh[j], adw[j]);
      adb[j] = __fadd_rn(adb[j], d);
      g[j] = __fmul_rn(d, wv[j]);
      s1 = __fadd_rn(s1, g[j]);
      s2 = __fmaf_rn(g[j], xh[j], s2);
    }
    s1 = __fdiv_rn(warp_sum(s1), float(C));
    s2 = __fdiv_rn(warp_sum(s2), float(C));
    Tx* dxr = dx + row * C;
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
      const int c = lane + 32 * j;
      float v = __fmul_rn(r, __fsub_rn(__fsub_rn(g[j], s1), __fmul_rn(xh[j], s2)));
      if (ds) v = __fadd_rn(ds[row * C + c], v);
      store(dxr + c, v);
      if (dr) store(dr + row * C + c, v);
    }
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

int backward_blocks(int64_t rows) {
  // Up to 4 blocks per multiprocessor: enough rows per block to amortise the partial sums.
  const int64_t want = (rows + kWarps - 1) / kWarps;
  return int(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(4) * multiprocessors())));
}

// Calls f(T{}) with T the storage type of t (float or __nv_bfloat16).
template <typename F>
void with_type(Dtype t, F&& f) {
  if (t == Dtype::kBF16)
    f(__nv_bfloat16{});
  else
    f(float{});
}

template <typename Tx, typename Tr, typename Ty, int VPT>
void forward_as(const void* x, const void* r, float* sum, const float* w, const float* b, void* y,
                float* mean, float* rstd, int64_t rows, float eps, cudaStream_t s) {
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  ln_forward_kernel<Tx, Tr, Ty, VPT><<<unsigned(blocks), kWarps * 32, 0, s>>>(
      static_cast<const Tx*>(x), static_cast<const Tr*>(r), sum, w, b, static_cast<Ty*>(y), mean,
      rstd, rows, eps);
}

template <typename Tx, typename Tdy, typename Tr, int VPT>
void backward_as(const void* dy, const void* x, const float* w, const float* mean,
                 const float* rstd, const float* ds, void* dx, void* dr, float* scratch, int blocks,
                 int64_t rows, cudaStream_t s) {
  ln_backward_kernel<Tx, Tdy, Tr, VPT><<<unsigned(blocks), kWarps * 32, 0, s>>>(
      static_cast<const Tdy*>(dy), static_cast<const Tx*>(x), w, mean, rstd, ds,
      static_cast<Tx*>(dx), static_cast<Tr*>(dr), scratch, rows);
}

}  // namespace

bool layer_norm_supports(int64_t cols) {
  return row_width_supported(cols);
}

void layer_norm_forward(const void* x, Dtype tx, const float* w, const float* b, void* y, Dtype ty,
                        float* mean, float* rstd, int64_t rows, int64_t cols, float eps,
                        cudaStream_t s) {
  if (rows == 0) return;
  with_width(cols, "layer_norm_forward", [&](auto vpt) {
    with_type(tx, [&](auto xt) {
      with_type(ty, [&](auto yt) {
        forward_as<decltype(xt), float, decltype(yt), decltype(vpt)::value>(
            x, nullptr, nullptr, w, b, y, mean, rstd, rows, eps, s);
      });
    });
  });
  check_launch("layer_norm forward");
}

void add_layer_norm_forward(const float* x, const void* r, Dtype tr, float* sum, const float* w,
                            const float* b, void* y, Dtype ty, float* mean, float* rstd,
                            int64_t rows, int64_t cols, float eps, cudaStream_t s) {
  if (rows == 0) return;
  if (!r || !sum) throw std::invalid_argument("add_layer_norm_forward: branch and sum required");
  with_width(cols, "add_layer_norm_forward", [&](auto vpt) {
    with_type(tr, [&](auto rt) {
      with_type(ty, [&](auto yt) {
        forward_as<float, decltype(rt), decltype(yt), decltype(vpt)::value>(
            x, r, sum, w, b, y, mean, rstd, rows, eps, s);
      });
    });
  });
  check_launch("add_layer_norm forward");
}

int64_t layer_norm_backward_scratch(int64_t rows, int64_t cols) {
  return 2 * int64_t(backward_blocks(rows)) * cols;
}

namespace {
// The weight and bias gradients from the backward's per-block partials.
void sum_weight_partials(const float* scratch, int blocks, int64_t cols, float* dw, float* db,
                         cudaStream_t s) {
  sum_partials(scratch, blocks, cols, dw, s);
  sum_partials(scratch + int64_t(blocks) * cols, blocks, cols, db, s);
}
}  // namespace

void layer_norm_backward(const void* dy, Dtype tdy, const void* x, Dtype tx, const float* w,
                         const float* mean, const float* rstd, void* dx, float* dw, float* db,
                         float* scratch, int64_t rows, int64_t cols, cudaStream_t s) {
  const int blocks = backward_blocks(rows);
  with_width(cols, "layer_norm_backward", [&](auto vpt) {
    with_type(tx, [&](auto xt) {
      with_type(tdy, [&](auto dyt) {
        backward_as<decltype(xt), decltype(dyt), float, decltype(vpt)::value>(
            dy, x, w, mean, rstd, nullptr, dx, nullptr, scratch, blocks, rows, s);
      });
    });
  });
  check_launch("layer_norm backward");
  sum_weight_partials(scratch, blocks, cols, dw, db, s);
}

void add_layer_norm_backward(const void* dy, Dtype tdy, const float* sum, const float* w,
                             const float* mean, const float* rstd, const float* ds, float* dx,
                             void* dr, Dtype tr, float* dw, float* db, float* scratch, int64_t rows,
                             int64_t cols, cudaStream_t s) {
  const int blocks = backward_blocks(rows);
  with_width(cols, "add_layer_norm_backward", [&](auto vpt) {
    with_type(tdy, [&](auto dyt) {
      with_type(tr, [&](auto rt) {
        backward_as<float, decltype(dyt), decltype(rt), decltype(vpt)::value>(
            dy, sum, w, mean, rstd, ds, dx, dr, scratch, blocks, rows, s);
      });
    });
  });
  check_launch("add_layer_norm backward");
  sum_weight_partials(scratch, blocks, cols, dw, db, s);
}

}  // namespace hacm::cuda
