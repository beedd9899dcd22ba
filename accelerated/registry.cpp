// The accelerated backend's entries in the component registry (core/components.h). Gradients
// come from autograd. Components without an entry point of their own are registered as "inline"
// (the enclosing function plus the expression) or as the LibTorch operator used directly; the
// macros take the addresses of the named functions, so a rename or removal breaks this build.
#include <string>

#include "accelerated/downstream.h"
#include "accelerated/feeder.h"
#include "accelerated/fused_attention.h"
#include "accelerated/fused_linear.h"
#include "accelerated/hacm.h"
#include "accelerated/hyperbolic.h"
#include "accelerated/mamp.h"
#include "accelerated/tensor_io.h"
#include "accelerated/train.h"
#include "accelerated/transformer.h"
#include "core/components.h"

namespace hacm::accel {

namespace {

void add(ComponentRegistry& reg, const char* component, Provision how, const std::string& fwd,
         bool grad, const char* note = "") {
  reg.implement(component, {Backend::kAccelerated, how, fwd, grad ? "autograd" : "", note});
}

}  // namespace

#define HACM_ACC(component, fn, grad, note) \
  (static_cast<void>(&fn),                  \
   add(reg, component, Provision::kFunction, "hacm::accel::" #fn, grad, note))
#define HACM_ACC_INLINE(component, fn, note) \
  (static_cast<void>(&fn), add(reg, component, Provision::kInline, "hacm::accel::" #fn, true, note))

void register_accelerated_components(ComponentRegistry& reg) {
  // hyperbolic
  HACM_ACC("expmap", expmap_forward, true, "");
  HACM_ACC("project", project_forward, true, "");
  HACM_ACC("expmap_with_projection", expmap_with_projection_forward, true,
           "CUDA float32: one kernel each way (kernels/hyperbolic.cu, fused_hyperbolic.h)");
  HACM_ACC("logmap", logmap_forward, true, "");
  HACM_ACC("poincare_distance", poincare_distance_forward, true, "");
  HACM_ACC("poincare_distance_pairwise", spatial_distances_forward, false,
           "Gram-matrix expansion, plus the root distances Df");
  // embedding
  HACM_ACC_INLINE("to_person_major", hacm_forward,
                  "x5.permute(0,4,2,3,1); also mamp_forward, encoder");
  HACM_ACC_INLINE("select_joints", hacm_forward, "index_select on the joint axis");
  HACM_ACC("patch_embed", patch_embed_forward, true, "");
  HACM_ACC_INLINE("add_pos_temp", hacm_forward, "E + pos_embed + temp_embed");
  // transformer
  HACM_ACC(
      "linear", linear_forward, true,
      "at::linear; on CUDA the bias gradient by the column-sum kernel (kernels/column_sum.cu)");
  HACM_ACC("layernorm", layer_norm_forward, true,
           "CUDA float32/bf16: fused kernel (kernels/layer_norm.cu, fused_layer_norm.h); also "
           "layer_norm_matmul_input");
  static_cast<void>(&layer_norm_matmul_input);
  HACM_ACC("gelu", linear_gelu_forward, true,
           "with the fc1 before it: at::gelu(at::linear); on CUDA the GELU backward and fc1's "
           "bias gradient in one kernel (kernels/gelu.cu)");
  HACM_ACC("attention", attention_forward, true,
           "at::scaled_dot_product_attention; on CUDA in bf16 at head dimension 32 the kernels of "
           "kernels/attention.cu (fused_attention.h: forward only without gradient, forward + "
           "backward for training; by default with the products in registers, mma.sync)");
  HACM_ACC("attention_core", fused_attention, true,
           "CUDA, bf16, head dimension 32 (kernels/attention.cu; fused_attention_training for "
           "the gradient); attention_forward's other paths compute it inside SDPA");
  HACM_ACC("block", block_forward, true, "");
  HACM_ACC("block_stack", block_stack_forward, true,
           "CUDA: each residual addition inside the next LayerNorm (fused_add_layer_norm)");
  HACM_ACC_INLINE("drop_path", block_forward, "drop_path > 0");
  HACM_ACC_INLINE("head_dropout", finetune_head_forward, "at::dropout, dropout > 0");
  // criteria and selection
  HACM_ACC("temporal_scores", temporal_scores_forward, false, "column sum in hacm_forward");
  static_cast<void>(&spatial_distances_forward);
  add(reg, "spatial_scores", Provision::kInline, "hacm::accel::hacm_forward", false,
      "spatial_distances_forward, D.sum(2) + 0.01·Df");
  add(reg, "matrix_score", Provision::kInline, "hacm::accel::hacm_forward", false,
      "t_att.sum(2), D.sum(2)");
  HACM_ACC("gumbel_topk", gumbel_topk_forward, false, "");
  HACM_ACC("selection_injection", gumbel_topk_forward, false, "ids_shuffle_inject; HacmInject");
  HACM_ACC_INLINE("gather_tokens", hacm_forward, "at::gather");
  // losses and targets
  HACM_ACC_INLINE("cross_contrast_loss", hacm_forward, "");
  HACM_ACC_INLINE("motion_target", hacm_forward, "");
  HACM_ACC("patchify", patchify_forward, true, "");
  HACM_ACC_INLINE("recon_loss", hacm_forward, "also mamp_forward");
  HACM_ACC_INLINE("mae_decoder", hacm_forward, "also mamp_forward");
  // whole models
  HACM_ACC("hacm_released", hacm_forward, true, "variant released");
  HACM_ACC("hacm_corrected", hacm_forward, true, "variant corrected");
  HACM_ACC("mamp", mamp_forward, true, "");
  // downstream
  HACM_ACC("downstream_encoder", downstream_encoder_forward, true, "");
  HACM_ACC("linprobe_features", linprobe_features_forward, false, "");
  HACM_ACC_INLINE("finetune_features", finetune_head_forward, "feat_out");
  add(reg, "batchnorm", Provision::kLibraryOp, "at::batch_norm", true, "in both heads");
  HACM_ACC("linprobe_head", linprobe_head_forward, true, "");
  HACM_ACC("finetune_head", finetune_head_forward, true, "takes tokens: features + head");
  HACM_ACC("cross_entropy", cross_entropy_forward, true, "");
  // training
  HACM_ACC("adamw", AdamW::step, false, "");
  HACM_ACC("sgd_momentum", Sgd::step, false, "");
  HACM_ACC("weight_decay_groups", weight_decay_groups, false, "");
  HACM_ACC("layer_decay_groups", layer_decay_groups, false, "");
  HACM_ACC("cosine_lr", cosine_lr, false, "");
  static_cast<void>(&AdamW::load), static_cast<void>(&Sgd::save), static_cast<void>(&Sgd::load);
  HACM_ACC("optimizer_state_io", AdamW::save, false, "AdamW / Sgd save, load");
  static_cast<void>(&save_state_dict), static_cast<void>(&to_tensor),
      static_cast<void>(&to_ndarray);
  HACM_ACC("checkpoint_io", load_state_dict, false, "save_state_dict, to_tensor, to_ndarray");
  // data
  HACM_ACC("feeder_batch", DeviceFeeder::apply, false,
           "clips resident on the device, batched tensor ops; DeviceFeeder::get_batch");
}

#undef HACM_ACC
#undef HACM_ACC_INLINE

}  // namespace hacm::accel
