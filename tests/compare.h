// The one comparison helper of the suite. Every numerical test goes through it.
// An element passes when |got - ref| <= atol + rtol * |ref|; any NaN/Inf in `got` (or in `ref`)
// fails. The report names the worst element (flat and multi-dimensional index, both values) and
// the max absolute and max relative errors, so a failure can be judged by eye.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace hacm::test {

struct CompareResult {
  bool ok = true;
  double max_abs = 0, max_rel = 0;
  int64_t worst = -1;  // index with the largest (|d| - atol - rtol|ref|)
  double worst_got = 0, worst_ref = 0;
  int64_t n_bad = 0, n_nonfinite = 0;
  std::string report;
};

inline std::string index_str(int64_t flat, const std::vector<int64_t>& shape) {
  if (shape.empty() || flat < 0) return std::to_string(flat);
  std::vector<int64_t> idx(shape.size());
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::ostringstream os;
  os << "[";
  for (size_t d = 0; d < idx.size(); ++d) os << (d ? "," : "") << idx[d];
  os << "]";
  return os.str();
}

// Core loop. `atol_each` (optional, n entries) replaces the scalar atol per element, for bounds
// that depend on conditioning (e.g. Poincaré distances near the ball boundary).
template <class A, class B>
CompareResult compare_impl(const std::string& name, const A* got, const B* ref, int64_t n,
                           double atol, double rtol, const std::vector<int64_t>& shape,
                           const double* atol_each) {
  CompareResult r;
  double worst_excess = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    double g = double(got[i]), f = double(ref[i]);
    if (!std::isfinite(g) || !std::isfinite(f)) {
      ++r.n_nonfinite;
      if (r.worst < 0 || std::isfinite(worst_excess)) {
        r.worst = i, r.worst_got = g, r.worst_ref = f, worst_excess = INFINITY;
      }
      continue;
    }
    double d = std::fabs(g - f);
    r.max_abs = std::max(r.max_abs, d);
    if (f != 0) r.max_rel = std::max(r.max_rel, d / std::fabs(f));  // over nonzero refs
    // Worst element = largest error relative to its own bound (|d| / bound).
    double bound = (atol_each ? atol_each[i] : atol) + rtol * std::fabs(f);
    double excess = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0.0);
    if (d > bound) ++r.n_bad;
    if (excess > worst_excess) worst_excess = excess, r.worst = i, r.worst_got = g, r.worst_ref = f;
  }
  r.ok = r.n_bad == 0 && r.n_nonfinite == 0;
  std::ostringstream os;
  os.precision(6);
  os << name << ": " << (r.ok ? "OK" : "MISMATCH") << " n=" << n << " max_abs=" << r.max_abs
     << " max_rel=" << r.max_rel << " (atol=" << atol << " rtol=" << rtol << ")";
  if (r.worst >= 0) {
    os.precision(12);
    os << " worst " << index_str(r.worst, shape) << " got=" << r.worst_got
       << " ref=" << r.worst_ref;
    os.precision(3);
    if (std::isfinite(worst_excess)) os << " (err/bound " << worst_excess << ")";
  }
  if (r.n_bad) os << " bad=" << r.n_bad;
  if (r.n_nonfinite) os << " nonfinite=" << r.n_nonfinite;
  r.report = os.str();
  return r;
}

template <class A, class B>
CompareResult compare(const std::string& name, const A* got, const B* ref, int64_t n, double atol,
                      double rtol, const std::vector<int64_t>& shape = {}) {
  return compare_impl(name, got, ref, n, atol, rtol, shape, nullptr);
}

// Per-element absolute bounds (atol_each.size() == n) plus a relative part.
template <class A, class B>
CompareResult compare_each(const std::string& name, const std::vector<A>& got,
                           const std::vector<B>& ref, const std::vector<double>& atol_each,
                           double rtol, const std::vector<int64_t>& shape = {}) {
  if (got.size() != ref.size() || atol_each.size() != ref.size()) {
    CompareResult r;
    r.ok = false;
    r.report = name + ": size mismatch";
    return r;
  }
  return compare_impl(name, got.data(), ref.data(), int64_t(got.size()), 0.0, rtol, shape,
                      atol_each.data());
}

template <class A, class B>
CompareResult compare(const std::string& name, const std::vector<A>& got, const std::vector<B>& ref,
                      double atol, double rtol, const std::vector<int64_t>& shape = {}) {
  if (got.size() != ref.size()) {
    CompareResult r;
    r.ok = false;
    r.report = name + ": size mismatch got " + std::to_string(got.size()) + " ref " +
               std::to_string(ref.size());
    return r;
  }
  return compare(name, got.data(), ref.data(), int64_t(got.size()), atol, rtol, shape);
}

// Normwise bound as the golden README recommends: max|got-ref| <= tol * max|ref|.
template <class A, class B>
CompareResult compare_normwise(const std::string& name, const std::vector<A>& got,
                               const std::vector<B>& ref, double tol,
                               const std::vector<int64_t>& shape = {}) {
  double m = 0;
  for (const auto& v : ref) m = std::max(m, std::fabs(double(v)));
  auto r = compare(name, got, ref, tol * m, 0.0, shape);
  std::ostringstream os;
  os << " [normwise: tol " << tol << " x max|ref| " << m << "]";
  r.report += os.str();
  return r;
}

}  // namespace hacm::test

// EXPECT_CLOSE(name, got_vec, ref_vec, atol, rtol[, shape]) — prints the report either way.
#define EXPECT_CLOSE(name, got, ref, atol, rtol, ...)                           \
  do {                                                                          \
    auto _r = ::hacm::test::compare(name, got, ref, atol, rtol, ##__VA_ARGS__); \
    std::printf("  %s\n", _r.report.c_str());                                   \
    EXPECT_TRUE(_r.ok) << _r.report;                                            \
  } while (0)

// EXPECT_CLOSE_NORMWISE(name, got_vec, ref_vec, tol[, shape]): max|got-ref| <= tol*max|ref|.
#define EXPECT_CLOSE_NORMWISE(name, got, ref, tol, ...)                           \
  do {                                                                            \
    auto _r = ::hacm::test::compare_normwise(name, got, ref, tol, ##__VA_ARGS__); \
    std::printf("  %s\n", _r.report.c_str());                                     \
    EXPECT_TRUE(_r.ok) << _r.report;                                              \
  } while (0)

// EXPECT_CLOSE_EACH(name, got_vec, ref_vec, atol_vec, rtol[, shape]): per-element atol.
#define EXPECT_CLOSE_EACH(name, got, ref, atol_each, rtol, ...)                           \
  do {                                                                                    \
    auto _r = ::hacm::test::compare_each(name, got, ref, atol_each, rtol, ##__VA_ARGS__); \
    std::printf("  %s\n", _r.report.c_str());                                             \
    EXPECT_TRUE(_r.ok) << _r.report;                                                      \
  } while (0)
