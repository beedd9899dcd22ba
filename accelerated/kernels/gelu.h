// The backward of an MLP's first half, fc1 followed by the exact (erf) GELU, on CUDA: one pass
// reads the GELU's output gradient and fc1's output, writes fc1's output gradient and sums it
// over rows for fc1's bias gradient. Unfused, ATen's GELU backward writes that gradient and the
// column-sum kernel reads it again (in the bf16 HA-CM step: GELU backward 0.44 ms, the fc1 bias
// sums the widest of the column sums; bench/NOTES.md entry 15). float32 arithmetic whatever the
// storage type. Plain CUDA; accelerated/fused_linear.cpp (linear_gelu_forward) wraps it.
// Reference twin: ref::gelu_backward and the bias gradient of ref::linear_backward.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "accelerated/kernels/dtype.h"

namespace hacm::cuda {

// Even widths (two columns per thread); dg, h and dh 8-byte aligned.
bool gelu_backward_supports(int64_t cols, const void* dg, const void* h, const void* dh);

// Scratch floats gelu_backward_column_sum needs (per-block partial sums).
int64_t gelu_backward_scratch(int64_t rows, int64_t cols);

// dg [rows, cols], h [rows, cols] (both t) -> dh [rows, cols] (t) = dg * GELU'(h) with
// GELU'(h) = Φ(h) + h φ(h), and db [cols] float32 = the column sums of dh as stored (overwritten).
// Deterministic: fixed order of the partial sums.
void gelu_backward_column_sum(const void* dg, const void* h, Dtype t, void* dh, int64_t rows,
                              int64_t cols, float* db, float* scratch, cudaStream_t stream);

}  // namespace hacm::cuda
