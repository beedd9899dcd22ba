// `repro prepare`: turn raw datasets (or the embedded synthetic generator) into the benchmark
// .npz files the MAMP/HA-CM configs read: keys x_train, y_train, x_test, y_test;
// x float32 (N, 300, 150) = (frame, [person][joint][xyz]); y one-hot float64 (N, classes).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace hacm {

struct PrepareOptions {
  std::string dataset;   // ntu60 | ntu120 | pku1 | pku2 | synthetic
  std::string raw_dir;   // raw release directory (not used by synthetic)
  std::string out_dir;   // output directory (created if missing)
  int threads = 0;       // 0 = hardware concurrency
  bool progress = true;  // progress bar on stderr (plain lines when not a terminal)
  // synthetic only
  int64_t clips = 4000;
  uint64_t seed = 1;
  // Polled while working (per sample / chunk): true = stop and throw Interrupted; no output or
  // temporary file is left behind.
  std::function<bool()> cancelled;
  // Throws Interrupted when `cancelled` says so.
  void check_cancelled() const {
    if (cancelled && cancelled())
      throw Interrupted("prepare " + dataset + " stopped by a signal; no file written");
  }
};

// Each returns the list of files written. Throws InputError on bad input (exit code 2).
std::vector<std::string> prepare_ntu(const PrepareOptions& opt);        // ntu60 | ntu120
std::vector<std::string> prepare_pku(const PrepareOptions& opt);        // pku1 | pku2
std::vector<std::string> prepare_synthetic(const PrepareOptions& opt);  // synthetic

}  // namespace hacm
