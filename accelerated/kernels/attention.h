// Scaled dot-product attention, forward only, for head dimension 32 on CUDA (bf16 storage,
// float32 softmax and accumulation): the feature pass of the linear probe and evaluation, where
// no gradient is needed. In the H100 profile of the bf16 step, cuDNN's forward attention handled
// ~0.8 G scores per ms at head dimension 32 (the decoder's 3 layers, 0.757 ms), about a fifth of
// the exp throughput floor; the 128-clip feature pass has ~3.2 G scores (bench/NOTES.md entry
// 19). One block per (sequence, head, 64 queries), four warps of 16 queries, keys and values in
// tiles of 64 through shared memory, tensor-core products (WMMA, or mma.sync with the softmax in
// registers), online softmax in float32.
// Reads q, k, v straight from the qkv projection's output (no copies) and writes the output in
// the [B, N, heads, 32] layout the next projection reads. Plain CUDA;
// accelerated/fused_attention.cpp wraps it. Reference twin: the attention of ref::attention_forward
// (reference/transformer.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hacm::cuda {

// True for the shapes the kernel takes: head dimension 32, model width d = 32 * heads with d % 8
// == 0, 1 <= B <= 65535 sequences, N >= 1 tokens.
bool attention_forward_supports(int64_t d, int64_t heads, int64_t b, int64_t n);

// qkv [B, N, 3d] bf16 (last dim ordered (q|k|v, head, 32), the layout of the qkv projection) ->
// out [B, N, d] bf16 = softmax(q kᵀ / sqrt(32)) v per head, heads side by side in the last dim.
// Both pointers 16-byte aligned.
// lse (optional) [B, heads, N] float32: each row's log2 softmax denominator in the kernel's
// base-2 units, for the backward. mma: the kernel with the softmax in registers (mma.sync
// fragments, FlashAttention-2's scheme) instead of the WMMA one that passes S and P through shared
// memory; the same results up to float32 summation order, the same lse units.
void attention_forward(const void* qkv, void* out, int64_t B, int64_t N, int64_t heads,
                       cudaStream_t stream, float* lse = nullptr, bool mma = true);

// Backward of attention_forward for training: qkv, out [B, N, d] and dout [B, N, d] (bf16), lse
// from the forward -> dqkv [B, N, 3d] bf16, the packed gradient of qkv (no concatenation
// needed). Scratch: dvec [B, heads, N] and dq_acc [B, N, d] float32. dQ is summed with atomic
// adds: not bit-reproducible run to run (dK, dV are). mma: the kernel with its products in
// registers (mma.sync on transposed scores) instead of the WMMA one.
void attention_backward(const void* qkv, const void* out, const void* dout, const float* lse,
                        void* dqkv, float* dvec, float* dq_acc, int64_t B, int64_t N, int64_t heads,
                        cudaStream_t stream, bool mma = true);

}  // namespace hacm::cuda
