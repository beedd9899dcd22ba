// Fused LayerNorm over the last dimension on CUDA (issue #4: the profile of a bf16 HA-CM step
// puts 3.7 of 18.2 ms of kernel time in LayerNorm forward + backward and ~1.5 ms more in the
// fp32 <-> bf16 casts around it). One warp per row, float32 arithmetic whatever the storage type,
// so under autocast a LayerNorm reads the float32 residual stream and writes the bf16 input of
// the next matmul directly, and its backward reads the bf16 gradient of that matmul.
// Plain CUDA (no torch headers); accelerated/fused_layer_norm.cpp wraps it for autograd.
// Reference twin: ref::layernorm_forward / layernorm_backward (reference/transformer.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "accelerated/kernels/dtype.h"

namespace hacm::cuda {

// Row widths with a compiled kernel (one warp per row, C / 32 values per lane).
bool layer_norm_supports(int64_t cols);

// x [rows, cols] (tx) -> y [rows, cols] (ty) = (x - mean) * rstd * w + b; w, b [cols] float32;
// mean, rstd [rows] float32 saved for the backward. rstd = 1 / sqrt(var + eps), biased variance.
void layer_norm_forward(const void* x, Dtype tx, const float* w, const float* b, void* y, Dtype ty,
                        float* mean, float* rstd, int64_t rows, int64_t cols, float eps,
                        cudaStream_t stream);

// The residual form, a pre-LN block's `s = x + branch; y = LayerNorm(s)` in one pass: x float32
// [rows, cols] (the residual stream), r [rows, cols] (tr; the branch, e.g. bf16 under autocast) ->
// sum [rows, cols] float32 = x + r (rounded once, as ATen's add), y = LayerNorm(sum) as above.
// Saves the add's separate pass over the stream (bench/NOTES.md entry 14).
void add_layer_norm_forward(const float* x, const void* r, Dtype tr, float* sum, const float* w,
                            const float* b, void* y, Dtype ty, float* mean, float* rstd,
                            int64_t rows, int64_t cols, float eps, cudaStream_t stream);

// Scratch floats the backward needs for its per-block weight / bias gradient partial sums.
int64_t layer_norm_backward_scratch(int64_t rows, int64_t cols);

// dy [rows, cols] (tdy), x [rows, cols] (tx), w [cols], mean / rstd [rows] -> dx [rows, cols]
// (tx), dw, db [cols] float32 (overwritten, not accumulated). scratch: layer_norm_backward_scratch
// floats. Deterministic: fixed reduction order for dw / db.
void layer_norm_backward(const void* dy, Dtype tdy, const void* x, Dtype tx, const float* w,
                         const float* mean, const float* rstd, void* dx, float* dw, float* db,
                         float* scratch, int64_t rows, int64_t cols, cudaStream_t stream);

// Backward of the residual form: dy [rows, cols] (tdy), sum [rows, cols] float32 (saved by the
// forward), ds [rows, cols] float32 or nullptr (the gradient sum receives from its other
// consumers) -> dx [rows, cols] float32 = ds + LayerNorm's input gradient (the gradient of x and,
// rounded to tr, of the branch: also written to dr unless dr is nullptr), dw, db [cols] float32.
// Bit for bit what layer_norm_backward followed by autograd's add and cast computes.
void add_layer_norm_backward(const void* dy, Dtype tdy, const float* sum, const float* w,
                             const float* mean, const float* rstd, const float* ds, float* dx,
                             void* dr, Dtype tr, float* dw, float* db, float* scratch, int64_t rows,
                             int64_t cols, cudaStream_t stream);

}  // namespace hacm::cuda
