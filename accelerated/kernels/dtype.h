// Storage types the custom kernels read and write (float32 arithmetic whatever the storage).
// Plain C++: shared by the kernels and by their LibTorch wrappers (accelerated/custom_kernels.h).
#pragma once

namespace hacm::cuda {

enum class Dtype { kF32, kBF16 };

}  // namespace hacm::cuda
