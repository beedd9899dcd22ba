#include "accelerated/fused_attention.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <stdexcept>

#ifdef HACM_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "accelerated/kernels/attention.h"
#endif

namespace hacm::accel {

bool fused_attention_applies(const at::Tensor& qkv, int64_t heads) {
#ifdef HACM_CUDA_KERNELS
  if (!custom_kernel(Kernel::kAttentionForward) || !qkv.defined() || !qkv.is_cuda() ||
      qkv.scalar_type() != at::kBFloat16 || qkv.dim() != 3 || !qkv.is_contiguous() ||
      qkv.size(2) % 3 != 0 || (at::GradMode::is_enabled() && qkv.requires_grad()))
    return false;
  return cuda::attention_forward_supports(qkv.size(2) / 3, heads, qkv.size(0), qkv.size(1)) &&
         reinterpret_cast<uintptr_t>(qkv.data_ptr()) % 16 == 0;
#else
  (void)qkv, (void)heads;
  return false;
#endif
}

at::Tensor fused_attention(const at::Tensor& qkv, int64_t heads) {
  if (!fused_attention_applies(qkv, heads))
    throw std::invalid_argument("fused_attention: arguments without a fused kernel");
#ifdef HACM_CUDA_KERNELS
  const c10::cuda::CUDAGuard device(qkv.device());
  const int64_t B = qkv.size(0), N = qkv.size(1), d = qkv.size(2) / 3;
  at::Tensor out = at::empty({B, N, d}, qkv.options());
  cuda::attention_forward(qkv.data_ptr(), out.data_ptr(), B, N, heads,
                          at::cuda::getCurrentCUDAStream());
  return out;
#else
  return at::Tensor();
#endif
}

}  // namespace hacm::accel
