// The switch for our custom CUDA kernels (accelerated/kernels/) and the fused library paths chosen
// beside them (torch's fused AdamW): on by default; off, every op goes through ATen's plain
// composition (for A/B measurements: profile_step --no-custom-kernels, protocol key
// custom_kernels, and differential tests). Each one can also be turned off alone (profile_step
// --kernels-off, or the environment variable HACM_CUSTOM_KERNELS_OFF=name,name,...), to measure
// what it adds to a step or to set one aside. The kernels only ever run on CUDA tensors.
// Also the mapping of tensor dtypes to the kernels' storage types, for the LibTorch wrappers.
#pragma once
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "accelerated/kernels/dtype.h"

namespace hacm::accel {

void set_custom_kernels(bool on);
bool custom_kernels();

// The custom paths, each with a name for --kernels-off / HACM_CUSTOM_KERNELS_OFF.
enum class Kernel {
  kLayerNorm,          // "layer_norm": fused LayerNorm (kernels/layer_norm.cu), both forms
  kAddLayerNorm,       // "add_layer_norm": its residual form (block_stack_forward) alone
  kColumnSum,          // "column_sum": bias gradients of linear_forward (kernels/column_sum.cu)
  kLinearGelu,         // "linear_gelu": fc1's GELU backward + bias gradient (kernels/gelu.cu)
  kExpmapProjection,   // "expmap_projection": the tokens' Poincaré map (kernels/hyperbolic.cu)
  kFusedAdamW,         // "fused_adamw": torch's fused AdamW (accel::AdamW)
  kAttentionForward,   // "attention_forward": no-gradient attention (kernels/attention.cu)
  kAttentionTraining,  // "attention_training": attention with its backward (kernels/attention.cu)
  kAttentionMma,       // "attention_mma": both attention paths' forward with the softmax in
                       // registers (mma.sync); off: the WMMA forward kernel
  kAttentionMmaBackward,  // "attention_mma_backward": the training backward with its products
                          // in registers (mma.sync); off: the WMMA backward kernel
};
// Every name, in the enum's order.
const std::vector<std::string>& custom_kernel_names();
// True when custom_kernels() is on and `k` is not turned off.
bool custom_kernel(Kernel k);
// Turns off the kernels named in `csv` ("a,b"; empty: none) and on all the others, replacing
// HACM_CUSTOM_KERNELS_OFF. Throws std::invalid_argument naming an unknown name and the known ones.
void set_custom_kernels_off(const std::string& csv);
// The kernels turned off alone, comma-separated in the enum's order ("" when none); reads
// HACM_CUSTOM_KERNELS_OFF if nothing did yet (and throws as set_custom_kernels_off on a bad name).
std::string custom_kernels_off();

// Whether the kernels store this dtype (float32, bf16), and as which cuda::Dtype.
inline bool kernel_storable(c10::ScalarType t) {
  return t == c10::ScalarType::Float || t == c10::ScalarType::BFloat16;
}
inline cuda::Dtype kernel_dtype(c10::ScalarType t) {
  return t == c10::ScalarType::BFloat16 ? cuda::Dtype::kBF16 : cuda::Dtype::kF32;
}

}  // namespace hacm::accel
