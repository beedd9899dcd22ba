// A CPU emulator for our CUDA kernels (tests only): the real kernel source of
// accelerated/kernels/*.cu, rewritten by tests/cuda_emu/cu2cpp.py (launches become calls of
// hacm_emu::launch), compiled by the host compiler against these shim headers, runs with every
// CUDA thread as a fiber of one OS thread. A block's threads run one at a time, each until it
// reaches a barrier (__syncthreads, __syncwarp, a warp shuffle, a WMMA or mma.sync operation),
// which is one legal CUDA schedule; blocks run one after another. So the kernels' index
// arithmetic, tile bookkeeping, fragment layouts, reductions and launch configurations are tested
// on any machine, in CI, without a GPU: what the emulator cannot see are races between barriers,
// the hardware's summation order inside a tensor-core product and the speed.
// It also checks what the hardware requires and a test would otherwise miss: shuffles and
// warp-collective operations with every lane of the warp present, WMMA pointers 32-byte aligned
// with a leading dimension that is a multiple of 16 bytes, and no block larger than 1024 threads.
// Errors (and deadlocks: threads waiting at barriers nobody else reaches) throw
// std::runtime_error from the launch, naming the kernel.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float2 {
  float x, y;
};
struct __attribute__((aligned(16))) uint4 {
  unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) {
  return {x, y};
}
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return {x, y, z, w};
}

namespace hacm_emu {

// The running emulated thread's coordinates.
struct Ids {
  uint3 thread, block;
  dim3 block_dim, grid_dim;
};
const Ids& ids();

// Runs `body` once per thread of every block (blocks in order); `smem` bytes of dynamic shared
// memory. Throws std::runtime_error naming `kernel` when the emulator found an error.
void run(const char* kernel, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);

// What cu2cpp.py makes of `kernel<<<grid, block[, smem[, stream]]>>>(args)`.
template <typename F>
void launch(const char* kernel, dim3 grid, dim3 block, size_t smem, const void* /*stream*/,
            F&& body) {
  run(kernel, grid, block, smem, body);
}
template <typename F>
void launch(const char* kernel, dim3 grid, dim3 block, F&& body) {
  run(kernel, grid, block, 0, body);
}
template <typename F>
void launch(const char* kernel, dim3 grid, dim3 block, size_t smem, F&& body) {
  run(kernel, grid, block, smem, body);
}

// Barriers of the block and of the calling thread's warp.
void syncthreads();
void syncwarp();
// Every lane of the calling warp deposits `bytes` bytes of `mine`; once all 32 have, each gets
// all 32 deposits in `all` (lane-major). Fails unless the warp has all 32 lanes alive.
void warp_allgather(const void* mine, void* all, size_t bytes, const char* what);
// This thread's index in its warp (threads numbered x fastest, then y, z).
int lane();
// The block's dynamic shared memory (128-byte aligned, as large as the launch asked).
unsigned char* dynamic_shared();
// Ends the kernel with an error (reported by the launch).
[[noreturn]] void fail(const std::string& what);
// Threads run in order of their index between barriers (default), or in reverse: running a
// kernel both ways exposes a missing barrier wherever one side reads what the other writes.
void set_reverse_order(bool reverse);
// How many launches of `kernel` (its name as written at the launch) ran so far.
int64_t launches(const std::string& kernel);
// The multiprocessor count the launch heuristics see (default 132, an H100's).
void set_multiprocessors(int n);
int multiprocessors();

template <typename T>
T shfl_xor(T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  T all[32];
  warp_allgather(&v, all, sizeof(T), "__shfl_xor_sync");
  return all[(lane() ^ lane_mask) & 31];
}

}  // namespace hacm_emu

// ---- What nvcc provides: qualifiers, built-in variables, intrinsics ----
// (__CUDA_ARCH__ = 900 is defined for the kernel sources alone, by tests/CMakeLists.txt: headers
// such as Eigen's read it as "compiling device code".)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Shared memory: one instance per kernel, reused by the blocks that run one after another.
#define __shared__ static
#define threadIdx (::hacm_emu::ids().thread)
#define blockIdx (::hacm_emu::ids().block)
#define blockDim (::hacm_emu::ids().block_dim)
#define gridDim (::hacm_emu::ids().grid_dim)

inline void __syncthreads() {
  hacm_emu::syncthreads();
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) hacm_emu::fail("__syncwarp with a partial mask (not emulated)");
  hacm_emu::syncwarp();
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  if (mask != 0xffffffffu || width != 32) hacm_emu::fail("__shfl_xor_sync: partial mask or width");
  return hacm_emu::shfl_xor(v, lane_mask);
}
// Threads of a block run one at a time: atomics are plain read-modify-writes.
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline float2 atomicAdd(float2* p, float2 v) {
  if (reinterpret_cast<uintptr_t>(p) % 8 != 0) hacm_emu::fail("atomicAdd(float2*): misaligned");
  const float2 old = *p;
  p->x = old.x + v.x;
  p->y = old.y + v.y;
  return old;
}
// Correctly rounded float arithmetic (the emulator is built with -ffp-contract=off).
inline float __fadd_rn(float a, float b) {
  return a + b;
}
inline float __fsub_rn(float a, float b) {
  return a - b;
}
inline float __fmul_rn(float a, float b) {
  return a * b;
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __fmaf_rn(float a, float b, float c) {
  return std::fma(a, b, c);
}
inline float rsqrtf(float x) {
  return 1.f / std::sqrt(x);
}
// Float overloads in the global namespace, as in device code (else exp2(float) is the double one).
using std::exp2;
using std::log2;
using std::sqrt;
using std::tanh;
