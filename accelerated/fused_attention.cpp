#include "accelerated/fused_attention.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <stdexcept>

#ifdef HACM_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "accelerated/kernels/attention.h"
#endif

namespace hacm::accel {

namespace {

// The kernels' argument rules, without the switches or the gradient condition.
bool kernel_takes(const at::Tensor& qkv, int64_t heads) {
#ifdef HACM_CUDA_KERNELS
  if (!qkv.defined() || !qkv.is_cuda() || qkv.scalar_type() != at::kBFloat16 || qkv.dim() != 3 ||
      !qkv.is_contiguous() || qkv.size(2) % 3 != 0)
    return false;
  return cuda::attention_forward_supports(qkv.size(2) / 3, heads, qkv.size(0), qkv.size(1)) &&
         reinterpret_cast<uintptr_t>(qkv.data_ptr()) % 16 == 0;
#else
  (void)qkv, (void)heads;
  return false;
#endif
}

bool wants_grad(const at::Tensor& qkv) {
  return at::GradMode::is_enabled() && qkv.requires_grad();
}

#ifdef HACM_CUDA_KERNELS
// out [B, N, d] bf16 (and lse [B, heads, N] float32 when given) from qkv.
at::Tensor run_forward(const at::Tensor& qkv, int64_t heads, at::Tensor* lse) {
  const c10::cuda::CUDAGuard device(qkv.device());
  const int64_t B = qkv.size(0), N = qkv.size(1), d = qkv.size(2) / 3;
  at::Tensor out = at::empty({B, N, d}, qkv.options());
  if (lse) *lse = at::empty({B, heads, N}, qkv.options().dtype(at::kFloat));
  cuda::attention_forward(qkv.data_ptr(), out.data_ptr(), B, N, heads,
                          at::cuda::getCurrentCUDAStream(), lse ? lse->data_ptr<float>() : nullptr,
                          custom_kernel(Kernel::kAttentionMma));
  return out;
}

struct FusedAttentionFn : torch::autograd::Function<FusedAttentionFn> {
  // qkv [B, N, 3d] bf16 -> out [B, N, d] bf16.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& qkv,
                            int64_t heads) {
    at::Tensor lse;
    at::Tensor out = run_forward(qkv, heads, &lse);
    ctx->save_for_backward({qkv, out, lse});
    ctx->saved_data["heads"] = heads;
    return out;
  }

  // grads {d out [B, N, d]} -> {d qkv [B, N, 3d] bf16, none}.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &qkv = saved[0], &out = saved[1], &lse = saved[2];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const c10::cuda::CUDAGuard device(qkv.device());
    at::Tensor dout = grads[0].to(at::kBFloat16).contiguous();
    // The kernels read rows in 16-byte pieces: a contiguous view at an odd offset is copied.
    if (reinterpret_cast<uintptr_t>(dout.data_ptr()) % 16 != 0) dout = dout.clone();
    const int64_t B = qkv.size(0), N = qkv.size(1), d = qkv.size(2) / 3;
    at::Tensor dqkv = at::empty_like(qkv);
    at::Tensor dvec = at::empty({B, heads, N}, lse.options());
    at::Tensor dq_acc = at::empty({B, N, d}, lse.options());
    cuda::attention_backward(qkv.data_ptr(), out.data_ptr(), dout.data_ptr(), lse.data_ptr<float>(),
                             dqkv.data_ptr(), dvec.data_ptr<float>(), dq_acc.data_ptr<float>(), B,
                             N, heads, at::cuda::getCurrentCUDAStream(),
                             custom_kernel(Kernel::kAttentionMmaBackward));
    return {dqkv, at::Tensor()};
  }
};
#endif

}  // namespace

bool fused_attention_applies(const at::Tensor& qkv, int64_t heads) {
  return custom_kernel(Kernel::kAttentionForward) && !wants_grad(qkv) && kernel_takes(qkv, heads);
}

bool fused_attention_training_applies(const at::Tensor& qkv, int64_t heads) {
  return custom_kernel(Kernel::kAttentionTraining) && wants_grad(qkv) && kernel_takes(qkv, heads);
}

at::Tensor fused_attention(const at::Tensor& qkv, int64_t heads) {
  if (!fused_attention_applies(qkv, heads))
    throw std::invalid_argument("fused_attention: arguments without a fused kernel");
#ifdef HACM_CUDA_KERNELS
  return run_forward(qkv, heads, nullptr);
#else
  return at::Tensor();
#endif
}

at::Tensor fused_attention_training(const at::Tensor& qkv, int64_t heads) {
  if (!fused_attention_training_applies(qkv, heads))
    throw std::invalid_argument("fused_attention_training: arguments without a fused kernel");
#ifdef HACM_CUDA_KERNELS
  return FusedAttentionFn::apply(qkv, heads);
#else
  return at::Tensor();
#endif
}

}  // namespace hacm::accel
