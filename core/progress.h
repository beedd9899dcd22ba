// A progress line for long work: "\r"-updated bar on a terminal, plain lines (every ~5 %)
// otherwise. Thread-safe: workers call tick(); output is throttled to ~10 updates a second.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace hacm {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();  // finishes the line
  void tick(int64_t n = 1);
  void set_note(const std::string& note);  // shown after the counts (e.g. "loss 0.42")
  void finish();

 private:
  void draw(bool final);
  std::string label_, note_;
  int64_t total_;
  bool enabled_, tty_, finished_ = false;
  std::atomic<int64_t> done_{0};
  int last_pct_ = -1;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace hacm
