// Initial parameters of the pre-training models, drawn from our own seeded generator so both
// backends start from identical weights on any machine. Names are PyTorch state_dict names.
// Distributions follow the authors' init (hacm-spec.md §3.6): Linear weights xavier-uniform and
// bias 0, LayerNorm 1/0, Conv2d PyTorch default (kaiming-uniform a=√5: U(±1/√fan_in) for weight
// and bias), pos/temp embeddings and mask tokens truncated normal std 0.02 (the authors' clamp
// at ±2 makes it effectively a plain normal).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "core/ndarray.h"

namespace hacm {

struct ModelShape {
  int64_t dim = 256;          // encoder width
  int64_t decoder_dim = 256;  // decoder width (HA-CM: = dim)
  int64_t depth = 8;
  int64_t decoder_depth = 3;
  int64_t mlp_ratio = 4;
  int64_t frames = 72;  // window
  int64_t joints = 18;  // token joints (HA-CM 18 kept, MAMP 25)
  int64_t t_patch = 3;
  bool hacm = true;  // HA-CM extras: l1/l2 (criterion), mask_token_t; MAMP: mask_token
};

// Parameters as float32 arrays (the checkpoint dtype), keyed by state_dict name.
std::map<std::string, NdArray> init_pretrain_params(const ModelShape& s, uint64_t seed);

}  // namespace hacm
