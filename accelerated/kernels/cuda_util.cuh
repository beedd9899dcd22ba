// Small host-side helpers shared by the custom kernels (accelerated/kernels/*.cu).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace hacm::cuda {

// Multiprocessors of the current device (read once): grids aim at a few blocks per multiprocessor.
inline int multiprocessors() {
#ifdef HACM_CUDA_EMULATION  // the tests' CPU emulator (tests/cuda_emu) sets it per test
  return hacm_emu::multiprocessors();
#else
  static const int sms = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return std::max(n, 1);
  }();
  return sms;
#endif
}

// Throws with the kernel's name and CUDA's message when a launch failed.
inline void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA kernel ") + kernel + ": " + cudaGetErrorString(e));
}

}  // namespace hacm::cuda
