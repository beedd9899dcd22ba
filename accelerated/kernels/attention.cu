// Forward attention for head dimension 32 (see attention.h). Per block: 64 queries of one
// (sequence, head), four warps of 16. Per key tile of 64: K, V into shared memory (zero rows past
// N); each warp computes S = Q Kᵀ (16 x 64) with WMMA into shared memory, takes the online softmax
// of its rows there (lane: one row, half of the tile's columns; running max m and sum l in
// registers, base-2 exponentials of pre-scaled scores), writes P as bf16, computes P V (16 x 32)
// with WMMA into the same buffer, and adds it to its output rows held in registers after rescaling
// them by exp2(m_old - m_new). Out-of-range keys score -inf; out-of-range queries are not written.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "accelerated/kernels/attention.h"
#include "accelerated/kernels/cuda_util.cuh"

namespace hacm::cuda {
namespace {

using namespace nvcuda;
using bf16 = __nv_bfloat16;

constexpr int kHd = 32;          // head dimension
constexpr int kWarps = 4;        // 16 queries each
constexpr int kQ = 16 * kWarps;  // queries per block
constexpr int kKeys = 64;        // keys per tile
constexpr int kLdX = kHd + 8;    // Q, K, V rows in shared memory (bf16; WMMA: multiple of 8)
constexpr int kLdS = kKeys + 4;  // S rows (float; multiple of 4)
constexpr int kLdP = kKeys + 8;  // P rows (bf16)
constexpr int kLdO = kHd + 4;    // P V rows, in S's buffer (float)
static_assert(kQ == kKeys, "one tile loader for queries and keys");

// Every member's offset and size are multiples of 32 bytes (WMMA's pointer alignment).
struct __align__(32) Smem {
  bf16 q[kQ * kLdX];
  bf16 k[kKeys * kLdX];
  bf16 v[kKeys * kLdX];
  float s[kWarps][16 * kLdS];
  bf16 p[kWarps][16 * kLdP];
};

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBcol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragBrow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// 64 rows x 32 bf16 of part `which` (0 q, 1 k, 2 v) starting at token r0 into dst (rows past n
// zero): 256 chunks of 16 bytes, two per thread.
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* seq, int64_t row_stride,
                                          int part_offset, int r0, int n) {
  for (int i = threadIdx.x; i < kKeys * 4; i += kWarps * 32) {
    const int r = i >> 2, c = (i & 3) * 8;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r0 + r < n)
      val = *reinterpret_cast<const uint4*>(seq + int64_t(r0 + r) * row_stride + part_offset + c);
    *reinterpret_cast<uint4*>(dst + r * kLdX + c) = val;
  }
}

__global__ void __launch_bounds__(kWarps * 32)
    attention_forward_kernel(const bf16* __restrict__ qkv, bf16* __restrict__ out, int n, int d,
                             float scale_log2) {
  __shared__ Smem sm;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, q0 = blockIdx.x * kQ;
  const int64_t row_stride = 3 * int64_t(d);
  const bf16* seq = qkv + int64_t(blockIdx.z) * n * row_stride;  // this sequence's rows
  const int hq = h * kHd, hk = d + h * kHd, hv = 2 * d + h * kHd;
  load_tile(sm.q, seq, row_stride, hq, q0, n);
  __syncthreads();
  FragA qa[kHd / 16];  // this warp's 16 queries, kept for every key tile
  for (int kk = 0; kk < kHd / 16; ++kk)
    wmma::load_matrix_sync(qa[kk], sm.q + warp * 16 * kLdX + kk * 16, kLdX);

  const int r = lane & 15, half = lane >> 4;  // this lane's row of the warp's 16, and half
  float o[kHd / 2];                           // output row r, columns half * 16 .. + 16
  for (int c = 0; c < kHd / 2; ++c) o[c] = 0.f;
  float m = -INFINITY, l = 0.f;  // running max (base-2 scaled scores) and sum of row r
  float* S = sm.s[warp];
  bf16* P = sm.p[warp];

  for (int k0 = 0; k0 < n; k0 += kKeys) {
    __syncthreads();  // every warp is done with the previous tile's K and V
    load_tile(sm.k, seq, row_stride, hk, k0, n);
    load_tile(sm.v, seq, row_stride, hv, k0, n);
    __syncthreads();
    for (int j = 0; j < kKeys / 16; ++j) {  // S[:, 16j .. 16j + 16] = Q K[16j ..]ᵀ
      FragC acc;
      wmma::fill_fragment(acc, 0.f);
      for (int kk = 0; kk < kHd / 16; ++kk) {
        FragBcol kb;  // (dim, key) at k[key * kLdX + dim]: Kᵀ
        wmma::load_matrix_sync(kb, sm.k + j * 16 * kLdX + kk * 16, kLdX);
        wmma::mma_sync(acc, qa[kk], kb, acc);
      }
      wmma::store_matrix_sync(S + j * 16, acc, kLdS, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax of row r over this tile's columns half * 32 .. + 32 (visited rotated by r,
    // which spreads the lanes over the shared-memory banks).
    float s[32], mt = -INFINITY;
#pragma unroll
    for (int t = 0; t < 32; ++t) {
      const int col = half * 32 + ((t + r) & 31);
      s[t] = k0 + col < n ? S[r * kLdS + col] * scale_log2 : -INFINITY;
      mt = fmaxf(mt, s[t]);
    }
    mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 16));  // the other half of row r
    const float m_new = fmaxf(m, mt);  // finite: every tile has at least one key < n
    const float alpha = exp2f(m - m_new);
    float ls = 0.f;
#pragma unroll
    for (int t = 0; t < 32; ++t) {
      const int col = half * 32 + ((t + r) & 31);
      const float p = exp2f(s[t] - m_new);
      ls += p;
      P[r * kLdP + col] = __float2bfloat16_rn(p);
    }
    ls += __shfl_xor_sync(0xffffffffu, ls, 16);
    l = l * alpha + ls;
    m = m_new;
#pragma unroll
    for (int c = 0; c < kHd / 2; ++c) o[c] *= alpha;
    __syncwarp();  // P written, S read by every lane: S's buffer takes P V next
    for (int j = 0; j < kHd / 16; ++j) {  // (P V)[:, 16j .. 16j + 16] into S's buffer
      FragC acc;
      wmma::fill_fragment(acc, 0.f);
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        FragA pa;
        FragBrow vb;
        wmma::load_matrix_sync(pa, P + kk * 16, kLdP);
        wmma::load_matrix_sync(vb, sm.v + kk * 16 * kLdX + j * 16, kLdX);
        wmma::mma_sync(acc, pa, vb, acc);
      }
      wmma::store_matrix_sync(S + j * 16, acc, kLdO, wmma::mem_row_major);
    }
    __syncwarp();
#pragma unroll
    for (int c = 0; c < kHd / 2; ++c) o[c] += S[r * kLdO + half * 16 + c];
    __syncwarp();  // S read before the next tile overwrites it
  }
  const int q = q0 + warp * 16 + r;
  if (q < n) {
    const float inv = 1.f / l;
    bf16* dst = out + (int64_t(blockIdx.z) * n + q) * d + hq + half * 16;
#pragma unroll
    for (int c = 0; c < kHd / 2; ++c) dst[c] = __float2bfloat16_rn(o[c] * inv);
  }
}

}  // namespace

bool attention_forward_supports(int64_t d, int64_t heads, int64_t b, int64_t n) {
  return heads > 0 && heads <= 65535 && d == kHd * heads && d % 8 == 0 && b >= 1 && b <= 65535 &&
         n >= 1 && n < (int64_t(1) << 30);
}

void attention_forward(const void* qkv, void* out, int64_t B, int64_t N, int64_t heads,
                       cudaStream_t stream) {
  const int64_t d = kHd * heads;
  if (!attention_forward_supports(d, heads, B, N))
    throw std::invalid_argument("attention_forward: unsupported shape (sequences " +
                                std::to_string(B) + ", heads " + std::to_string(heads) +
                                ", tokens " + std::to_string(N) + ")");
  // softmax(s / sqrt(32)) through base-2 exponentials: scale by log2(e) / sqrt(32).
  const float scale_log2 = float(1.4426950408889634 / std::sqrt(double(kHd)));
  const dim3 grid(unsigned((N + kQ - 1) / kQ), unsigned(heads), unsigned(B));
  attention_forward_kernel<<<grid, kWarps * 32, 0, stream>>>(
      static_cast<const bf16*>(qkv), static_cast<bf16*>(out), int(N), int(d), scale_log2);
  check_launch("attention forward");
}

}  // namespace hacm::cuda
