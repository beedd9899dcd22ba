#include "accelerated/fused_layer_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <stdexcept>

#ifdef HACM_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "accelerated/kernels/layer_norm.h"
#endif

namespace hacm::accel {

#ifdef HACM_CUDA_KERNELS
namespace {

struct FusedLayerNormFn : torch::autograd::Function<FusedLayerNormFn> {
  // x [..., C] (float32 / bf16), w, b [C] float32 -> y [..., C] out_dtype.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, const at::Tensor& b, double eps,
                            int64_t out_dtype) {
    const c10::cuda::CUDAGuard device(x.device());  // the stream and launch of x's GPU
    const at::Tensor xc = x.contiguous(), wc = w.contiguous(), bc = b.contiguous();
    const int64_t C = x.size(-1), rows = C ? x.numel() / C : 0;
    at::Tensor y = at::empty(x.sizes(), xc.options().dtype(at::ScalarType(out_dtype)));
    auto fopt = xc.options().dtype(at::kFloat);
    at::Tensor mean = at::empty({rows}, fopt), rstd = at::empty({rows}, fopt);
    cuda::layer_norm_forward(xc.data_ptr(), kernel_dtype(xc.scalar_type()), wc.data_ptr<float>(),
                             bc.data_ptr<float>(), y.data_ptr(), kernel_dtype(y.scalar_type()),
                             mean.data_ptr<float>(), rstd.data_ptr<float>(), rows, C, float(eps),
                             at::cuda::getCurrentCUDAStream());
    ctx->save_for_backward({xc, wc, mean, rstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const c10::cuda::CUDAGuard device(x.device());
    at::Tensor dy = grads[0];
    if (!kernel_storable(dy.scalar_type())) dy = dy.to(at::kFloat);
    dy = dy.contiguous();
    const int64_t C = x.size(-1), rows = C ? x.numel() / C : 0;
    at::Tensor dx = at::empty_like(x), dw = at::empty_like(w), db = at::empty_like(w);
    at::Tensor scratch = at::empty({cuda::layer_norm_backward_scratch(rows, C)}, w.options());
    cuda::layer_norm_backward(dy.data_ptr(), kernel_dtype(dy.scalar_type()), x.data_ptr(),
                              kernel_dtype(x.scalar_type()), w.data_ptr<float>(),
                              mean.data_ptr<float>(), rstd.data_ptr<float>(), dx.data_ptr(),
                              dw.data_ptr<float>(), db.data_ptr<float>(), scratch.data_ptr<float>(),
                              rows, C, at::cuda::getCurrentCUDAStream());
    return {dx, dw, db, at::Tensor(), at::Tensor()};
  }
};

}  // namespace
#endif

bool fused_layer_norm_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                              at::ScalarType out_dtype) {
#ifdef HACM_CUDA_KERNELS
  return custom_kernels() && x.is_cuda() && kernel_storable(x.scalar_type()) &&
         kernel_storable(out_dtype) && x.dim() >= 1 && cuda::layer_norm_supports(x.size(-1)) &&
         w.defined() && b.defined() && w.scalar_type() == at::kFloat &&
         b.scalar_type() == at::kFloat && w.device() == x.device() && b.device() == x.device() &&
         w.numel() == x.size(-1) && b.numel() == x.size(-1);
#else
  (void)x, (void)w, (void)b, (void)out_dtype;
  return false;
#endif
}

at::Tensor fused_layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            double eps, at::ScalarType out_dtype) {
  if (!fused_layer_norm_applies(x, w, b, out_dtype))
    throw std::invalid_argument("fused_layer_norm: arguments without a fused kernel");
#ifdef HACM_CUDA_KERNELS
  return FusedLayerNormFn::apply(x, w, b, eps, int64_t(out_dtype));
#else
  return at::Tensor();
#endif
}

}  // namespace hacm::accel
