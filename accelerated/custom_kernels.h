// The switch for our custom CUDA kernels (accelerated/kernels/): on by default; off, every op goes
// through ATen (for A/B measurements: profile_step --no-custom-kernels, protocol key
// custom_kernels, and differential tests). The kernels only ever run on CUDA tensors.
#pragma once

namespace hacm::accel {

void set_custom_kernels(bool on);
bool custom_kernels();

}  // namespace hacm::accel
