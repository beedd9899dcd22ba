// Column sums (see column_sum.h): the shared column-reduction kernel (column_reduce.cuh) reading
// x, then sum_partials over the per-block partials.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "accelerated/kernels/column_reduce.cuh"
#include "accelerated/kernels/column_sum.h"
#include "accelerated/kernels/partial_sums.h"

namespace hacm::cuda {
namespace {

template <typename T>
struct Load {
  const T* x;
  __device__ float2 operator()(int64_t i) const { return colred::load2(x + i); }
};

template <typename T>
void launch(const void* x, int64_t rows, int64_t cols, float* scratch, cudaStream_t s) {
  colred::column_reduce_kernel<<<colred::grid(rows, cols), colred::kWarps * 32, 0, s>>>(
      Load<T>{static_cast<const T*>(x)}, rows, cols, scratch);
}

}  // namespace

bool column_sum_supports(int64_t cols, const void* x) {
  return cols > 0 && cols % 2 == 0 && reinterpret_cast<uintptr_t>(x) % 8 == 0;
}

int64_t column_sum_scratch(int64_t rows, int64_t cols) {
  return int64_t(colred::row_parts(rows, cols)) * cols;
}

void column_sum(const void* x, Dtype tx, int64_t rows, int64_t cols, float* out, float* scratch,
                cudaStream_t s) {
  if (!column_sum_supports(cols, x))
    throw std::invalid_argument("column_sum: width " + std::to_string(cols) +
                                " or alignment without a kernel");
  if (tx == Dtype::kBF16)
    launch<__nv_bfloat16>(x, rows, cols, scratch, s);
  else
    launch<float>(x, rows, cols, scratch, s);
  check_launch("column_sum partial sums");
  sum_partials(scratch, colred::row_parts(rows, cols), cols, out, s);
}

}  // namespace hacm::cuda
