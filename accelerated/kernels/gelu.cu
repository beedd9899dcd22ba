// GELU backward with the bias gradient (see gelu.h): the column-reduction kernel of
// column_reduce.cuh with a functor that computes and stores dh and returns it as stored, then
// sum_partials.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "accelerated/kernels/column_reduce.cuh"
#include "accelerated/kernels/gelu.h"
#include "accelerated/kernels/partial_sums.h"

namespace hacm::cuda {
namespace {

// dGELU/dh * g for the exact form GELU(h) = h Φ(h): Φ(h) + h φ(h), as ATen computes it in float.
__device__ __forceinline__ float gelu_grad(float g, float h) {
  constexpr float kAlpha = 0.70710678118654752440f;  // 1 / sqrt(2)
  constexpr float kBeta = 0.39894228040143267794f;   // 1 / sqrt(2 pi)
  const float cdf = 0.5f * (1.f + erff(h * kAlpha));
  const float pdf = expf(-0.5f * h * h) * kBeta;
  return g * (cdf + h * pdf);
}

template <typename T>
struct GeluBackward {
  const T* dg;
  const T* h;
  T* dh;
  __device__ float2 operator()(int64_t i) const {
    const float2 g = colred::load2(dg + i), x = colred::load2(h + i);
    return colred::store2(dh + i, make_float2(gelu_grad(g.x, x.x), gelu_grad(g.y, x.y)));
  }
};

template <typename T>
void launch(const void* dg, const void* h, void* dh, int64_t rows, int64_t cols, float* scratch,
            cudaStream_t s) {
  colred::column_reduce_kernel<<<colred::grid(rows, cols), colred::kWarps * 32, 0, s>>>(
      GeluBackward<T>{static_cast<const T*>(dg), static_cast<const T*>(h), static_cast<T*>(dh)},
      rows, cols, scratch);
}

}  // namespace

bool gelu_backward_supports(int64_t cols, const void* dg, const void* h, const void* dh) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; };
  return cols > 0 && cols % 2 == 0 && aligned(dg) && aligned(h) && aligned(dh);
}

int64_t gelu_backward_scratch(int64_t rows, int64_t cols) {
  return int64_t(colred::row_parts(rows, cols)) * cols;
}

void gelu_backward_column_sum(const void* dg, const void* h, Dtype t, void* dh, int64_t rows,
                              int64_t cols, float* db, float* scratch, cudaStream_t s) {
  if (!gelu_backward_supports(cols, dg, h, dh))
    throw std::invalid_argument("gelu_backward_column_sum: width " + std::to_string(cols) +
                                " or alignment without a kernel");
  if (t == Dtype::kBF16)
    launch<__nv_bfloat16>(dg, h, dh, rows, cols, scratch, s);
  else
    launch<float>(dg, h, dh, rows, cols, scratch, s);
  check_launch("gelu backward + column sum");
  sum_partials(scratch, colred::row_parts(rows, cols), cols, db, s);
}

}  // namespace hacm::cuda
