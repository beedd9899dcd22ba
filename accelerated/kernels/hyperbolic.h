// The Poincaré-ball map of HA-CM's embeddings, project(expmap(x)), on CUDA in one pass each way.
// In ATen it is ~7 passes over the token tensor forward (two norms, two broadcast products, where)
// and ~10 backward; in the bf16 step its broadcast products, norms and wheres took ~0.7 ms
// (bench/NOTES.md entry 16). One warp per row, float32. Plain CUDA;
// accelerated/fused_hyperbolic.cpp wraps it for autograd. Reference twin:
// ref::expmap_with_projection_forward / _backward (reference/hyperbolic.h), whose scale derivatives
// (with the Taylor series near 0) it follows.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hacm::cuda {

// Row widths with a compiled kernel.
bool expmap_projection_supports(int64_t cols);

// x [rows, cols] float32 -> y [rows, cols] = project(expmap(x)) with expmap(x) = tanh(|x|)/|x| x
// (x at 0: 0) and project(y) = (1 - 1e-5) y / |y| where |y| >= 1 (else y).
void expmap_projection_forward(const float* x, float* y, int64_t rows, int64_t cols,
                               cudaStream_t stream);

// x, dy [rows, cols] float32 -> dx [rows, cols]: the map's Jacobian (transposed) applied to dy,
// the map recomputed from x (nothing saved but x).
void expmap_projection_backward(const float* x, const float* dy, float* dx, int64_t rows,
                                int64_t cols, cudaStream_t stream);

}  // namespace hacm::cuda
