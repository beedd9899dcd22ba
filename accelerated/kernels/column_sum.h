// Column sums of a row-major matrix on CUDA: the bias gradient of a linear layer, sum over rows of
// dy [rows, cols]. The bf16 HA-CM step spent 1.33 of 13.7 ms of kernel time in ATen's reduction
// for these (46 calls, ~3x their memory floor; bench/NOTES.md entry 12). float32 accumulation
// whatever the storage type. Plain CUDA; accelerated/fused_linear.cpp uses it in the backward.
// Reference twin: the bias gradient of ref::linear_backward (reference/transformer.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "accelerated/kernels/dtype.h"

namespace hacm::cuda {

// Even widths (two columns per thread, 4- / 8-byte loads); the pointer must be 8-byte aligned.
bool column_sum_supports(int64_t cols, const void* x);

// Scratch floats column_sum needs (per-block partial sums).
int64_t column_sum_scratch(int64_t rows, int64_t cols);

// x [rows, cols] (tx) -> out [cols] float32 = sum over rows (overwritten). Deterministic: fixed
// order of the partial sums.
void column_sum(const void* x, Dtype tx, int64_t rows, int64_t cols, float* out, float* scratch,
                cudaStream_t stream);

}  // namespace hacm::cuda
