#include "accelerated/fused_hyperbolic.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <stdexcept>

#ifdef HACM_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "accelerated/kernels/hyperbolic.h"
#endif

namespace hacm::accel {

#ifdef HACM_CUDA_KERNELS
namespace {

struct FusedExpmapProjectionFn : torch::autograd::Function<FusedExpmapProjectionFn> {
  // x [..., d] float32 -> y [..., d] float32.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    const c10::cuda::CUDAGuard device(x.device());
    const at::Tensor xc = x.contiguous();
    const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0;
    at::Tensor y = at::empty_like(xc);
    cuda::expmap_projection_forward(xc.data_ptr<float>(), y.data_ptr<float>(), rows, d,
                                    at::cuda::getCurrentCUDAStream());
    ctx->save_for_backward({xc});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const c10::cuda::CUDAGuard device(x.device());
    const at::Tensor dy = grads[0].to(at::kFloat).contiguous();
    const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0;
    at::Tensor dx = at::empty_like(x);
    cuda::expmap_projection_backward(x.data_ptr<float>(), dy.data_ptr<float>(),
                                     dx.data_ptr<float>(), rows, d,
                                     at::cuda::getCurrentCUDAStream());
    return {dx};
  }
};

}  // namespace
#endif

bool fused_expmap_projection_applies(const at::Tensor& x) {
#ifdef HACM_CUDA_KERNELS
  return custom_kernel(Kernel::kExpmapProjection) && x.defined() && x.is_cuda() &&
         x.scalar_type() == at::kFloat && x.dim() >= 1 &&
         cuda::expmap_projection_supports(x.size(-1));
#else
  (void)x;
  return false;
#endif
}

at::Tensor fused_expmap_projection(const at::Tensor& x) {
  if (!fused_expmap_projection_applies(x))
    throw std::invalid_argument("fused_expmap_projection: arguments without a fused kernel");
#ifdef HACM_CUDA_KERNELS
  return FusedExpmapProjectionFn::apply(x);
#else
  return at::Tensor();
#endif
}

}  // namespace hacm::accel
