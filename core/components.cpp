// Component catalogue and registry checks (see components.h).
#include "core/components.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace hacm {

const char* backend_name(Backend b) {
  return b == Backend::kReference ? "reference" : "accelerated";
}

namespace {

ComponentSpec both(std::string name, std::string family, std::string description,
                   std::vector<std::string> tests) {
  ComponentSpec c;
  c.name = std::move(name);
  c.family = std::move(family);
  c.description = std::move(description);
  c.tests = std::move(tests);
  return c;
}
ComponentSpec no_grad(ComponentSpec c, std::string why) {
  c.differentiable = false;
  c.why_no_gradient = std::move(why);
  return c;
}
ComponentSpec only(ComponentSpec c, Backend b, std::string reason) {
  c.one_sided = true;
  c.only = b;
  c.one_sided_reason = std::move(reason);
  return c;
}

const char* kArgsortOnly = "feeds an argsort only: no gradient in the released code";

std::vector<ComponentSpec> build_catalogue() {
  std::vector<ComponentSpec> c;
  // ---- hyperbolic
  c.push_back(
      both("expmap", "hyperbolic", "tanh(|x|)/|x|·x, exponential map at the origin",
           {"golden_ref_hyperbolic.cpp ReferenceHyperbolic.DoubleMapsMatchGolden",
            "golden_hyperbolic_accel.cpp AcceleratedHyperbolic.CpuDoubleMapsMatchGolden",
            "test_ref_hyperbolic.cpp ReferenceHyperbolic.ExpmapBackwardMatchesFiniteDifferences"}));
  c.push_back(both(
      "project", "hyperbolic", "rescale to norm 1-1e-5 where |y| >= 1",
      {"golden_ref_hyperbolic.cpp ReferenceHyperbolic.ProjectionFiresWhereGoldenDoes",
       "golden_hyperbolic_accel.cpp AcceleratedHyperbolic.CpuDoubleMapsMatchGolden",
       "test_ref_hyperbolic.cpp ReferenceHyperbolic.ProjectBackwardMatchesFiniteDifferences"}));
  c.push_back(both(
      "expmap_with_projection", "hyperbolic", "project(expmap(x)): tokens into the Poincaré ball",
      {"diff_hyperbolic.cpp DifferentialHyperbolic.ExpmapWithProjectionForwardBackward",
       "diff_hyperbolic.cpp DifferentialHyperbolic.CudaFusedExpmapProjectionMatchesReference",
       "diff_hyperbolic.cpp DifferentialHyperbolic.CudaFusedExpmapProjectionSaturation",
       "golden_ref_hyperbolic.cpp ReferenceHyperbolic.DoubleMapsMatchGolden",
       "golden_hyperbolic_accel.cpp AcceleratedHyperbolic.CpuDoubleMapsMatchGolden"}));
  c.push_back(both(
      "logmap", "hyperbolic", "atanh(|y|)/|y|·y (defined, unused by the model)",
      {"diff_hyperbolic.cpp DifferentialHyperbolic.LogmapForwardBackward",
       "golden_ref_hyperbolic.cpp ReferenceHyperbolic.DoubleDistanceAndLogmapMatchGolden",
       "golden_hyperbolic_accel.cpp AcceleratedHyperbolic.CpuDoubleDistanceAndLogmapMatchGolden"}));
  c.push_back(both(
      "poincare_distance", "hyperbolic", "arccosh distance, factor 4 (released) or 2",
      {"diff_hyperbolic.cpp DifferentialHyperbolic.DistanceForwardBackward",
       "golden_ref_hyperbolic.cpp ReferenceHyperbolic.DoubleDistanceAndLogmapMatchGolden",
       "golden_hyperbolic_accel.cpp AcceleratedHyperbolic.CpuDoubleDistanceAndLogmapMatchGolden"}));
  c.push_back(no_grad(
      both("poincare_distance_pairwise", "hyperbolic", "all-pairs distances within a batch",
           {"golden_ref_hyperbolic.cpp ReferenceHyperbolic.DoubleDistanceAndLogmapMatchGolden",
            "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleForward"}),
      std::string("spatial criterion: ") + kArgsortOnly));
  // ---- embedding
  c.push_back(
      both("to_person_major", "embedding", "[N,C,T,J,M] -> [N·M,T,J,C]",
           {"golden_ref_embed.cpp ReferenceEmbed.JointSplitMatchesGolden",
            "test_ref_embed.cpp ReferenceEmbed.PosTempAndSplitBackwardMatchFiniteDifferences",
            "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  c.push_back(
      both("select_joints", "embedding", "18 kept / 7 root joints of the released split",
           {"golden_ref_embed.cpp ReferenceEmbed.JointSplitMatchesGolden",
            "test_ref_embed.cpp ReferenceEmbed.PosTempAndSplitBackwardMatchFiniteDifferences",
            "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  c.push_back(both("patch_embed", "embedding",
                   "stride-t_patch temporal conv (shared by kept and root joints)",
                   {"golden_ref_embed.cpp ReferenceEmbed.DoublePatchEmbeddingMatchesGolden",
                    "test_ref_embed.cpp ReferenceEmbed.PatchEmbedBackwardMatchesFiniteDifferences",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  c.push_back(
      both("add_pos_temp", "embedding", "+ pos_embed[v] + temp_embed[τ]",
           {"test_ref_embed.cpp ReferenceEmbed.PosTempAndSplitBackwardMatchFiniteDifferences",
            "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  // ---- transformer
  c.push_back(
      both("linear", "transformer", "x·Wᵀ + b with PyTorch [out, in] weights",
           {"test_ref_transformer.cpp ReferenceTransformer.LinearBackwardMatchesFiniteDifferences",
            "diff_transformer.cpp DifferentialTransformer.BlockForwardBackward"}));
  c.push_back(both(
      "layernorm", "transformer", "LayerNorm over the last dim, eps 1e-5",
      {"test_ref_transformer.cpp ReferenceTransformer.LayerNormBackwardMatchesFiniteDifferences",
       "diff_transformer.cpp DifferentialTransformer.BlockForwardBackward"}));
  c.push_back(
      both("gelu", "transformer", "exact-erf GELU",
           {"test_ref_transformer.cpp ReferenceTransformer.GeluBackwardMatchesFiniteDifferences",
            "diff_transformer.cpp DifferentialTransformer.BlockForwardBackward",
            "diff_linear.cpp DifferentialLinear.CudaLinearGeluFloat32MatchesReference",
            "diff_linear.cpp DifferentialLinear.CudaLinearGeluBf16MatchesReference",
            "diff_linear.cpp DifferentialLinear.CpuLinearGeluIsAten"}));
  c.push_back(both(
      "attention", "transformer", "multi-head self-attention (qkv, softmax, proj)",
      {"golden_ref_transformer.cpp ReferenceTransformer.Width64BackwardMatchesGolden",
       "test_ref_transformer.cpp ReferenceTransformer.AttentionBackwardMatchesFiniteDifferences",
       "diff_transformer.cpp DifferentialTransformer.BlockForwardBackward",
       "diff_attention.cpp DifferentialAttention.CudaForwardMatchesDouble",
       "diff_attention.cpp DifferentialAttention.CudaNoGradPathAgreesWithSdpa",
       "diff_attention.cpp DifferentialAttention.CudaTrainingMatchesDouble",
       "diff_attention.cpp DifferentialAttention.CudaTrainingPathAgreesWithSdpa"}));
  c.push_back(both("attention_core", "transformer",
                   "the attention between the two projections: softmax(q kᵀ / sqrt(head dim)) v "
                   "per head, from the packed qkv projection",
                   {"emu_kernels.cpp EmuAttention.ForwardAndBackwardMatchDouble",
                    "diff_attention.cpp DifferentialAttention.CudaForwardMatchesDouble",
                    "diff_attention.cpp DifferentialAttention.CudaTrainingMatchesDouble"}));
  c.push_back(both("block", "transformer", "pre-LN ViT block: attention + MLP residuals",
                   {"golden_ref_transformer.cpp ReferenceTransformer.Width256ForwardMatchesGolden",
                    "golden_ref_transformer.cpp ReferenceTransformer.Width64BackwardMatchesGolden",
                    "diff_transformer.cpp DifferentialTransformer.BlockForwardBackward"}));
  c.push_back(both("block_stack", "transformer",
                   "blocks 0..depth-1 then the final LayerNorm (encoder and decoder trunks)",
                   {"golden_ref_model.cpp ReferenceModel.ReleasedForwardMatchesGolden",
                    "golden_ref_grads.cpp ReferenceGrads.ReleasedBackwardMatchesGolden",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients",
                    "diff_transformer.cpp DifferentialTransformer.BlockStackIsBlocksThenNorm"}));
  // The regularisers exist in both backends, but not as one comparable component: the
  // accelerated draws its masks from torch's generator inside the ops, the reference takes them
  // as inputs (drawn from our Rng, or fixed by tests). Hence a pair of one-sided entries each.
  c.push_back(only(both("drop_path", "transformer",
                        "stochastic depth on the residual branches (fine-tuning)", {}),
                   Backend::kAccelerated,
                   "random training regulariser drawn from torch's generator; the reference's "
                   "counterpart takes its masks as inputs (drop_path_masked)"));
  c.push_back(only(both("head_dropout", "transformer",
                        "dropout 0.3 on the tokens before the fine-tuning head", {}),
                   Backend::kAccelerated,
                   "random training regulariser drawn from torch's generator; the reference's "
                   "counterpart takes its mask as input (dropout_masked)"));
  c.push_back(only(
      both("drop_path_masked", "transformer",
           "drop-path with given per-sample branch scales (0 or 1/(1-p)), block i at rate "
           "r·i/(depth-1)",
           {"test_ref_downstream.cpp ReferenceDownstream.DropPathBackwardMatchesFiniteDifferences",
            "test_ref_downstream.cpp ReferenceDownstream.ZeroRatesChangeNothing",
            "test_ref_downstream.cpp ReferenceDownstream.MasksFollowTheirRates"}),
      Backend::kReference,
      "masks are inputs (our Rng or a test's); the accelerated drop_path draws them from torch's "
      "generator, so the two cannot be compared draw for draw"));
  c.push_back(only(
      both("dropout_masked", "transformer",
           "dropout with a given keep mask (0 or 1/(1-p)) on the tokens before the fine-tuning "
           "head",
           {"test_ref_downstream.cpp ReferenceDownstream.DropPathBackwardMatchesFiniteDifferences",
            "test_ref_downstream.cpp ReferenceDownstream.ZeroRatesChangeNothing",
            "test_ref_downstream.cpp ReferenceDownstream.MasksFollowTheirRates"}),
      Backend::kReference,
      "mask is an input (our Rng or a test's); the accelerated head_dropout draws it from torch's "
      "generator, so the two cannot be compared draw for draw"));
  // ---- criteria and selection
  c.push_back(no_grad(
      both("temporal_scores", "criteria", "l1/l2 attention softmax over joints, column sums",
           {"golden_ref_criteria.cpp ReferenceCriteria.TemporalScoresMatchGolden",
            "test_ref_criteria.cpp ReferenceCriteria.TemporalAttentionNormalisedOverJoints",
            "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleForward"}),
      kArgsortOnly));
  c.push_back(no_grad(
      both("spatial_scores", "criteria", "hyperbolic joint distances + 0.01·distance to the root",
           {"golden_ref_criteria.cpp ReferenceCriteria.SpatialScoresMatchGolden",
            "test_ref_criteria.cpp ReferenceCriteria.SpatialDistanceFactorIsASetting",
            "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleForward"}),
      kArgsortOnly));
  c.push_back(no_grad(
      both("matrix_score", "criteria", "mask_hyper_matrix's matrix.sum(-2) -> per-token score",
           {"golden_ref_criteria.cpp ReferenceCriteria.SpatialScoresMatchGolden",
            "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleForward"}),
      kArgsortOnly));
  c.push_back(
      no_grad(both("gumbel_topk", "criteria", "normalise, softmax, Gumbel key, argsort, keep K",
                   {"golden_ref_criteria.cpp ReferenceCriteria.GumbelSelectionMatchesGolden",
                    "test_ref_criteria.cpp ReferenceCriteria.SelectionInvariants",
                    "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleForward"}),
              "integer selection (argsort)"));
  c.push_back(no_grad(
      both("selection_injection", "criteria", "selection from a given ids_shuffle (float32 runs)",
           {"golden_ref_model.cpp ReferenceModel.FloatForwardWithInjectedSelectionMatchesGolden",
            "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuFloatGradientsInjectedSelection",
            "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}),
      "integer selection (argsort)"));
  c.push_back(
      both("gather_tokens", "criteria", "gather the kept tokens [B,L,C] -> [B,K,C]",
           {"test_ref_criteria.cpp ReferenceCriteria.GatherBackwardMatchesFiniteDifferences",
            "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  // ---- losses and targets
  c.push_back(both("cross_contrast_loss", "losses",
                   "softmax(group-mean similarities) vs identity, 3 MSE terms",
                   {"golden_ref_model.cpp ReferenceModel.ReleasedForwardMatchesGolden",
                    "golden_ref_grads.cpp ReferenceGrads.ReleasedBackwardMatchesGolden",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  c.push_back(both("motion_target", "losses",
                   "frame-difference motion -> ewp -> patches (not detached)",
                   {"golden_ref_model.cpp ReferenceModel.ReleasedForwardMatchesGolden",
                    "golden_ref_grads.cpp ReferenceGrads.ReleasedBackwardMatchesGolden",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients"}));
  c.push_back(both("patchify", "losses", "[B,T,J,C] -> [B,(T/tp)·J,tp·C] (MAMP target)",
                   {"golden_ref_mamp.cpp ReferenceMamp.ForwardMatchesGolden",
                    "test_ref_mamp.cpp ReferenceMamp.BackwardMatchesFiniteDifferences",
                    "diff_model.cpp DifferentialModel.MampLossAndGradients"}));
  c.push_back(both("mae_decoder", "transformer",
                   "decoder_embed, un-shuffle with the mask token, + pos/temp, blocks, norm, pred",
                   {"golden_ref_model.cpp ReferenceModel.ReleasedForwardMatchesGolden",
                    "golden_ref_grads.cpp ReferenceGrads.ReleasedBackwardMatchesGolden",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients",
                    "diff_model.cpp DifferentialModel.MampLossAndGradients"}));
  c.push_back(both("recon_loss", "losses", "masked MSE to the per-patch normalised target",
                   {"golden_ref_grads.cpp ReferenceGrads.ReleasedBackwardMatchesGolden",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients",
                    "diff_model.cpp DifferentialModel.MampLossAndGradients"}));
  // ---- whole models
  c.push_back(both("hacm_released", "models",
                   "HA-CM pre-training loss, f13611b code with its quirks",
                   {"golden_ref_model.cpp ReferenceModel.ReleasedForwardMatchesGolden",
                    "golden_ref_grads.cpp ReferenceGrads.ReleasedBackwardMatchesGolden",
                    "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleGradients",
                    "diff_model.cpp DifferentialModel.ReleasedLossAndGradients",
                    "diff_trajectory.cpp DifferentialTrajectory.ReleasedTenAdamWSteps",
                    "diff_autocast.cpp DifferentialAutocast.ReleasedBf16LossAndGradients",
                    "diff_autocast.cpp DifferentialAutocast.ReleasedBf16CpuEstimate"}));
  c.push_back(both("hacm_corrected", "models",
                   "HA-CM with one token order and the full decoder grid",
                   {"test_ref_model.cpp ReferenceModel.CorrectedBackwardMatchesFiniteDifferences",
                    "test_ref_model.cpp ReferenceModel.CorrectedVariantTokenOrder",
                    "diff_model.cpp DifferentialModel.CorrectedLossAndGradients",
                    "diff_trajectory.cpp DifferentialTrajectory.CorrectedTenAdamWSteps",
                    "diff_autocast.cpp DifferentialAutocast.CorrectedBf16LossAndGradients",
                    "diff_autocast.cpp DifferentialAutocast.CorrectedBf16CpuEstimate"}));
  c.push_back(both("mamp", "models", "MAMP baseline: motion-aware masking, motion reconstruction",
                   {"golden_ref_mamp.cpp ReferenceMamp.ForwardMatchesGolden",
                    "golden_downstream_accel.cpp AcceleratedMampGolden.CpuDoubleForward",
                    "test_ref_mamp.cpp ReferenceMamp.BackwardMatchesFiniteDifferences",
                    "diff_model.cpp DifferentialModel.MampLossAndGradients"}));
  // ---- downstream
  c.push_back(both(
      "downstream_encoder", "downstream",
      "unmasked encoder for evaluation: embed, ewp, blocks, norm",
      {"golden_ref_downstream.cpp ReferenceDownstream.EncoderAndHeadsMatchGolden",
       "golden_downstream_accel.cpp AcceleratedDownstreamGolden.CpuDoubleLinprobeAndFinetuneLogits",
       "test_ref_downstream.cpp ReferenceDownstream.FinetuneBackwardMatchesFiniteDifferences",
       "diff_model.cpp DifferentialModel.DownstreamLogits"}));
  c.push_back(no_grad(
      both("linprobe_features", "downstream", "mean over persons, time and joints -> [N, D]",
           {"golden_ref_downstream.cpp ReferenceDownstream.EncoderAndHeadsMatchGolden",
            "diff_model.cpp DifferentialModel.DownstreamLogits"}),
      "linear probing freezes the encoder: only the head trains"));
  c.push_back(both(
      "finetune_features", "downstream", "mean over time, joint-major flatten, mean over persons",
      {"golden_ref_downstream.cpp ReferenceDownstream.EncoderAndHeadsMatchGolden",
       "test_ref_downstream.cpp ReferenceDownstream.FinetuneBackwardMatchesFiniteDifferences",
       "diff_model.cpp DifferentialModel.DownstreamLogits"}));
  c.push_back(
      both("batchnorm", "downstream", "BatchNorm1d, batch or running statistics",
           {"test_ref_downstream.cpp ReferenceDownstream.BatchNormRunningUpdate",
            "test_ref_downstream.cpp ReferenceDownstream.LinprobeBackwardMatchesFiniteDifferences",
            "diff_model.cpp DifferentialModel.DownstreamLogits"}));
  c.push_back(
      both("linprobe_head", "downstream", "BatchNorm1d(affine=False) + fc",
           {"golden_ref_downstream.cpp ReferenceDownstream.EncoderAndHeadsMatchGolden",
            "test_ref_downstream.cpp ReferenceDownstream.LinprobeBackwardMatchesFiniteDifferences",
            "diff_model.cpp DifferentialModel.DownstreamLogits"}));
  c.push_back(
      both("finetune_head", "downstream", "fc1 + BatchNorm1d + ReLU + fc2",
           {"golden_ref_downstream.cpp ReferenceDownstream.EncoderAndHeadsMatchGolden",
            "test_ref_downstream.cpp ReferenceDownstream.FinetuneBackwardMatchesFiniteDifferences",
            "diff_model.cpp DifferentialModel.DownstreamLogits"}));
  c.push_back(
      both("cross_entropy", "downstream", "label-smoothing cross-entropy (timm)",
           {"test_ref_downstream.cpp ReferenceDownstream.LinprobeBackwardMatchesFiniteDifferences",
            "diff_trajectory.cpp DifferentialOptim.CrossEntropyLabelSmoothing"}));
  // ---- training
  c.push_back(no_grad(both("adamw", "training", "torch.optim.AdamW update (decoupled weight decay)",
                           {"test_ref_optim.cpp ReferenceOptim.AdamWMatchesHandComputedSteps",
                            "diff_trajectory.cpp DifferentialOptim.AdamWStepsInDouble",
                            "diff_trajectory.cpp DifferentialTrajectory.ReleasedTenAdamWSteps",
                            "diff_trajectory.cpp DifferentialTrajectory.CorrectedTenAdamWSteps"}),
                      "optimiser update"));
  c.push_back(no_grad(both("sgd_momentum", "training", "torch.optim.SGD with momentum, dampening 0",
                           {"test_ref_optim.cpp ReferenceOptim.SgdMomentumMatchesHandComputedSteps",
                            "diff_trajectory.cpp DifferentialOptim.SgdMomentumSteps"}),
                      "optimiser update"));
  c.push_back(
      no_grad(both("weight_decay_groups", "training", "no decay for 1-D tensors and biases (timm)",
                   {"test_ref_optim.cpp ReferenceOptim.AdamWGroupsSkipDecayForBiasesAnd1D",
                    "diff_trajectory.cpp DifferentialOptim.LrScheduleAndParamGroups"}),
              "parameter bookkeeping"));
  c.push_back(
      no_grad(both("layer_decay_groups", "training", "layer-wise lr decay scales (fine-tuning)",
                   {"test_ref_optim.cpp ReferenceOptim.LayerwiseLrDecay",
                    "diff_trajectory.cpp DifferentialOptim.LrScheduleAndParamGroups"}),
              "parameter bookkeeping"));
  c.push_back(
      no_grad(both("cosine_lr", "training", "linear warmup + half-cycle cosine, per iteration",
                   {"test_ref_optim.cpp ReferenceOptim.WarmupCosineSchedule",
                    "diff_trajectory.cpp DifferentialOptim.LrScheduleAndParamGroups"}),
              "schedule"));
  c.push_back(
      only(no_grad(both("optimizer_state_io", "training",
                        "optimiser moments to / from the checkpoint npz", {}),
                   "I/O"),
           Backend::kAccelerated,
           "kill-and-resume belongs to the runners: accel::AdamW/Sgd serialise their moments, "
           "reference/ optimisers keep theirs private (a reference runner mirrors them itself)"));
  c.push_back(no_grad(both("checkpoint_io", "io", "state_dict-named npz weights, float32 on disk",
                           {"test_ref_checkpoint.cpp ReferenceCheckpoint.RoundTripIsFloat32Exact",
                            "golden_hacm_accel.cpp AcceleratedHacmGolden.CpuDoubleForward"}),
                      "I/O"));
  // ---- data
  c.push_back(
      no_grad(both("feeder_batch", "data",
                   "the authors' clip transform: crop, linear resize, rotation, optional velocity",
                   {"golden_feeder.cpp GoldenFeeder.TrainRotate",
                    "golden_feeder_accel.cpp GoldenFeederAccel.TrainCropRotateVelocity",
                    "diff_feeder.cpp DifferentialFeeder.TrainCropResizeRotate"}),
              "a data transform before the model: nothing to train"));
  return c;
}

}  // namespace

const std::vector<ComponentSpec>& component_catalogue() {
  static const std::vector<ComponentSpec> c = build_catalogue();
  return c;
}

std::string strip_template_args(const std::string& s) {
  std::string r;
  int depth = 0;
  for (char ch : s) {
    if (ch == '<')
      ++depth;
    else if (ch == '>')
      depth = std::max(0, depth - 1);
    else if (depth == 0)
      r += ch;
  }
  return r;
}

void ComponentRegistry::implement(const std::string& component, Implementation impl) {
  impl.forward = strip_template_args(impl.forward);
  impl.gradient = strip_template_args(impl.gradient);
  entries_.push_back({component, std::move(impl)});
}

std::vector<Implementation> ComponentRegistry::implementations(const std::string& component) const {
  std::vector<Implementation> r;
  for (const auto& e : entries_)
    if (e.component == component) r.push_back(e.impl);
  return r;
}

const Implementation* ComponentRegistry::find(const std::string& component, Backend b) const {
  for (const auto& e : entries_)
    if (e.component == component && e.impl.backend == b) return &e.impl;
  return nullptr;
}

std::vector<std::string> ComponentRegistry::symbols(Backend b) const {
  std::set<std::string> s;
  for (const auto& e : entries_) {
    if (e.impl.backend != b) continue;
    s.insert(e.impl.forward);
    if (!e.impl.gradient.empty()) s.insert(e.impl.gradient);
  }
  return {s.begin(), s.end()};
}

std::vector<std::string> ComponentRegistry::problems() const {
  std::vector<std::string> p;
  std::map<std::string, const ComponentSpec*> spec;
  for (const auto& c : component_catalogue()) {
    if (spec.count(c.name)) p.push_back(c.name + ": listed twice in the catalogue");
    spec[c.name] = &c;
  }
  std::set<std::pair<std::string, Backend>> seen;
  for (const auto& e : entries_) {
    const std::string who = std::string(backend_name(e.impl.backend));
    if (!spec.count(e.component)) {
      p.push_back(e.component + ": registered by the " + who + " backend (" + e.impl.forward +
                  ") but not in the catalogue (core/components.cpp)");
      continue;
    }
    if (!seen.insert({e.component, e.impl.backend}).second)
      p.push_back(e.component + ": registered twice by the " + who + " backend");
    if (e.impl.forward.empty())
      p.push_back(e.component + ": " + who + " registration names no symbol");
    const ComponentSpec& c = *spec[e.component];
    if (c.differentiable && e.impl.gradient.empty())
      p.push_back(e.component + ": differentiable, but the " + who + " backend names no gradient");
    if (!c.differentiable && !e.impl.gradient.empty())
      p.push_back(e.component + ": catalogued as not differentiable (" + c.why_no_gradient +
                  "), but the " + who + " backend names a gradient " + e.impl.gradient);
  }
  for (const auto& c : component_catalogue()) {
    const bool r = find(c.name, Backend::kReference) != nullptr;
    const bool a = find(c.name, Backend::kAccelerated) != nullptr;
    if (r && a) {
      if (c.one_sided)
        p.push_back(c.name + ": declared " + backend_name(c.only) +
                    "-only but both backends implement it (remove the exception)");
    } else if (!r && !a) {
      p.push_back(c.name + ": implemented by neither backend");
    } else {
      const Backend have = r ? Backend::kReference : Backend::kAccelerated;
      if (!c.one_sided)
        p.push_back(c.name + ": exists in the " + backend_name(have) +
                    " backend only (no declared reason)");
      else if (c.only != have)
        p.push_back(c.name + ": declared " + backend_name(c.only) + "-only but only the " +
                    backend_name(have) + " backend implements it");
      else if (c.one_sided_reason.empty())
        p.push_back(c.name + ": declared one-sided without a reason");
    }
  }
  return p;
}

std::vector<std::string> ComponentRegistry::one_sided() const {
  std::vector<std::string> r;
  for (const auto& c : component_catalogue())
    if (c.one_sided)
      r.push_back(c.name + " (" + backend_name(c.only) + " only): " + c.one_sided_reason);
  return r;
}

namespace {

std::string cell(const Implementation* im, const ComponentSpec& c, Backend b) {
  if (!im) return c.one_sided && c.only != b ? "— (see note)" : "**missing**";
  std::string s = "`" + im->forward + "`";
  if (im->provision == Provision::kInline) s = "inline in " + s;
  if (im->provision == Provision::kLibraryOp) s = "LibTorch " + s;
  if (!im->note.empty()) s += " (" + im->note + ")";
  if (!im->gradient.empty())
    s += im->gradient == "autograd" ? "; autograd" : "; `" + im->gradient + "`";
  return s;
}

// "| a | b |" cells must not contain a bare '|'.
std::string esc(std::string s) {
  for (size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
  return s;
}

}  // namespace

std::string ComponentRegistry::markdown_table() const {
  std::ostringstream os;
  os << "| Component | Family | Description | Reference | Accelerated | Tests | Note |\n";
  os << "|---|---|---|---|---|---|---|\n";
  for (const auto& c : component_catalogue()) {
    std::string tests;
    for (const auto& t : c.tests) tests += (tests.empty() ? "" : "<br>") + t;
    std::string note;
    if (c.one_sided) note = std::string(backend_name(c.only)) + " only: " + c.one_sided_reason;
    if (!c.differentiable)
      note += (note.empty() ? "" : "; ") + std::string("no gradient: ") + c.why_no_gradient;
    os << "| " << c.name << " | " << c.family << " | " << esc(c.description) << " | "
       << esc(cell(find(c.name, Backend::kReference), c, Backend::kReference)) << " | "
       << esc(cell(find(c.name, Backend::kAccelerated), c, Backend::kAccelerated)) << " | "
       << esc(tests.empty() ? "—" : tests) << " | " << esc(note) << " |\n";
  }
  return os.str();
}

}  // namespace hacm
