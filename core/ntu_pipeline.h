// The SGN / CTR-GCN / MAMP NTU pre-processing ("pipeline A" of datasets-and-protocols.md §3b),
// reproduced step by step with the original's float32 arithmetic:
//   get_raw_denoised_data.py  length filter (<= 11 frames), spread filter (0.8 / 0.69754, only
//                             while more than one body is left), motion sort (the motion
//                             threshold filter is dead code in the original and is not applied),
//                             two-actor selection, removal of all-zero frames;
//   seq_transformation.py     seq_translation (origin = joint 2 of actor 1 in its first non-zero
//                             frame), align_frames (NTU-60: a single actor gets zeros in
//                             columns 75:150; NTU-120: a copy of itself).
// Also the helpers prepare_ntu / prepare_pku share: numpy-exact sums, an ordered parallel map
// with a bounded reorder window, and an unlinked spill file.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/ntu.h"

namespace hacm {

// ---- numpy-exact reductions ----

// np.add.reduce along a contiguous axis: numpy's pairwise summation (8 accumulators, blocks of
// 128) in the array's own precision, result added to an initial 0. `a`: (n) with stride.
float np_pairwise_sum(const float* a, int64_t n, int64_t stride = 1);
double np_pairwise_sum(const double* a, int64_t n, int64_t stride = 1);
// np.sum(np.var(x, axis=0)) for x: (rows, 3) float32, as numpy computes it in float32 (mean and
// squared deviations accumulated row by row, divided by rows, the 3 variances summed).
float np_var_sum3(const float* x, int64_t rows);

// ---- the pipeline ----

// Why the original pipeline cannot produce a sample from a file (it raises there; such files are
// on the official missing-skeleton lists). prepare_ntu skips them with a warning.
enum class NtuSkip {
  none,
  no_bodies,          // every frame has 0 bodies (get_raw_skes_data asserts)
  no_bodies_left,     // several bodyIDs, all of 11 frames or fewer (IndexError in the original)
  actor1_never_seen,  // no frame where actor 1 is non-zero (IndexError in seq_translation)
};
const char* ntu_skip_reason(NtuSkip s);

struct NtuSequence {
  int frames = 0;
  int actors = 0;             // 1: 75 columns, 2: 150 columns
  std::vector<float> joints;  // (frames, 75 * actors): [actor][joint][xyz]
};

// get_raw_denoised_data.py for one file: joints of the main actor(s), frames as the original
// keeps them (single-bodyID files keep every frame with a body; multi-bodyID files lose frames
// where all their selected columns sum to 0).
NtuSkip ntu_denoise(const NtuSkeleton& sk, NtuSequence* out);
// seq_translation, in place.
NtuSkip ntu_translate(NtuSequence* seq);
// Denoise + translate.
NtuSkip ntu_sgn_pipeline(const NtuSkeleton& sk, NtuSequence* out);
// align_frames for one sample: writes min(frames, max_frames) rows of 150 values into `out`
// ((max_frames, 150), caller-zeroed or not: rows past the sequence are zeroed here). A
// 1-actor sequence gets zeros (NTU-60) or a copy of actor 1 (NTU-120) in columns 75:150.
// Returns the number of rows that hold data.
int ntu_align(const NtuSequence& seq, bool ntu120, float* out, int max_frames = 300);

// ---- helpers shared by prepare_ntu / prepare_pku ----

// Runs produce(i) for i in [0, n) on `threads` workers and calls consume(i, std::move(result))
// on the calling thread in increasing i, holding at most `window` finished results. An exception
// from produce(i) is rethrown on the calling thread when i's turn comes, so the error reported
// is the first in order whatever the thread timing; consume may throw too. Workers are joined.
template <class R, class Produce, class Consume>
void parallel_ordered(int64_t n, int threads, int64_t window, Produce produce, Consume consume) {
  if (threads <= 1 || n <= 1) {
    for (int64_t i = 0; i < n; ++i) consume(i, produce(i));
    return;
  }
  if (window < threads) window = threads;
  struct Slot {
    bool ready = false;
    R value{};
    std::exception_ptr err;
  };
  std::vector<Slot> ring(static_cast<size_t>(window));
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  int64_t next = 0, consumed = 0;
  bool stop = false;
  auto worker = [&] {
    for (;;) {
      int64_t i;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_work.wait(lk, [&] { return stop || next >= n || next < consumed + window; });
        if (stop || next >= n) return;
        i = next++;
      }
      Slot s;
      try {
        s.value = produce(i);
      } catch (...) {
        s.err = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(mu);
        Slot& d = ring[size_t(i % window)];
        d.value = std::move(s.value);
        d.err = s.err;
        d.ready = true;
      }
      cv_done.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  auto shutdown = [&] {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& th : pool) th.join();
  };
  try {
    for (int64_t i = 0; i < n; ++i) {
      R value{};
      std::exception_ptr err;
      {
        std::unique_lock<std::mutex> lk(mu);
        Slot& s = ring[size_t(i % window)];
        cv_done.wait(lk, [&] { return s.ready; });
        value = std::move(s.value);
        s.value = R{};
        err = s.err;
        s.err = nullptr;
        s.ready = false;
        consumed = i + 1;
      }
      cv_work.notify_all();
      if (err) std::rethrow_exception(err);
      consume(i, std::move(value));
    }
  } catch (...) {
    shutdown();
    throw;
  }
  shutdown();
}

// A scratch file for processed samples, created in `dir` and unlinked at once (nothing is left
// behind, even after a crash). Appends are buffered; read() sees everything appended so far.
class SpillFile {
 public:
  explicit SpillFile(const std::string& dir);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  int64_t append(const void* data, size_t nbytes);  // returns the byte offset
  void read(int64_t offset, void* dst, size_t nbytes);
  int64_t size() const { return size_; }

 private:
  void flush();
  int fd_ = -1;
  std::string path_;
  std::vector<char> buf_;
  int64_t flushed_ = 0, size_ = 0;
};

}  // namespace hacm
