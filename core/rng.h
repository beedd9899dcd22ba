// Seeded random numbers that give the same stream on every machine and compiler.
// std::*_distribution is implementation-defined, so every distribution is written here on top of
// PCG32 (O'Neill's permuted congruential generator, XSH-RR output, 64-bit state).
#pragma once
#include <cmath>
#include <cstdint>

namespace hacm {

class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0x5851f42d4c957f2dULL) { reseed(seed, stream); }

  void reseed(uint64_t seed, uint64_t stream = 0x5851f42d4c957f2dULL) {
    state_ = 0;
    inc_ = (stream << 1u) | 1u;
    next_u32();
    state_ += seed;
    next_u32();
  }

  uint32_t next_u32() {
    uint64_t old = state_;
    state_ = old * 6364136223846793005ULL + inc_;
    uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = static_cast<uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }
  uint64_t next_u64() { return (uint64_t(next_u32()) << 32) | next_u32(); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection of the short tail).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = next_u64();
    while (r >= limit);
    return r % n;
  }
  // Uniform integer in [lo, hi] inclusive.
  int64_t integer(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo + 1))); }
  // Standard normal by Box-Muller (both values used).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    double r = std::sqrt(-2.0 * std::log(u1));
    double a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  // Derive an independent generator (e.g. one per sample or per worker) from this seed.
  static Rng derive(uint64_t seed, uint64_t index) {
    return Rng(seed ^ (index * 0x9e3779b97f4a7c15ULL), index + 1);
  }

 private:
  uint64_t state_ = 0, inc_ = 1;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace hacm
