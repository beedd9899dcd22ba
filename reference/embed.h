// Input layout, joint split and the stride-t_patch temporal patch embedding (spec §3.1, §3.2).
//
//   x5 [N, C, T, J, M]  --to_person_major-->  x [N·M, T, J, C]   (row n·M + m)
//   x  --select_joints(kept)-->  [NM, T, V, C],  --select_joints(null)-->  [NM, T, Vn, C]
//   patch_embed: Conv2d(C, D, kernel (tp, 1), stride (tp, 1)) applied to both with the SAME
//   weights:
//     E[n, τ, v, o] = b[o] + Σ_{u<tp, c<C} W[o, c, u, 0] · x[n, tp·τ + u, v, c]
//   add_pos_temp: E + pos_embed[0, 0, v, :] + temp_embed[0, τ, 0, :] (kept joints only)
#pragma once
#include <vector>

#include "core/skeleton.h"
#include "reference/tensor.h"

namespace hacm::ref {

// 0-based NTU joint indices of the released split (spec §3.1), from core/skeleton.h.
inline const std::vector<int64_t>& ntu_kept_joints() {
  static const std::vector<int64_t> v(hacm_kept_joints().begin(), hacm_kept_joints().end());
  return v;
}
inline const std::vector<int64_t>& ntu_null_joints() {
  static const std::vector<int64_t> v(hacm_root_joints().begin(), hacm_root_joints().end());
  return v;
}

// x5: [N, C, T, J, M] -> [N·M, T, J, C]
template <class T>
Tensor<T> to_person_major_forward(const Tensor<T>& x5);
// gout: [N·M, T, J, C], persons M -> [N, C, T, J, M]
template <class T>
Tensor<T> to_person_major_backward(const Tensor<T>& gout, int64_t persons);

// x: [B, T, J, C], idx: joints to keep (in this order) -> [B, T, |idx|, C]
template <class T>
Tensor<T> select_joints_forward(const Tensor<T>& x, const std::vector<int64_t>& idx);
// gout: [B, T, |idx|, C] -> [B, T, J, C] (scatter-add; joints not in idx get 0)
template <class T>
Tensor<T> select_joints_backward(const Tensor<T>& gout, const std::vector<int64_t>& idx, int64_t J);

// x: [B, T, V, C], w: [D, C, tp, 1], b: [D] -> [B, T/tp, V, D]
template <class T>
Tensor<T> patch_embed_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b);
// x: [B, T, V, C] (forward input), w: [D, C, tp, 1], gout: [B, T/tp, V, D] -> gx [B, T, V, C];
// gw [D, C, tp, 1], gb [D] are accumulated.
template <class T>
Tensor<T> patch_embed_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& gout,
                               Tensor<T>& gw, Tensor<T>& gb);

// e: [B, TP, V, D], pos: [1, 1, V, D], temp: [1, TP, 1, D] -> [B, TP, V, D]
template <class T>
Tensor<T> add_pos_temp_forward(const Tensor<T>& e, const Tensor<T>& pos, const Tensor<T>& temp);
// gout: [B, TP, V, D] -> ge [B, TP, V, D] (= gout); gpos [1,1,V,D], gtemp [1,TP,1,D] accumulated.
template <class T>
Tensor<T> add_pos_temp_backward(const Tensor<T>& gout, Tensor<T>& gpos, Tensor<T>& gtemp);

}  // namespace hacm::ref
