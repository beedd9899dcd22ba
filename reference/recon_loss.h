// Masked reconstruction loss with a per-patch normalised target (MAE `norm_pix_loss`, used by
// HA-CM and MAMP, spec §4.6):
//   tn = (t − mean_F t) / sqrt(var_F t (unbiased) + eps)
//   loss = Σ_r mask_r · mean_F (pred_r − tn_r)² / Σ_r mask_r
// The target is not detached in either released code, so the backward also returns ∂loss/∂t.
#pragma once
#include "reference/tensor.h"

namespace hacm::ref {

// pred, target: [R..., F]; mask: [R...] (1 = reconstructed) -> loss; target_norm gets tn.
template <class T>
T recon_loss_forward(const Tensor<T>& pred, const Tensor<T>& target, const Tensor<T>& mask,
                     double eps, Tensor<T>& target_norm);
// Same inputs plus the forward's target_norm -> g_pred, g_target (shape of pred; overwritten).
template <class T>
void recon_loss_backward(const Tensor<T>& pred, const Tensor<T>& target,
                         const Tensor<T>& target_norm, const Tensor<T>& mask, double eps,
                         Tensor<T>& g_pred, Tensor<T>& g_target);

}  // namespace hacm::ref
