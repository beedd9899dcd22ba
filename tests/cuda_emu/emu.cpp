// The emulator's scheduler (tests/cuda_emu/include/hacm_emu.h): every CUDA thread of a block is a
// fiber (ucontext) of the calling OS thread; a fiber runs until it waits at a barrier or ends,
// then the next ready one runs; a barrier opens when every live thread of its scope has arrived
// (threads that have returned count as arrived, as on the hardware since Volta).
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "emu_memory.h"
#include "hacm_emu.h"

namespace hacm_emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // a kernel's locals (WMMA tiles: 1 KB each) fit
constexpr size_t kSlotBytes = 64;           // per lane, for warp_allgather

enum class State { kReady, kBlockWait, kWarpWait, kDone };

struct Fiber {
  ucontext_t ctx;
  std::unique_ptr<char[]> stack;
  Ids ids;
  State state = State::kDone;
  int warp = 0, lane = 0;
};

struct Warp {
  int live = 0, arrived = 0;
  Site site{};  // where the arrived lanes wait
  unsigned char slots[32 * kSlotBytes];
};

struct Engine {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;  // stacks kept across launches
  std::vector<Warp> warps;
  int threads = 0, live = 0, arrived = 0;
  Site site{};                             // where the arrived threads of the block wait
  uint64_t block_serial = 0;               // counts blocks over all launches (fresh_shared)
  std::map<void*, uint64_t> shared_owner;  // __shared__ variable -> block that refilled it
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  std::string error;
  std::vector<unsigned char> dynamic;
  unsigned char* dynamic_base = nullptr;
  int multiprocessors = 132;
  bool running = false;
  const char* kernel = "";
  bool reverse = false;
  std::map<std::string, int64_t> launches;
};

Engine& engine() {
  static Engine e;
  return e;
}

void release_block_if_complete(Engine& e) {
  if (e.arrived == 0 || e.arrived < e.live) return;
  for (int i = 0; i < e.threads; ++i)
    if (e.fibers[size_t(i)].state == State::kBlockWait) e.fibers[size_t(i)].state = State::kReady;
  e.arrived = 0;
}

void release_warp_if_complete(Engine& e, int w) {
  Warp& W = e.warps[size_t(w)];
  if (W.arrived == 0 || W.arrived < W.live) return;
  for (int i = w * 32; i < w * 32 + 32; ++i)
    if (e.fibers[size_t(i)].state == State::kWarpWait) e.fibers[size_t(i)].state = State::kReady;
  W.arrived = 0;
}

// Back to the scheduler; returns when this fiber is ready again.
void yield() {
  Engine& e = engine();
  swapcontext(&e.current->ctx, &e.scheduler);
}

void end_current(Engine& e) {
  Fiber& f = *e.current;
  f.state = State::kDone;
  --e.live;
  --e.warps[size_t(f.warp)].live;
  release_block_if_complete(e);
  release_warp_if_complete(e, f.warp);
  swapcontext(&f.ctx, &e.scheduler);  // never resumed
}

void fiber_main() {
  Engine& e = engine();
  (*e.body)();
  end_current(e);
}

// A fresh context for `f` that starts at fiber_main (a function of its own: getcontext in a
// function with live locals draws -Wclobbered).
void start_fiber(Fiber& f) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack.get();
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
}

std::string where(const Ids& i) {
  auto s = [](unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
  };
  return "block " + s(i.block.x, i.block.y, i.block.z) + " thread " +
         s(i.thread.x, i.thread.y, i.thread.z);
}

}  // namespace

const Ids& ids() {
  static const Ids none{};
  const Engine& e = engine();
  return e.current ? e.current->ids : none;
}

void fail(const std::string& what) {
  Engine& e = engine();
  if (!e.current) throw std::runtime_error("CUDA emulator: " + what);
  if (e.error.empty()) e.error = where(e.current->ids) + ": " + what;
  end_current(e);
  throw std::logic_error("unreachable");  // end_current does not return
}

namespace {

std::string site_str(const Site& s) {
  return std::string(s.what) + " at " + s.file + ":" + std::to_string(s.line);
}
bool same_site(const Site& a, const Site& b) {
  return a.line == b.line && std::strcmp(a.what, b.what) == 0 && std::strcmp(a.file, b.file) == 0;
}
// The first arrival sets the barrier's site; the others must wait at the same one.
void arrive(Site& barrier, int arrived, const Site& mine, const char* scope) {
  if (arrived == 0)
    barrier = mine;
  else if (!same_site(barrier, mine))
    fail(std::string("threads of a ") + scope + " wait at different places: " + site_str(barrier) +
         " and " + site_str(mine));
}

}  // namespace

void syncthreads(Site site) {
  Engine& e = engine();
  arrive(e.site, e.arrived, site, "block");
  e.current->state = State::kBlockWait;
  ++e.arrived;
  release_block_if_complete(e);
  yield();
}

void syncwarp(Site site) {
  Engine& e = engine();
  Fiber& f = *e.current;
  Warp& W = e.warps[size_t(f.warp)];
  arrive(W.site, W.arrived, site, "warp");
  f.state = State::kWarpWait;
  ++W.arrived;
  release_warp_if_complete(e, f.warp);
  yield();
}

void warp_allgather(const void* mine, void* all, size_t bytes, Site site) {
  Engine& e = engine();
  if (bytes > kSlotBytes) fail(site_str(site) + ": more than 64 bytes per lane");
  Warp& W = e.warps[size_t(e.current->warp)];
  std::memcpy(W.slots + size_t(lane()) * kSlotBytes, mine, bytes);
  syncwarp(site);
  if (W.live != 32) fail(site_str(site) + ": some lanes of the warp have returned");
  for (int l = 0; l < 32; ++l)
    std::memcpy(static_cast<unsigned char*>(all) + size_t(l) * bytes,
                W.slots + size_t(l) * kSlotBytes, bytes);
  syncwarp(site);  // nobody deposits again before every lane has read
}

void fresh_shared(void* p, size_t bytes) {
  Engine& e = engine();
  uint64_t& owner = e.shared_owner[p];
  if (owner == e.block_serial) return;
  owner = e.block_serial;
  std::memset(p, 0xff, bytes);
}

int lane() {
  return engine().current->lane;
}

unsigned char* dynamic_shared() {
  return engine().dynamic_base;
}

void set_reverse_order(bool reverse) {
  engine().reverse = reverse;
}

int64_t launches(const std::string& kernel) {
  const auto& l = engine().launches;
  const auto it = l.find(kernel);
  return it == l.end() ? 0 : it->second;
}

void set_multiprocessors(int n) {
  engine().multiprocessors = n;
}
int multiprocessors() {
  return engine().multiprocessors;
}

namespace {

// One block: a fiber per thread, run until all have returned (or an error, or a deadlock).
void run_block(Engine& e, dim3 grid, dim3 block, uint3 b, size_t smem) {
  const long n = e.threads;
  ++e.block_serial;
  std::memset(e.dynamic_base, 0xff, smem);
  e.live = int(n);
  e.arrived = 0;
  for (Warp& w : e.warps) w.live = 32, w.arrived = 0;
  for (long i = 0; i < n; ++i) {
    Fiber& f = e.fibers[size_t(i)];
    const unsigned t = unsigned(i);
    f.ids = {{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)}, b, block, grid};
    f.state = State::kReady;
    f.warp = int(i / 32);
    f.lane = int(i % 32);
    start_fiber(f);
  }
  for (;;) {
    bool ran = false, all_done = true;
    for (long k = 0; k < n && e.error.empty(); ++k) {
      Fiber& f = e.fibers[size_t(e.reverse ? n - 1 - k : k)];
      if (f.state != State::kDone) all_done = false;
      if (f.state != State::kReady) continue;
      ran = true;
      e.current = &f;
      swapcontext(&e.scheduler, &f.ctx);
      e.current = nullptr;
    }
    if (!e.error.empty() || all_done) return;
    if (!ran) {
      int at_block = 0, at_warp = 0;
      for (long i = 0; i < n; ++i) {
        at_block += e.fibers[size_t(i)].state == State::kBlockWait;
        at_warp += e.fibers[size_t(i)].state == State::kWarpWait;
      }
      e.error = "block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
                std::to_string(b.z) + "): deadlock, " + std::to_string(at_block) +
                " threads wait at __syncthreads and " + std::to_string(at_warp) +
                " at warp barriers that cannot open";
      return;
    }
  }
}

}  // namespace

void run(const char* kernel, dim3 grid, dim3 block, size_t smem,
         const std::function<void()>& body) {
  Engine& e = engine();
  const std::string name = std::string("CUDA emulator, kernel ") + kernel;
  if (e.running) throw std::logic_error(name + ": launched from inside a kernel");
  const long n = long(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || n == 0)
    throw std::runtime_error(name + ": invalid launch configuration");
  if (n > 1024) throw std::runtime_error(name + ": more than 1024 threads per block");
  if (n % 32 != 0) throw std::runtime_error(name + ": partial warps are not emulated");
  if (e.fibers.size() < size_t(n)) e.fibers.resize(size_t(n));
  for (long i = 0; i < n; ++i)
    if (!e.fibers[size_t(i)].stack) e.fibers[size_t(i)].stack.reset(new char[kStackBytes]);
  e.warps.assign(size_t(n / 32), Warp{});
  // Dynamic shared memory, 128-byte aligned, refilled with 0xff (NaN as float and bf16) for each
  // block so that a read of what no thread of the block wrote shows in the results.
  e.dynamic.assign(smem + 128, 0xff);
  e.dynamic_base = e.dynamic.data() + (128 - reinterpret_cast<uintptr_t>(e.dynamic.data()) % 128);
  ++e.launches[kernel];
  e.kernel = kernel;
  e.threads = int(n);
  e.body = &body;
  e.error.clear();
  e.running = true;
  // Blocks in order of their index, or (reverse order) the other way round: a block that writes
  // into another's part of an output is then overwritten in one of the two orders, not both.
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  for (uint64_t k = 0; k < blocks && e.error.empty(); ++k) {
    const uint64_t i = e.reverse ? blocks - 1 - k : k;
    run_block(e, grid, block,
              {unsigned(i % grid.x), unsigned(i / grid.x % grid.y),
               unsigned(i / (uint64_t(grid.x) * grid.y))},
              smem);
  }
  e.running = false;
  e.body = nullptr;
  e.kernel = "";
  if (!e.error.empty()) throw std::runtime_error(name + ": " + e.error);
}

namespace {

// A fault while a kernel runs is reported with the kernel and the thread, then re-raised.
void on_fault(int sig, siginfo_t* info, void*) {
  const Engine& e = engine();
  char msg[512];
  int len;
  if (e.current) {
    const Ids& i = e.current->ids;
    len = std::snprintf(msg, sizeof msg,
                        "\nCUDA emulator: invalid access at %p in kernel %s, block (%u,%u,%u) "
                        "thread (%u,%u,%u); every emulated buffer ends at an inaccessible page, "
                        "so an access just past the end of one faults here\n",
                        info->si_addr, e.kernel, i.block.x, i.block.y, i.block.z, i.thread.x,
                        i.thread.y, i.thread.z);
  } else {
    len = std::snprintf(msg, sizeof msg, "\nCUDA emulator: invalid access at %p outside a kernel\n",
                        info->si_addr);
  }
  if (len > 0) (void)!write(2, msg, size_t(len));
  signal(sig, SIG_DFL);
  raise(sig);
}

size_t page() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}

}  // namespace

namespace {
// The buffer's start is aligned to the largest power of two dividing its size, up to 16 (enough
// for the kernels' vector accesses, whose widths divide the rows), so that it ends exactly at the
// guard page: an overrun by a single element faults.
size_t alignment(size_t bytes, size_t min_align) {
  size_t a = 16;
  while (a > min_align && bytes % a != 0) a /= 2;
  return a;
}
}  // namespace

void* guarded_alloc(size_t bytes, size_t min_align) {
  static const bool installed = [] {
    struct sigaction sa = {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    return true;
  }();
  (void)installed;
  const size_t a = alignment(bytes, min_align), used = (bytes + a - 1) / a * a,
               data_pages = (used + page() - 1) / page(), total = (data_pages + 1) * page();
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  char* guard = static_cast<char*>(base) + data_pages * page();
  if (mprotect(guard, page(), PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
  return guard - used;
}

void guarded_free(void* p, size_t bytes, size_t min_align) {
  const size_t a = alignment(bytes, min_align), used = (bytes + a - 1) / a * a,
               data_pages = (used + page() - 1) / page();
  char* guard = static_cast<char*>(p) + used;
  munmap(guard - data_pages * page(), (data_pages + 1) * page());
}

}  // namespace hacm_emu
