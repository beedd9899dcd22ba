#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace hacm {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(2) != 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  finish();
}

void Progress::tick(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (tty_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  draw(false);
}

void Progress::set_note(const std::string& note) {
  std::lock_guard<std::mutex> lock(mu_);
  note_ = note;
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  auto now = std::chrono::steady_clock::now();
  last_draw_ = now;
  int64_t done = done_.load();
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? done / secs : 0;
  double eta = (rate > 0 && total_ > done) ? (total_ - done) / rate : 0;
  int pct = total_ > 0 ? int(100.0 * done / total_) : 100;
  if (!tty_ && !final && pct / 5 == last_pct_ / 5) return;
  last_pct_ = pct;
  char bar[21];
  int fill = total_ > 0 ? int(20.0 * done / total_) : 20;
  for (int i = 0; i < 20; ++i) bar[i] = i < fill ? '#' : '.';
  bar[20] = 0;
  std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld  %.1f/s  %s %.0fs%s%s%s", tty_ ? "\r" : "",
               label_.c_str(), bar, pct, (long long)done, (long long)total_, rate,
               final ? "took" : "eta", final ? secs : eta, note_.empty() ? "" : "  ", note_.c_str(),
               (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace hacm
