// Central finite differences for checking the hand-written backward passes (double precision).
// A test builds a scalar loss L(θ) = <g, f(θ)> with a fixed random g; the analytic gradient of L
// is backward(g), the numeric one comes from here.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "reference/tensor.h"

namespace hacm::ref {

// Numeric gradient of loss() w.r.t. every entry of x (x is perturbed in place and restored).
// Cost: 2·numel evaluations, so meant for small tensors.
template <class Loss>
std::vector<double> fd_gradient(Loss&& loss, Tensor<double>& x, double h) {
  std::vector<double> g(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    double keep = x[i];
    x[i] = keep + h;
    double lp = loss();
    x[i] = keep - h;
    double lm = loss();
    x[i] = keep;
    g[size_t(i)] = (lp - lm) / (2 * h);
  }
  return g;
}

// Numeric directional derivative of loss() along dir (same size as x), x restored afterwards.
template <class Loss>
double fd_directional(Loss&& loss, Tensor<double>& x, const std::vector<double>& dir, double h) {
  std::vector<double> keep = x.data;
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = keep[size_t(i)] + h * dir[size_t(i)];
  double lp = loss();
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = keep[size_t(i)] - h * dir[size_t(i)];
  double lm = loss();
  x.data = keep;
  return (lp - lm) / (2 * h);
}

// <a, b> over flat buffers.
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

// A tensor of N(0, stddev²) entries from our own generator.
inline Tensor<double> randn(const std::vector<int64_t>& shape, Rng& rng, double stddev = 1.0) {
  Tensor<double> t(shape);
  for (auto& v : t.data) v = rng.normal(0.0, stddev);
  return t;
}

}  // namespace hacm::ref
