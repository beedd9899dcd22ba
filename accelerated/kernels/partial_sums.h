// The second stage of the custom kernels' deterministic reductions: the weight / bias gradients of
// the fused LayerNorm and the column sums write one row of partial sums per block, and this adds
// the rows in a fixed order. It replaces one thread per column looping over all partials, which
// took 24 us per LayerNorm backward on the H100 (528 partial rows, 2 blocks in flight: 0.57 of
// 13.7 ms per bf16 step; bench/NOTES.md entry 14). Plain CUDA.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hacm::cuda {

// partial [parts, cols] float32 -> out [cols] = sum over the parts (overwritten). Deterministic:
// the same order of additions on every run and device (it depends on parts and cols only).
void sum_partials(const float* partial, int64_t parts, int64_t cols, float* out,
                  cudaStream_t stream);

}  // namespace hacm::cuda
