// Checkpoints shared with the accelerated backend: an .npz whose members are PyTorch state_dict
// names (`blocks.0.attn.qkv.weight`, ...) with PyTorch shapes, stored as float32. The golden
// weight files (weights_hacm*.npz) are such files and load directly.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "reference/tensor.h"

namespace hacm::ref {

template <class T>
struct Checkpoint {
  std::string source;                        // file it came from (for error messages)
  std::map<std::string, Tensor<T>> tensors;  // state_dict name -> tensor

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // The named tensor; with a non-empty `shape`, also checks the shape. Throws InputError naming
  // the file and the key.
  const Tensor<T>& at(const std::string& name, const std::vector<int64_t>& shape = {}) const;
};

// Loads every floating member of an npz (float32 or float64 in the file, converted to T).
template <class T>
Checkpoint<T> load_checkpoint(const std::string& path);
// Floating arrays of a name -> array map (e.g. core/model_init.h's initial weights), as T.
template <class T>
Checkpoint<T> checkpoint_from_arrays(const std::map<std::string, NdArray>& arrays,
                                     const std::string& source = "<memory>");
// Writes float32 members (the shared on-disk precision), atomically (NpzWriter's rename).
template <class T>
void save_checkpoint(const std::string& path, const Checkpoint<T>& ckpt);

}  // namespace hacm::ref
