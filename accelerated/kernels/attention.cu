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

// One warp: out[16][64] (float, ld kLdS) = rows[16][32] (bf16, ld kLdX) x tile[64][32]ᵀ, the
// scores of 16 queries against a tile of 64 keys (or dO against a tile of values).
__device__ __forceinline__ void times_tile_t(const bf16* rows, const bf16* tile, float* out) {
  FragA a[kHd / 16];
  for (int kk = 0; kk < kHd / 16; ++kk) wmma::load_matrix_sync(a[kk], rows + kk * 16, kLdX);
  for (int j = 0; j < kKeys / 16; ++j) {
    FragC acc;
    wmma::fill_fragment(acc, 0.f);
    for (int kk = 0; kk < kHd / 16; ++kk) {
      FragBcol b;  // (dim, key) at tile[key * kLdX + dim]: tileᵀ
      wmma::load_matrix_sync(b, tile + j * 16 * kLdX + kk * 16, kLdX);
      wmma::mma_sync(acc, a[kk], b, acc);
    }
    wmma::store_matrix_sync(out + j * 16, acc, kLdS, wmma::mem_row_major);
  }
}

// One warp: out[16][32] (float, ld kLdO) = w[16][64] (bf16, ld kLdP) x tile[64][32], weights of
// 16 rows over a tile of 64 keys applied to the tile's rows (P V, or dS K).
__device__ __forceinline__ void times_tile(const bf16* w, const bf16* tile, float* out) {
  for (int j = 0; j < kHd / 16; ++j) {
    FragC acc;
    wmma::fill_fragment(acc, 0.f);
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      FragA a;
      FragBrow b;
      wmma::load_matrix_sync(a, w + kk * 16, kLdP);
      wmma::load_matrix_sync(b, tile + kk * 16 * kLdX + j * 16, kLdX);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(out + j * 16, acc, kLdO, wmma::mem_row_major);
  }
}

__global__ void __launch_bounds__(kWarps * 32)
    attention_forward_kernel(const bf16* __restrict__ qkv, bf16* __restrict__ out,
                             float* __restrict__ lse, int n, int d, float scale_log2) {
  __shared__ Smem sm;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, q0 = blockIdx.x * kQ;
  const int64_t row_stride = 3 * int64_t(d);
  const bf16* seq = qkv + int64_t(blockIdx.z) * n * row_stride;  // this sequence's rows
  const int hq = h * kHd, hk = d + h * kHd, hv = 2 * d + h * kHd;
  load_tile(sm.q, seq, row_stride, hq, q0, n);  // read after the loop's first barrier
  const int r = lane & 15, half = lane >> 4;    // this lane's row of the warp's 16, and half
  float o[kHd / 2];                             // output row r, columns half * 16 .. + 16
  for (int c = 0; c < kHd / 2; ++c) o[c] = 0.f;
  float m = -INFINITY, l = 0.f;  // running max (base-2 scaled scores) and sum of row r
  float* S = sm.s[warp];
  bf16* P = sm.p[warp];

  for (int k0 = 0; k0 < n; k0 += kKeys) {
    __syncthreads();  // every warp is done with the previous tile's K and V
    load_tile(sm.k, seq, row_stride, hk, k0, n);
    load_tile(sm.v, seq, row_stride, hv, k0, n);
    __syncthreads();
    times_tile_t(sm.q + warp * 16 * kLdX, sm.k, S);  // S = Q_w Kᵀ
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
    times_tile(P, sm.v, S);
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
    // log2 of the row's softmax denominator in the base-2 scaled units: P = exp2(s' - lse).
    if (lse && half == 0) lse[(int64_t(blockIdx.z) * gridDim.y + h) * n + q] = m + log2f(l);
  }
}

// ---- forward with the softmax in registers (FlashAttention-2's register scheme): the same
// blocking (64 queries, four warps of 16, key tiles of 64), but S = Q Kᵀ and P V by mma.sync
// m16n8k16 with PTX's documented fragment layouts, so S stays in the accumulator registers, the
// row max and sum take two quad shuffles, and P goes from S's accumulators into P V's A operand
// without shared memory (the accumulator of two adjacent 8-key tiles has the A operand's layout
// for 16 keys). Shared memory holds Q, K and V transposed (14.8 KB, against 41 KB above).

constexpr int kLdVt = kKeys + 8;  // Vᵀ rows [dim][key] (bf16): 4-byte fragment loads, no conflicts

struct __align__(16) MmaSmem {
  bf16 q[kQ * kLdX];
  bf16 k[kKeys * kLdX];
  bf16 vt[kHd * kLdVt];
};

__device__ __forceinline__ uint32_t ld32(const bf16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the low half
  return *reinterpret_cast<const uint32_t*>(&v);
}

// d (16 x 8, float32) += a (16 x 16, bf16) b (16 x 8, bf16). Lane l holds, with g = l / 4 and
// t = l % 4: a = {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)} (row, column pairs), b =
// {(2t..2t+1, g), (2t+8.., g)} (row pairs, column), d = {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8,
// 2t+1)}; in each 32-bit register the lower-indexed element sits in the low half.
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
#ifdef HACM_CUDA_EMULATION  // the CPU emulator of the tests (tests/cuda_emu): the same product
  hacm_emu::mma_m16n8k16_bf16(d, a, b0, b1);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Part `which` (v) of 64 tokens from r0, transposed: dst[dim * kLdVt + token] (zero past n). A
// warp takes 32 consecutive tokens at one group of 8 dimensions, so its 2-byte stores fall on
// consecutive addresses (no bank conflicts; a token-major walk would conflict 4 ways).
__device__ __forceinline__ void load_tile_t(bf16* dst, const bf16* seq, int64_t row_stride,
                                            int part_offset, int r0, int n) {
  for (int i = threadIdx.x; i < kKeys * 4; i += kWarps * 32) {
    const int r = i & (kKeys - 1), c = (i / kKeys) * 8;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r0 + r < n)
      val = *reinterpret_cast<const uint4*>(seq + int64_t(r0 + r) * row_stride + part_offset + c);
    const bf16* e = reinterpret_cast<const bf16*>(&val);
#pragma unroll
    for (int j = 0; j < 8; ++j) dst[(c + j) * kLdVt + r] = e[j];
  }
}

// A operands of rows r0 .. r0 + 15 of a row-major bf16 tile (row stride Ld), Steps k-steps of 16
// columns: a[kk] covers columns kk * 16 .. + 16.
template <int Ld, int Steps>
__device__ __forceinline__ void row_fragments(const bf16* tile, int r0, int g, int t,
                                              uint32_t (&a)[Steps][4]) {
  const bf16* base = tile + r0 * Ld + 2 * t;
#pragma unroll
  for (int kk = 0; kk < Steps; ++kk) {
    a[kk][0] = ld32(base + g * Ld + kk * 16);
    a[kk][1] = ld32(base + (g + 8) * Ld + kk * 16);
    a[kk][2] = ld32(base + g * Ld + kk * 16 + 8);
    a[kk][3] = ld32(base + (g + 8) * Ld + kk * 16 + 8);
  }
}

// acc[j] (16 x 8, j = 0..7) = a (16 x 32) x rows[j * 8 .. + 8]ᵀ of a row-major tile (ld kLdX):
// 16 rows against 64 tokens.
__device__ __forceinline__ void times_rows_t(const uint32_t (&a)[2][4], const bf16* rows, int g,
                                             int t, float (&acc)[kKeys / 8][4]) {
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j) {
    acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    const bf16* r = rows + (j * 8 + g) * kLdX + 2 * t;
#pragma unroll
    for (int kk = 0; kk < 2; ++kk)
      mma16816(acc[j], a[kk], ld32(r + kk * 16), ld32(r + kk * 16 + 8));
  }
}

// The accumulators of 8 tiles of 8 tokens (16 rows x 64 tokens) as A operands over the 64 tokens,
// rounded to bf16: tile j is half (j & 1) of the operand for tokens (j / 2) * 16 .. + 16 (the
// accumulator layout of two adjacent tiles is the A layout of 16 columns).
__device__ __forceinline__ void to_a_operands(const float (&x)[kKeys / 8][4],
                                              uint32_t (&w)[kKeys / 16][4]) {
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j) {
    w[j >> 1][(j & 1) * 2] = pack_bf16(x[j][0], x[j][1]);      // row g
    w[j >> 1][(j & 1) * 2 + 1] = pack_bf16(x[j][2], x[j][3]);  // row g + 8
  }
}

// acc[nt] (16 x 8, nt = 0..3) += w (16 x 64, A operands per 16 tokens) x tile (64 tokens x 32
// dims) given transposed (ld kLdVt): the weighted sum over the 64 tokens.
__device__ __forceinline__ void times_transposed(const uint32_t (&w)[kKeys / 16][4],
                                                 const bf16* tile_t, int g, int t,
                                                 float (&acc)[kHd / 8][4]) {
#pragma unroll
  for (int nt = 0; nt < kHd / 8; ++nt) {
    const bf16* r = tile_t + (nt * 8 + g) * kLdVt + 2 * t;
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
      mma16816(acc[nt], w[kk], ld32(r + kk * 16), ld32(r + kk * 16 + 8));
  }
}

__global__ void __launch_bounds__(kWarps * 32)
    attention_forward_mma_kernel(const bf16* __restrict__ qkv, bf16* __restrict__ out,
                                 float* __restrict__ lse, int n, int d, float scale_log2) {
  __shared__ MmaSmem sm;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;  // fragment row group and column pair (see mma16816)
  const int h = blockIdx.y, q0 = blockIdx.x * kQ;
  const int64_t row_stride = 3 * int64_t(d);
  const bf16* seq = qkv + int64_t(blockIdx.z) * n * row_stride;
  const int hq = h * kHd, hk = d + h * kHd, hv = 2 * d + h * kHd;
  load_tile(sm.q, seq, row_stride, hq, q0, n);
  __syncthreads();
  // The warp's 16 query rows as the A operands of S = Q Kᵀ (dimensions 0-15, 16-31).
  uint32_t qa[2][4];
  row_fragments<kLdX, 2>(sm.q, warp * 16, g, t, qa);
  // Output rows g and g + 8 of the warp, dimensions nt * 8 + 2t, + 1 (accumulator layout).
  float o[kHd / 8][4];
#pragma unroll
  for (int nt = 0; nt < kHd / 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // running max / sum, rows g, g + 8

  for (int k0 = 0; k0 < n; k0 += kKeys) {
    __syncthreads();  // every warp is done with the previous tile (and with Q's fragments)
    load_tile(sm.k, seq, row_stride, hk, k0, n);
    load_tile_t(sm.vt, seq, row_stride, hv, k0, n);
    __syncthreads();
    // S = Q Kᵀ for 8 tiles of 8 keys; B operand (dim, key) = K[key][dim], a pair per register.
    float s[kKeys / 8][4];
    times_rows_t(qa, sm.k, g, t, s);
    // Base-2 scaled scores, keys past n at -inf (only the last tile has any: the test is uniform
    // across the block); the tile's row maxima over the quad.
    const bool tail = k0 + kKeys > n;
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = k0 + j * 8 + 2 * t + (e & 1);
        s[j][e] = tail && col >= n ? -INFINITY : s[j][e] * scale_log2;
        mt[e >> 1] = fmaxf(mt[e >> 1], s[j][e]);
      }
    float alpha[2], ls[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mt[i] = fmaxf(mt[i], __shfl_xor_sync(0xffffffffu, mt[i], 1));
      mt[i] = fmaxf(mt[i], __shfl_xor_sync(0xffffffffu, mt[i], 2));
      const float m_new = fmaxf(m[i], mt[i]);  // finite: key k0 < n is in every tile
      alpha[i] = exp2f(m[i] - m_new);
      m[i] = m_new;
    }
    // P = exp2(s - m) in place (sums in float32, the P V operand rounded to bf16).
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = exp2f(s[j][e] - m[e >> 1]);
      ls[0] += s[j][0] + s[j][1];
      ls[1] += s[j][2] + s[j][3];
    }
    uint32_t pa[kKeys / 16][4];
    to_a_operands(s, pa);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      ls[i] += __shfl_xor_sync(0xffffffffu, ls[i], 1);
      ls[i] += __shfl_xor_sync(0xffffffffu, ls[i], 2);
      l[i] = l[i] * alpha[i] + ls[i];
    }
    // O = alpha O + P V; B operand (key, dim) = Vᵀ[dim][key], a pair per register.
#pragma unroll
    for (int nt = 0; nt < kHd / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[nt][e] *= alpha[e >> 1];
    times_transposed(pa, sm.vt, g, t, o);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int q = q0 + warp * 16 + g + 8 * i;
    if (q >= n) continue;
    const float inv = 1.f / l[i];
    bf16* dst = out + (int64_t(blockIdx.z) * n + q) * d + hq + 2 * t;
#pragma unroll
    for (int nt = 0; nt < kHd / 8; ++nt)
      *reinterpret_cast<__nv_bfloat162*>(dst + nt * 8) =
          __floats2bfloat162_rn(o[nt][2 * i] * inv, o[nt][2 * i + 1] * inv);
    // Same units as the WMMA forward's: P = exp2(s' - lse) in the backward.
    if (lse && t == 0) lse[(int64_t(blockIdx.z) * gridDim.y + h) * n + q] = m[i] + log2f(l[i]);
  }
}

// ---- backward (FlashAttention-2's scheme): a block per (sequence, head, 64 keys) walks every
// tile of 64 queries, recomputes P = exp2(s' - lse) from the forward's log-sum-exp, and
// accumulates dV = Pᵀ dO and dK = dSᵀ Q for its keys in WMMA accumulators (each warp 16 keys);
// dS = P (dP - D) / sqrt(32) with dP = dO Vᵀ and D = rowsum(dO * O); dQ = dS K goes to a float32
// buffer by atomic adds (so dQ's summation order varies run to run, as cuDNN's).

// The log-sum-exp and D of query tile q0's 64 rows into shared memory; rows past n get lse = +inf
// (P = exp2(-inf) = 0: no contribution) and D = 0.
__device__ __forceinline__ void stage_row_stats(float* lse_s, float* dvec_s, const float* lse_bh,
                                                const float* dvec_bh, int q0, int n) {
  for (int i = threadIdx.x; i < kQ; i += kWarps * 32) {
    const bool ok = q0 + i < n;
    lse_s[i] = ok ? lse_bh[q0 + i] : INFINITY;
    dvec_s[i] = ok ? dvec_bh[q0 + i] : 0.f;
  }
}

struct __align__(32) BwdSmem {
  bf16 k[kKeys * kLdX];
  bf16 v[kKeys * kLdX];
  bf16 q[kQ * kLdX];
  bf16 dout[kQ * kLdX];
  float lse[kQ];
  float dvec[kQ];
  float s[kWarps][16 * kLdS];
  bf16 p[kQ * kLdP];   // P of the query tile, [query][key]
  bf16 ds[kQ * kLdP];  // dS / sqrt(32), [query][key]
};
using FragAcol = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;

// D[b, h, q] = sum over the head's 32 columns of dO * O (one thread per (row, head)).
__global__ void attention_dot_kernel(const bf16* __restrict__ dout, const bf16* __restrict__ out,
                                     float* __restrict__ dvec, int64_t rows, int n, int heads) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * heads) return;
  const int64_t row = i / heads;
  const int h = int(i % heads), d = heads * kHd;
  const bf16* a = dout + row * d + h * kHd;
  const bf16* o = out + row * d + h * kHd;
  float t = 0.f;
#pragma unroll
  for (int c = 0; c < kHd; ++c) t += __bfloat162float(a[c]) * __bfloat162float(o[c]);
  dvec[((row / n) * heads + h) * n + row % n] = t;
}

__global__ void __launch_bounds__(kWarps * 32)
    attention_backward_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ dout,
                              const float* __restrict__ lse, const float* __restrict__ dvec,
                              float* __restrict__ dq_acc, bf16* __restrict__ dqkv, int n, int d,
                              float scale_log2, float scale) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  BwdSmem& sm = *reinterpret_cast<BwdSmem*>(smem_raw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, k0 = blockIdx.x * kKeys;
  const int64_t b = blockIdx.z, row_stride = 3 * int64_t(d);
  const bf16* seq = qkv + b * n * row_stride;
  const bf16* dseq = dout + b * n * d;
  const int hq = h * kHd, hk = d + h * kHd, hv = 2 * d + h * kHd;
  const float* lse_bh = lse + (b * gridDim.y + h) * n;
  const float* dvec_bh = dvec + (b * gridDim.y + h) * n;
  load_tile(sm.k, seq, row_stride, hk, k0, n);
  load_tile(sm.v, seq, row_stride, hv, k0, n);
  FragC dv_acc[kHd / 16], dk_acc[kHd / 16];  // this warp's 16 keys x 32 dimensions
  for (int j = 0; j < kHd / 16; ++j) {
    wmma::fill_fragment(dv_acc[j], 0.f);
    wmma::fill_fragment(dk_acc[j], 0.f);
  }
  const int r = lane & 15, half = lane >> 4;  // a row of the warp's 16 (query, then key), half
  float* S = sm.s[warp];
  for (int q0 = 0; q0 < n; q0 += kQ) {
    __syncthreads();  // the previous query tile is no longer read (and K, V are loaded)
    load_tile(sm.q, seq, row_stride, hq, q0, n);
    load_tile(sm.dout, dseq, d, hq, q0, n);
    stage_row_stats(sm.lse, sm.dvec, lse_bh, dvec_bh, q0, n);
    __syncthreads();
    times_tile_t(sm.q + warp * 16 * kLdX, sm.k, S);  // S = Q_w Kᵀ for the warp's 16 queries
    __syncwarp();
    const int qr = warp * 16 + r;  // this lane's query row within the tile
    const float lse_r = sm.lse[qr], d_r = sm.dvec[qr];
    float p[32];
#pragma unroll
    for (int t = 0; t < 32; ++t) {
      const int col = half * 32 + ((t + r) & 31);
      p[t] = k0 + col < n ? exp2f(S[r * kLdS + col] * scale_log2 - lse_r) : 0.f;
      sm.p[qr * kLdP + col] = __float2bfloat16_rn(p[t]);
    }
    __syncwarp();  // S read: it takes dP = dO_w Vᵀ next
    times_tile_t(sm.dout + warp * 16 * kLdX, sm.v, S);
    __syncwarp();
#pragma unroll
    for (int t = 0; t < 32; ++t) {
      const int col = half * 32 + ((t + r) & 31);
      sm.ds[qr * kLdP + col] = __float2bfloat16_rn(p[t] * (S[r * kLdS + col] - d_r) * scale);
    }
    __syncthreads();  // every warp's P and dS rows are in place
    // dV_w += Pᵀ dO and dK_w += dSᵀ Q over the tile's 64 queries (16 at a time).
    for (int c = 0; c < kQ / 16; ++c) {
      FragAcol pa, dsa;  // (key, query) at p[query * kLdP + key]: Pᵀ, dSᵀ
      wmma::load_matrix_sync(pa, sm.p + c * 16 * kLdP + warp * 16, kLdP);
      wmma::load_matrix_sync(dsa, sm.ds + c * 16 * kLdP + warp * 16, kLdP);
      for (int j = 0; j < kHd / 16; ++j) {
        FragBrow ob, qb;
        wmma::load_matrix_sync(ob, sm.dout + c * 16 * kLdX + j * 16, kLdX);
        wmma::load_matrix_sync(qb, sm.q + c * 16 * kLdX + j * 16, kLdX);
        wmma::mma_sync(dv_acc[j], pa, ob, dv_acc[j]);
        wmma::mma_sync(dk_acc[j], dsa, qb, dk_acc[j]);
      }
    }
    // dQ_w = dS_w K for the warp's 16 queries, added to the float32 buffer.
    times_tile(sm.ds + warp * 16 * kLdP, sm.k, S);
    __syncwarp();
    const int q = q0 + qr;
    if (q < n) {
      float* dst = dq_acc + (b * n + q) * d + hq + half * 16;
#pragma unroll
      for (int c = 0; c < kHd / 2; ++c) atomicAdd(dst + c, S[r * kLdO + half * 16 + c]);
    }
  }
  // dK, dV of the warp's 16 keys, bf16, into the packed gradient of qkv.
  const int key = k0 + warp * 16 + r;
  for (int which = 0; which < 2; ++which) {
    __syncwarp();
    for (int j = 0; j < kHd / 16; ++j)
      wmma::store_matrix_sync(S + j * 16, which == 0 ? dk_acc[j] : dv_acc[j], kLdO,
                              wmma::mem_row_major);
    __syncwarp();
    if (key < n) {
      bf16* dst = dqkv + (b * n + key) * row_stride + (which == 0 ? hk : hv) + half * 16;
#pragma unroll
      for (int c = 0; c < kHd / 2; ++c) dst[c] = __float2bfloat16_rn(S[r * kLdO + half * 16 + c]);
    }
  }
}

// ---- backward with the products in registers (mma.sync, the forward's fragment layouts): a block
// per (sequence, head, 64 keys), warp w owning keys 16w .. 16w + 15 of them, walks the query tiles
// and works on transposed scores: Sᵀ = K_w Qᵀ and dPᵀ = V_w dOᵀ (16 keys x 64 queries) come out
// in accumulator layout with keys as rows, so Pᵀ and dSᵀ pack straight into the A operands of
// dV += Pᵀ dO and dK += dSᵀ Q, which stay in registers for the whole walk. dS goes to shared
// memory query-major once per tile for dQ = dS K (each warp 16 queries), added to the float32
// buffer atomically as in the WMMA kernel. Q, dO and K are also kept transposed in shared memory
// (the B operands whose pairs run along tokens).

struct __align__(16) MmaBwdSmem {
  bf16 k[kKeys * kLdX];     // K rows of the block's keys (A fragments of Sᵀ)
  bf16 v[kKeys * kLdX];     // V rows (A fragments of dPᵀ)
  bf16 kt[kHd * kLdVt];     // Kᵀ [dim][key] (B of dQ = dS K)
  bf16 q[kQ * kLdX];        // the query tile's Q rows (B of Sᵀ = K Qᵀ)
  bf16 qt[kHd * kLdVt];     // Qᵀ [dim][query] (B of dK = dSᵀ Q)
  bf16 dout[kQ * kLdX];     // dO rows (B of dPᵀ = V dOᵀ)
  bf16 doutt[kHd * kLdVt];  // dOᵀ [dim][query] (B of dV = Pᵀ dO)
  bf16 ds[kQ * kLdVt];      // dS / sqrt(32) [query][key] (A of dQ)
  float lse[kQ], dvec[kQ];
};

__global__ void __launch_bounds__(kWarps * 32)
    attention_backward_mma_kernel(const bf16* __restrict__ qkv, const bf16* __restrict__ dout,
                                  const float* __restrict__ lse, const float* __restrict__ dvec,
                                  float* __restrict__ dq_acc, bf16* __restrict__ dqkv, int n, int d,
                                  float scale_log2, float scale) {
  __shared__ MmaBwdSmem sm;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int h = blockIdx.y, k0 = blockIdx.x * kKeys;
  const int64_t b = blockIdx.z, row_stride = 3 * int64_t(d);
  const bf16* seq = qkv + b * n * row_stride;
  const bf16* dseq = dout + b * n * d;
  const int hq = h * kHd, hk = d + h * kHd, hv = 2 * d + h * kHd;
  const float* lse_bh = lse + (b * gridDim.y + h) * n;
  const float* dvec_bh = dvec + (b * gridDim.y + h) * n;
  load_tile(sm.k, seq, row_stride, hk, k0, n);
  load_tile(sm.v, seq, row_stride, hv, k0, n);
  load_tile_t(sm.kt, seq, row_stride, hk, k0, n);
  __syncthreads();
  uint32_t ka[2][4], va[2][4];  // the warp's 16 keys: K and V rows as A operands
  row_fragments<kLdX, 2>(sm.k, warp * 16, g, t, ka);
  row_fragments<kLdX, 2>(sm.v, warp * 16, g, t, va);
  // Keys past n (rows g, g + 8 of the warp's 16) take no weight.
  const bool key_ok[2] = {k0 + warp * 16 + g < n, k0 + warp * 16 + g + 8 < n};
  float dk[kHd / 8][4], dv[kHd / 8][4];  // keys g, g + 8 x dims nt * 8 + 2t, + 1
#pragma unroll
  for (int nt = 0; nt < kHd / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[nt][e] = dv[nt][e] = 0.f;

  for (int q0 = 0; q0 < n; q0 += kQ) {
    // No barrier here: the previous tile's Q, Qᵀ, dO, dOᵀ, lse and D were last read before its
    // dS barrier, and its dS (read by the dQ products) is rewritten only after this tile's
    // barrier below, which every warp reaches after its dQ.
    load_tile(sm.q, seq, row_stride, hq, q0, n);
    load_tile_t(sm.qt, seq, row_stride, hq, q0, n);
    load_tile(sm.dout, dseq, d, hq, q0, n);
    load_tile_t(sm.doutt, dseq, d, hq, q0, n);
    stage_row_stats(sm.lse, sm.dvec, lse_bh, dvec_bh, q0, n);
    __syncthreads();
    // Pᵀ: keys (rows) x queries j * 8 + 2t + (e & 1) (columns).
    float p[kKeys / 8][4];
    times_rows_t(ka, sm.q, g, t, p);
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        p[j][e] =
            key_ok[e >> 1] ? exp2f(p[j][e] * scale_log2 - sm.lse[j * 8 + 2 * t + (e & 1)]) : 0.f;
    uint32_t w[kKeys / 16][4];  // A operands over 16 queries each
    to_a_operands(p, w);
    times_transposed(w, sm.doutt, g, t, dv);  // dV += Pᵀ dO
    float dp[kKeys / 8][4];
    times_rows_t(va, sm.dout, g, t, dp);  // dPᵀ = V dOᵀ
    // dSᵀ = Pᵀ (dPᵀ - D) / sqrt(32) in place of dPᵀ, rounded to bf16 for both products; also
    // stored query-major for dQ: (query j * 8 + 2t + (e & 1), key 16 warp + g (+ 8)).
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dp[j][e] = p[j][e] * (dp[j][e] - sm.dvec[j * 8 + 2 * t + (e & 1)]) * scale;
      const int qc = j * 8 + 2 * t, kc = warp * 16 + g;
      sm.ds[qc * kLdVt + kc] = __float2bfloat16_rn(dp[j][0]);
      sm.ds[(qc + 1) * kLdVt + kc] = __float2bfloat16_rn(dp[j][1]);
      sm.ds[qc * kLdVt + kc + 8] = __float2bfloat16_rn(dp[j][2]);
      sm.ds[(qc + 1) * kLdVt + kc + 8] = __float2bfloat16_rn(dp[j][3]);
    }
    to_a_operands(dp, w);
    times_transposed(w, sm.qt, g, t, dk);  // dK += dSᵀ Q
    __syncthreads();                       // every warp's dS columns are in place
    // dQ for queries 16 warp .. + 15 of the tile = dS (16 x 64 keys) x K (64 x 32).
    uint32_t dsa[kKeys / 16][4];
    row_fragments<kLdVt, kKeys / 16>(sm.ds, warp * 16, g, t, dsa);
    float dq[kHd / 8][4];
#pragma unroll
    for (int nt = 0; nt < kHd / 8; ++nt) dq[nt][0] = dq[nt][1] = dq[nt][2] = dq[nt][3] = 0.f;
    times_transposed(dsa, sm.kt, g, t, dq);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int q = q0 + warp * 16 + g + 8 * i;
      if (q >= n) continue;
      float* dst = dq_acc + (b * n + q) * d + hq + 2 * t;
#pragma unroll
      for (int nt = 0; nt < kHd / 8; ++nt) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        // sm_90's vector atomic: both columns in one operation (8-byte aligned: even offset).
        atomicAdd(reinterpret_cast<float2*>(dst + nt * 8),
                  make_float2(dq[nt][2 * i], dq[nt][2 * i + 1]));
#else
        atomicAdd(dst + nt * 8, dq[nt][2 * i]);
        atomicAdd(dst + nt * 8 + 1, dq[nt][2 * i + 1]);
#endif
      }
    }
  }
  // dK, dV of the warp's keys, bf16, into the packed gradient of qkv.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int key = k0 + warp * 16 + g + 8 * i;
    if (key >= n) continue;
    bf16* row = dqkv + (b * n + key) * row_stride + 2 * t;
#pragma unroll
    for (int nt = 0; nt < kHd / 8; ++nt) {
      *reinterpret_cast<__nv_bfloat162*>(row + hk + nt * 8) =
          __floats2bfloat162_rn(dk[nt][2 * i], dk[nt][2 * i + 1]);
      *reinterpret_cast<__nv_bfloat162*>(row + hv + nt * 8) =
          __floats2bfloat162_rn(dv[nt][2 * i], dv[nt][2 * i + 1]);
    }
  }
}

// dqkv[:, :, 0:d] = bf16(dq_acc): the q part of the packed gradient.
__global__ void attention_dq_kernel(const float* __restrict__ dq_acc, bf16* __restrict__ dqkv,
                                    int64_t rows, int d) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * d) return;
  dqkv[(i / d) * 3 * d + i % d] = __float2bfloat16_rn(dq_acc[i]);
}

}  // namespace

bool attention_forward_supports(int64_t d, int64_t heads, int64_t b, int64_t n) {
  return heads > 0 && heads <= 65535 && d == kHd * heads && d % 8 == 0 && b >= 1 && b <= 65535 &&
         n >= 1 && n < (int64_t(1) << 30);
}

void attention_forward(const void* qkv, void* out, int64_t B, int64_t N, int64_t heads,
                       cudaStream_t stream, float* lse, bool mma) {
  const int64_t d = kHd * heads;
  if (!attention_forward_supports(d, heads, B, N))
    throw std::invalid_argument("attention_forward: unsupported shape (sequences " +
                                std::to_string(B) + ", heads " + std::to_string(heads) +
                                ", tokens " + std::to_string(N) + ")");
  // softmax(s / sqrt(32)) through base-2 exponentials: scale by log2(e) / sqrt(32).
  const float scale_log2 = float(1.4426950408889634 / std::sqrt(double(kHd)));
  const dim3 grid(unsigned((N + kQ - 1) / kQ), unsigned(heads), unsigned(B));
  if (mma) {
    attention_forward_mma_kernel<<<grid, kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(qkv), static_cast<bf16*>(out), lse, int(N), int(d), scale_log2);
    check_launch("attention forward (mma)");
  } else {
    attention_forward_kernel<<<grid, kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(qkv), static_cast<bf16*>(out), lse, int(N), int(d), scale_log2);
    check_launch("attention forward");
  }
}

void attention_backward(const void* qkv, const void* out, const void* dout, const float* lse,
                        void* dqkv, float* dvec, float* dq_acc, int64_t B, int64_t N, int64_t heads,
                        cudaStream_t stream, bool mma) {
  const int64_t d = kHd * heads;
  if (!attention_forward_supports(d, heads, B, N))
    throw std::invalid_argument("attention_backward: unsupported shape");
  // The WMMA backward's shared memory is above the 48 KB default. The attribute belongs to the
  // current device, so it is set on every call (a cheap host call, allowed during graph capture).
  if (!mma &&
      cudaFuncSetAttribute(attention_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(sizeof(BwdSmem))) != cudaSuccess)
    throw std::runtime_error("attention_backward: shared memory attribute refused");
  const int64_t rows = B * N;
  const int threads = 256;
  attention_dot_kernel<<<unsigned((rows * heads + threads - 1) / threads), threads, 0, stream>>>(
      static_cast<const bf16*>(dout), static_cast<const bf16*>(out), dvec, rows, int(N),
      int(heads));
  check_launch("attention backward D");
  const cudaError_t zeroed = cudaMemsetAsync(dq_acc, 0, size_t(rows * d) * sizeof(float), stream);
  if (zeroed != cudaSuccess)
    throw std::runtime_error(std::string("attention backward dQ zeroing: ") +
                             cudaGetErrorString(zeroed));
  const float scale = float(1.0 / std::sqrt(double(kHd)));
  const dim3 grid(unsigned((N + kKeys - 1) / kKeys), unsigned(heads), unsigned(B));
  const float scale_log2 = float(1.4426950408889634) * scale;
  if (mma) {
    attention_backward_mma_kernel<<<grid, kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(qkv), static_cast<const bf16*>(dout), lse, dvec, dq_acc,
        static_cast<bf16*>(dqkv), int(N), int(d), scale_log2, scale);
    check_launch("attention backward (mma)");
  } else {
    attention_backward_kernel<<<grid, kWarps * 32, sizeof(BwdSmem), stream>>>(
        static_cast<const bf16*>(qkv), static_cast<const bf16*>(dout), lse, dvec, dq_acc,
        static_cast<bf16*>(dqkv), int(N), int(d), scale_log2, scale);
    check_launch("attention backward");
  }
  attention_dq_kernel<<<unsigned((rows * d + threads - 1) / threads), threads, 0, stream>>>(
      dq_acc, static_cast<bf16*>(dqkv), rows, int(d));
  check_launch("attention backward dQ");
}

}  // namespace hacm::cuda
