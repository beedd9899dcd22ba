// project(expmap(x)) and its backward, one warp per row (see hyperbolic.h). Both maps are radial,
// y = s(|x|) x, with Jacobian s I + (s'(n)/n) x xᵀ: the backward needs two row dot products and
// the scales, recomputed from x in registers.
#include <cuda_runtime.h>

#include "accelerated/kernels/cuda_util.cuh"
#include "accelerated/kernels/hyperbolic.h"
#include "accelerated/kernels/rows.cuh"

namespace hacm::cuda {
namespace {

constexpr int kWarps = 8;                 // rows per block
constexpr float kMaxNorm = 1.0f - 1e-5f;  // the projection's radius

// expmap's scale s(n) = tanh(n)/n and c2 = s'(n)/n, with the reference's Taylor series below 0.1
// (the closed form cancels there in float32).
__device__ __forceinline__ void expmap_scales(float n, float& s, float& c2) {
  if (n == 0.f) {
    s = 1.f;
    c2 = -2.f / 3.f;
    return;
  }
  const float t = tanhf(n);
  s = t / n;
  if (n < 0.1f) {
    const float n2 = n * n;
    c2 = -2.f / 3.f + n2 * (8.f / 15.f + n2 * (-102.f / 315.f +
                                               n2 * (496.f / 2835.f + n2 * (-13820.f / 155925.f))));
  } else {
    c2 = (n * (1.f - t * t) - t) / (n * n * n);
  }
}

template <int VPT>
__global__ void __launch_bounds__(kWarps * 32)
    expmap_projection_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                     int64_t rows) {
  constexpr int C = VPT * 32;
  const int lane = threadIdx.x & 31;
  const int64_t row = warp_row<kWarps>();
  if (row >= rows) return;
  const float* xr = x + row * C;
  float v[VPT], q = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    v[j] = xr[lane + 32 * j];
    q += v[j] * v[j];
  }
  const float n = sqrtf(warp_sum(q));
  const float s = n == 0.f ? 1.f : tanhf(n) / n;
  float q1 = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    v[j] *= s;
    q1 += v[j] * v[j];
  }
  const float m = sqrtf(warp_sum(q1));
  const float p = m >= 1.f ? kMaxNorm / m : 1.f;
  float* yr = y + row * C;
#pragma unroll
  for (int j = 0; j < VPT; ++j) yr[lane + 32 * j] = v[j] * p;
}

template <int VPT>
__global__ void __launch_bounds__(kWarps * 32)
    expmap_projection_backward_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                      float* __restrict__ dx, int64_t rows) {
  constexpr int C = VPT * 32;
  const int lane = threadIdx.x & 31;
  const int64_t row = warp_row<kWarps>();
  if (row >= rows) return;
  const float* xr = x + row * C;
  const float* gr = dy + row * C;
  float v[VPT], g[VPT], q = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    v[j] = xr[lane + 32 * j];
    g[j] = gr[lane + 32 * j];
    q += v[j] * v[j];
  }
  const float n = sqrtf(warp_sum(q));
  float s, c2;
  expmap_scales(n, s, c2);
  // y1 = s x; the projection fires where |y1| >= 1: scale kMaxNorm/m, c2 = -kMaxNorm/m³.
  float q1 = 0.f, yg = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const float y1 = s * v[j];
    q1 += y1 * y1;
    yg += y1 * g[j];
  }
  const float m = sqrtf(warp_sum(q1));
  yg = warp_sum(yg);
  if (m >= 1.f) {  // g1 = (kMaxNorm/m) g - (kMaxNorm/m³)(y1·g) y1, uniform over the warp
    const float ps = kMaxNorm / m, pc = -kMaxNorm / (m * m * m) * yg;
#pragma unroll
    for (int j = 0; j < VPT; ++j) g[j] = ps * g[j] + pc * (s * v[j]);
  }
  float xg = 0.f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) xg += v[j] * g[j];
  const float k = c2 * warp_sum(xg);
  float* o = dx + row * C;
#pragma unroll
  for (int j = 0; j < VPT; ++j) o[lane + 32 * j] = s * g[j] + k * v[j];
}

}  // namespace

bool expmap_projection_supports(int64_t cols) {
  return row_width_supported(cols);
}

void expmap_projection_forward(const float* x, float* y, int64_t rows, int64_t cols,
                               cudaStream_t stream) {
  if (rows == 0) return;
  const unsigned blocks = unsigned((rows + kWarps - 1) / kWarps);
  with_width(cols, "expmap_projection_forward", [&](auto vpt) {
    expmap_projection_forward_kernel<decltype(vpt)::value>
        <<<blocks, kWarps * 32, 0, stream>>>(x, y, rows);
  });
  check_launch("expmap_projection forward");
}

void expmap_projection_backward(const float* x, const float* dy, float* dx, int64_t rows,
                                int64_t cols, cudaStream_t stream) {
  if (rows == 0) return;
  const unsigned blocks = unsigned((rows + kWarps - 1) / kWarps);
  with_width(cols, "expmap_projection_backward", [&](auto vpt) {
    expmap_projection_backward_kernel<decltype(vpt)::value>
        <<<blocks, kWarps * 32, 0, stream>>>(x, dy, dx, rows);
  });
  check_launch("expmap_projection backward");
}

}  // namespace hacm::cuda
