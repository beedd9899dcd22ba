// A CPU emulator for our CUDA kernels (tests only): the real kernel source of
// accelerated/kernels/*.cu, rewritten by tests/cuda_emu/cu2cpp.py (launches become calls of
// hacm_emu::launch), compiled by the host compiler against these shim headers, runs with every
// CUDA thread as a fiber of one OS thread. A block's threads run one at a time, each until it
// reaches a barrier (__syncthreads, __syncwarp, a warp shuffle, a WMMA or mma.sync operation),
// which is one legal CUDA schedule; blocks run one after another. So the kernels' index
// arithmetic, tile bookkeeping, fragment layouts, reductions and launch configurations are tested
// on any machine, in CI, without a GPU (not the hardware's summation order inside a tensor-core
// product, and not the speed).
// It also checks what the hardware requires and a test would otherwise miss: every lane of a warp
// present at shuffles and warp-level operations, the threads of a barrier's scope all at the same
// barrier (call site), WMMA pointers 32-byte aligned with a leading dimension that is a multiple
// of 16 bytes, no block larger than 1024 threads, no deadlock. Shared memory is refilled with 0xff
// (NaN) for every block and buffers end at an inaccessible page (emu_memory.h), so reads of
// unwritten shared memory and accesses past the end show; threads and blocks can run in reverse
// order (set_reverse_order), so a missing barrier shows in one of the two orders. WMMA stores
// write a share of the tile per lane and no WMMA operation synchronises, as on the device. The
// kernels are built with UndefinedBehaviorSanitizer (tests/CMakeLists.txt): misaligned vector
// accesses, indices outside fixed-size arrays (shared tiles, per-lane arrays) and signed overflow
// in index arithmetic stop the test with the file and line.
// Not emulated: the hardware's fused multiply-adds (nvcc contracts a * b + c; this build does
// not, so results that depend on explicit __f*_rn rounding are not tested here), shared-memory
// size limits and cudaFuncSetAttribute, partial warps and masks, races that neither order exposes.
// Errors (and deadlocks) throw std::runtime_error from the launch, naming the kernel, block and
// thread.
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
struct __attribute__((aligned(8))) float2 {
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

// Where a thread waits: the operation and its call site. Every thread of a barrier's scope must
// wait at the same one (else the emulator fails: on the hardware, threads at different
// __syncthreads of one block, or lanes at different warp-level operations, are a bug).
struct Site {
  const char* what;
  const char* file;
  int line;
};
// Barriers of the block and of the calling thread's warp.
void syncthreads(Site site);
void syncwarp(Site site);
// Every lane of the calling warp deposits `bytes` bytes of `mine`; once all 32 have, each gets
// all 32 deposits in `all` (lane-major). Fails unless the warp has all 32 lanes alive.
void warp_allgather(const void* mine, void* all, size_t bytes, Site site);
// Marks a __shared__ variable as this block's: the first thread of each block to reach its
// declaration fills it with 0xff bytes (NaN as float and bf16), so that a read of what no thread
// of the block wrote shows (cu2cpp.py adds the call after every __shared__ declaration).
void fresh_shared(void* p, size_t bytes);
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
T shfl_xor(T v, int lane_mask, Site site) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  if (lane_mask < 0 || lane_mask > 31) fail("__shfl_xor_sync: lane mask outside 0..31");
  T all[32];
  warp_allgather(&v, all, sizeof(T), site);
  return all[lane() ^ lane_mask];
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
// Shared memory: one instance per kernel, reused by the blocks that run one after another and
// refilled with 0xff for each (hacm_emu::fresh_shared).
#define __shared__ static
#define threadIdx (::hacm_emu::ids().thread)
#define blockIdx (::hacm_emu::ids().block)
#define blockDim (::hacm_emu::ids().block_dim)
#define gridDim (::hacm_emu::ids().grid_dim)

// The call site comes from GCC's __builtin_FILE / __builtin_LINE as default arguments.
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  hacm_emu::syncthreads({"__syncthreads", file, line});
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
  if (mask != 0xffffffffu) hacm_emu::fail("__syncwarp with a partial mask (not emulated)");
  hacm_emu::syncwarp({"__syncwarp", file, line});
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                  const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  if (mask != 0xffffffffu || width != 32) hacm_emu::fail("__shfl_xor_sync: partial mask or width");
  return hacm_emu::shfl_xor(v, lane_mask, {"__shfl_xor_sync", file, line});
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
