#include "accelerated/custom_kernels.h"

#include <atomic>

namespace hacm::accel {

namespace {
std::atomic<bool> g_custom_kernels{true};
}  // namespace

void set_custom_kernels(bool on) {
  g_custom_kernels = on;
}
bool custom_kernels() {
  return g_custom_kernels;
}

}  // namespace hacm::accel
