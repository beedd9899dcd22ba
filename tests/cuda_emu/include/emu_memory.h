// "Device" buffers for the emulated kernels (tests/cuda_emu/include/hacm_emu.h) that end right at
// an inaccessible page: a kernel that reads or writes past
// the end stops the test with a message naming the kernel and the thread (compute-sanitizer's
// memcheck, for the most common out-of-bounds error: the off-by-one at a tile's or a grid's end,
// which can write values, e.g. zeros, that no comparison of results would notice).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace hacm_emu {

// `bytes` ending at a PROT_NONE page, aligned to the largest power of two (<= 16) dividing
// `bytes`, or to `min_align` (a power of two <= 16) if that is larger: then the last
// bytes % min_align bytes before the page are slack. Never null.
void* guarded_alloc(size_t bytes, size_t min_align = 1);
void guarded_free(void* p, size_t bytes, size_t min_align = 1);

template <typename T>
class Guarded {
 public:
  explicit Guarded(size_t n, T fill = T(), size_t min_align = 1)
      : n_(n), align_(min_align), p_(static_cast<T*>(guarded_alloc(n * sizeof(T), min_align))) {
    for (size_t i = 0; i < n_; ++i) p_[i] = fill;
  }
  template <typename U>
  explicit Guarded(const std::vector<U>& v) : Guarded(v.size()) {
    for (size_t i = 0; i < n_; ++i) p_[i] = T(v[i]);
  }
  ~Guarded() { guarded_free(p_, n_ * sizeof(T), align_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }

 private:
  size_t n_, align_;
  T* p_;
};

}  // namespace hacm_emu
