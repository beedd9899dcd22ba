// Emulator shim (tests/cuda_emu/include/hacm_emu.h): the WMMA API (nvcuda::wmma, 16 x 16 x 16,
// bf16 operands, float accumulators) and the mma.sync.m16n8k16 bf16 product that
// accelerated/kernels/attention.cu issues as inline PTX (its HACM_CUDA_EMULATION branch calls
// hacm_emu::mma_m16n8k16_bf16). WMMA fragments are opaque on the device; here every lane holds the
// whole tile (loads read all of it, stores write a share of it per lane, no barrier: the kernel's
// own __syncwarp calls order them). Products are exact in float32 and summed in k order.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda_bf16.h"
#include "hacm_emu.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct Shape;
template <int M, int N, int K>
struct Shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = Shape<Use, M, N, K>::rows, cols = Shape<Use, M, N, K>::cols;
  float v[rows * cols];  // row-major, whatever the memory layout
};

namespace detail {
inline float value(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
inline float value(const float* p) {
  return *p;
}
// No barrier here: on the device a lane's load sees other lanes' earlier stores only after a
// __syncwarp (or __syncthreads), so the emulator does not supply one (a missing one then shows).
template <typename T>
void check(const T* p, unsigned ldm, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    hacm_emu::fail(std::string(what) + ": pointer not 32-byte aligned");
  if ((ldm * sizeof(T)) % 16 != 0)
    hacm_emu::fail(std::string(what) + ": leading dimension not a multiple of 16 bytes");
}
template <typename F, typename T>
void load(F& f, const T* p, unsigned ldm, bool row_major) {
  check(p, ldm, "wmma::load_matrix_sync");
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.v[r * F::cols + c] = value(row_major ? p + r * ldm + c : p + c * ldm + r);
}
}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float x) {
  for (float& e : f.v) e = x;
}
template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm) {
  detail::load(f, p, ldm, std::is_same<Layout, row_major>::value);
}
template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm,
                      layout_t layout) {
  detail::load(f, p, ldm, layout == mem_row_major);
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                       layout_t layout) {
  detail::check(p, ldm, "wmma::store_matrix_sync");
  // Each lane writes its share of the tile (element e by lane e % 32), as the opaque device
  // layout spreads the tile over the lanes: a read of the tile by another lane before a
  // __syncwarp then sees missing values in one of the thread orders.
  const int me = hacm_emu::lane();
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      if ((r * N + c) % 32 == me)
        (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.v[r * N + c];
}
template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.v[i * N + j];
      for (int k = 0; k < K; ++k) s += a.v[i * K + k] * b.v[k * N + j];
      out[i * N + j] = s;
    }
  for (int e = 0; e < M * N; ++e) d.v[e] = out[e];
}

}  // namespace nvcuda::wmma

namespace hacm_emu {

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix Fragments for mma.m16n8k16
// with floating point type"): lane l, g = l / 4, t = l % 4, holds A (16 x 16) elements
// a0 = (g, 2t | 2t+1), a1 = (g+8, 2t | 2t+1), a2 = (g, 2t+8 | 2t+9), a3 = (g+8, 2t+8 | 2t+9),
// B (16 x 8) elements b0 = (2t | 2t+1, g), b1 = (2t+8 | 2t+9, g), and C / D (16 x 8) elements
// d0, d1 = (g, 2t), (g, 2t+1), d2, d3 = (g+8, 2t), (g+8, 2t+1); the lower-indexed element of each
// pair in the low 16 bits.
inline void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  struct Regs {
    uint32_t a[4], b[2];
  } mine{{a[0], a[1], a[2], a[3]}, {b0, b1}}, all[32];
  warp_allgather(&mine, all, sizeof(Regs), {"mma.sync.m16n8k16", __FILE__, __LINE__});
  auto half = [](uint32_t r, int hi) {
    return __bfloat162float(__nv_bfloat16{uint16_t(hi ? r >> 16 : r & 0xffffu)});
  };
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    for (int e = 0; e < 2; ++e) {
      A[g][2 * t + e] = half(all[l].a[0], e);
      A[g + 8][2 * t + e] = half(all[l].a[1], e);
      A[g][2 * t + 8 + e] = half(all[l].a[2], e);
      A[g + 8][2 * t + 8 + e] = half(all[l].a[3], e);
      B[2 * t + e][g] = half(all[l].b[0], e);
      B[2 * t + 8 + e][g] = half(all[l].b[1], e);
    }
  }
  const int g = lane() >> 2, t = lane() & 3;
  for (int i = 0; i < 4; ++i) {
    const int r = g + (i >= 2 ? 8 : 0), c = 2 * t + (i & 1);
    float s = d[i];
    for (int k = 0; k < 16; ++k) s += A[r][k] * B[k][c];
    d[i] = s;
  }
}

}  // namespace hacm_emu
