// The reference backend's entries in the component registry (core/components.h). Each line names
// the functions that compute a component and its hand-written gradient; the macros take their
// addresses, so renaming or removing one breaks this file's build instead of leaving the
// registry stale. "inline" = computed inside a larger function, no entry point of its own.
#include <string>

#include "core/components.h"
#include "core/feeder.h"
#include "reference/checkpoint.h"
#include "reference/criteria.h"
#include "reference/decoder.h"
#include "reference/downstream.h"
#include "reference/embed.h"
#include "reference/hacm_model.h"
#include "reference/hyperbolic.h"
#include "reference/mamp.h"
#include "reference/optim.h"
#include "reference/recon_loss.h"
#include "reference/transformer.h"

namespace hacm::ref {

namespace {

void add(ComponentRegistry& reg, const char* component, Provision how, const char* fwd,
         const char* grad, const char* note = "") {
  reg.implement(component, {Backend::kReference, how, std::string("hacm::ref::") + fwd,
                            grad[0] ? std::string("hacm::ref::") + grad : std::string(), note});
}

}  // namespace

// A public forward / backward pair.
#define HACM_REF_PAIR(component, fwd, bwd)           \
  (static_cast<void>(&fwd), static_cast<void>(&bwd), \
   add(reg, component, Provision::kFunction, #fwd, #bwd))
// A public function with no gradient (the catalogue says why).
#define HACM_REF_NOGRAD(component, fwd, note) \
  (static_cast<void>(&fwd), add(reg, component, Provision::kFunction, #fwd, "", note))
// Computed inside `fwd`, differentiated inside `bwd`.
#define HACM_REF_INLINE(component, fwd, bwd, note)   \
  (static_cast<void>(&fwd), static_cast<void>(&bwd), \
   add(reg, component, Provision::kInline, #fwd, #bwd, note))

void register_reference_components(ComponentRegistry& reg) {
  // hyperbolic
  HACM_REF_PAIR("expmap", expmap_forward<double>, expmap_backward<double>);
  HACM_REF_PAIR("project", project_forward<double>, project_backward<double>);
  HACM_REF_PAIR("expmap_with_projection", expmap_with_projection_forward<double>,
                expmap_with_projection_backward<double>);
  HACM_REF_PAIR("logmap", logmap_forward<double>, logmap_backward<double>);
  HACM_REF_PAIR("poincare_distance", poincare_distance_forward<double>,
                poincare_distance_backward<double>);
  HACM_REF_NOGRAD("poincare_distance_pairwise", poincare_distance_pairwise_forward<double>,
                  "the spatial criterion uses poincare_distance_row");
  // embedding
  HACM_REF_PAIR("to_person_major", to_person_major_forward<double>,
                to_person_major_backward<double>);
  HACM_REF_PAIR("select_joints", select_joints_forward<double>, select_joints_backward<double>);
  HACM_REF_PAIR("patch_embed", patch_embed_forward<double>, patch_embed_backward<double>);
  HACM_REF_PAIR("add_pos_temp", add_pos_temp_forward<double>, add_pos_temp_backward<double>);
  // transformer
  HACM_REF_PAIR("linear", linear_forward<double>, linear_backward<double>);
  HACM_REF_PAIR("layernorm", layernorm_forward<double>, layernorm_backward<double>);
  HACM_REF_PAIR("gelu", gelu_forward<double>, gelu_backward<double>);
  HACM_REF_PAIR("attention", attention_forward<double>, attention_backward<double>);
  HACM_REF_PAIR("attention_core", attention_core_forward<double>, attention_core_backward<double>);
  HACM_REF_PAIR("block", block_forward<double>, block_backward<double>);
  HACM_REF_INLINE("block_stack", hacm_forward<double>, hacm_backward<double>,
                  "the encoder's loop of block_forward + layernorm_forward; also mamp_forward, "
                  "mae_decoder_forward, encoder_forward");
  HACM_REF_INLINE("drop_path_masked", block_forward<double>, block_backward<double>,
                  "BranchScales argument; masks from drop_path_scales");
  HACM_REF_PAIR("dropout_masked", dropout_forward<double>, dropout_backward<double>);
  // criteria and selection
  HACM_REF_NOGRAD("temporal_scores", temporal_scores_forward<double>, "");
  HACM_REF_NOGRAD("spatial_scores", spatial_scores_forward<double>, "");
  HACM_REF_NOGRAD("matrix_score", matrix_score_forward<double>, "");
  HACM_REF_NOGRAD("gumbel_topk", gumbel_topk_forward<double>, "");
  HACM_REF_NOGRAD("selection_injection", selection_from_order<double>,
                  "hacm_forward's order_t / order_s");
  HACM_REF_PAIR("gather_tokens", gather_tokens_forward<double>, gather_tokens_backward<double>);
  // losses and targets
  HACM_REF_INLINE("cross_contrast_loss", hacm_forward<double>, hacm_backward<double>,
                  "softmax rows vs identity; cc_term_backward");
  HACM_REF_INLINE("motion_target", hacm_forward<double>, hacm_backward<double>,
                  "motion, ewp, target rows");
  HACM_REF_PAIR("patchify", patchify_forward<double>, patchify_backward<double>);
  HACM_REF_PAIR("recon_loss", recon_loss_forward<double>, recon_loss_backward<double>);
  HACM_REF_PAIR("mae_decoder", mae_decoder_forward<double>, mae_decoder_backward<double>);
  // whole models
  static_cast<void>(&hacm_forward<double>), static_cast<void>(&hacm_backward<double>);
  add(reg, "hacm_released", Provision::kFunction, "hacm_forward", "hacm_backward",
      "variant released");
  add(reg, "hacm_corrected", Provision::kFunction, "hacm_forward", "hacm_backward",
      "variant corrected");
  HACM_REF_PAIR("mamp", mamp_forward<double>, mamp_backward<double>);
  // downstream
  HACM_REF_PAIR("downstream_encoder", encoder_forward<double>, encoder_backward<double>);
  HACM_REF_NOGRAD("linprobe_features", linprobe_features<double>, "");
  HACM_REF_PAIR("finetune_features", finetune_features<double>, finetune_features_backward<double>);
  HACM_REF_PAIR("batchnorm", batchnorm_forward<double>, batchnorm_backward<double>);
  HACM_REF_PAIR("linprobe_head", linprobe_head_forward<double>, linprobe_head_backward<double>);
  HACM_REF_PAIR("finetune_head", finetune_head_forward<double>, finetune_head_backward<double>);
  static_cast<void>(&cross_entropy<double>);
  add(reg, "cross_entropy", Provision::kFunction, "cross_entropy", "cross_entropy",
      "the g_logits argument returns the gradient");
  // training
  HACM_REF_NOGRAD("adamw", AdamW<double>::step, "");
  HACM_REF_NOGRAD("sgd_momentum", SgdMomentum<double>::step, "");
  static_cast<void>(&no_weight_decay);
  HACM_REF_NOGRAD("weight_decay_groups", make_param_refs<double>, "rule: no_weight_decay");
  static_cast<void>(&layer_id);
  HACM_REF_NOGRAD("layer_decay_groups", layer_lr_scale, "make_param_refs(layer_decay > 0)");
  HACM_REF_NOGRAD("cosine_lr", lr_at, "");
  static_cast<void>(&save_checkpoint<double>), static_cast<void>(&checkpoint_from_arrays<double>);
  HACM_REF_NOGRAD("checkpoint_io", load_checkpoint<double>,
                  "save_checkpoint, checkpoint_from_arrays");
  // data: the reference trains on the CPU feeder of core/ (per clip, float and double paths).
  using FeederApply = void (*)(const float*, ClipLayout, int64_t, const FeederDraws&,
                               const FeederConfig&, float*, FeederStage);
  static_cast<void>(static_cast<FeederApply>(&hacm::feeder_apply));
  reg.implement("feeder_batch", {Backend::kReference, Provision::kFunction, "hacm::feeder_apply",
                                 "", "core/feeder.h, per clip; Feeder::get_batch threads it"});
}

#undef HACM_REF_PAIR
#undef HACM_REF_NOGRAD
#undef HACM_REF_INLINE

}  // namespace hacm::ref
