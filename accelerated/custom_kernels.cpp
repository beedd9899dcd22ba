#include "accelerated/custom_kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace hacm::accel {

namespace {

std::atomic<bool> g_custom_kernels{true};
std::atomic<unsigned> g_off{0};  // bit i: Kernel(i) turned off
std::once_flag g_env_once;

unsigned parse_off(const std::string& csv, const char* source) {
  unsigned off = 0;
  size_t start = 0;
  while (start <= csv.size()) {
    const size_t end = std::min(csv.find(',', start), csv.size());
    const std::string name = csv.substr(start, end - start);
    if (!name.empty()) {
      const auto& names = custom_kernel_names();
      size_t i = 0;
      while (i < names.size() && names[i] != name) ++i;
      if (i == names.size()) {
        std::string known;
        for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
        throw std::invalid_argument(std::string(source) + ": unknown kernel '" + name +
                                    "' (known: " + known + ")");
      }
      off |= 1u << i;
    }
    start = end + 1;
  }
  return off;
}

// HACM_CUSTOM_KERNELS_OFF, read once on first use unless set_custom_kernels_off came first.
void read_env() {
  std::call_once(g_env_once, [] {
    const char* e = std::getenv("HACM_CUSTOM_KERNELS_OFF");
    if (e) g_off = parse_off(e, "HACM_CUSTOM_KERNELS_OFF");
  });
}

}  // namespace

void set_custom_kernels(bool on) {
  g_custom_kernels = on;
}
bool custom_kernels() {
  return g_custom_kernels;
}

const std::vector<std::string>& custom_kernel_names() {
  static const std::vector<std::string> names = {
      "layer_norm",        "add_layer_norm",        "column_sum",        "linear_gelu",
      "expmap_projection", "fused_adamw",           "attention_forward", "attention_training",
      "attention_mma",     "attention_mma_backward"};
  return names;
}

bool custom_kernel(Kernel k) {
  if (!g_custom_kernels) return false;
  read_env();
  return !(g_off.load() & (1u << unsigned(k)));
}

std::string custom_kernels_off() {
  read_env();
  std::string s;
  for (size_t i = 0; i < custom_kernel_names().size(); ++i)
    if (g_off.load() & (1u << i)) s += (s.empty() ? "" : ",") + custom_kernel_names()[i];
  return s;
}

void set_custom_kernels_off(const std::string& csv) {
  const unsigned off = parse_off(csv, "--kernels-off");
  std::call_once(g_env_once, [] {});  // the explicit setting wins over the environment
  g_off = off;
}

}  // namespace hacm::accel
