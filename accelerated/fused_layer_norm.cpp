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

// {base, branch} -> {sum, y}: the residual form (kernels/layer_norm.h add_layer_norm_*).
struct FusedAddLayerNormFn : torch::autograd::Function<FusedAddLayerNormFn> {
  // base [..., C] float32, branch [..., C] float32 / bf16, w, b [C] float32 -> {sum [..., C]
  // float32, y [..., C] out_dtype}.
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& base, const at::Tensor& branch,
                                                const at::Tensor& w, const at::Tensor& b,
                                                double eps, int64_t out_dtype) {
    const c10::cuda::CUDAGuard device(base.device());
    // The sum's gradient stays undefined when the sum has no other consumer (the last norm of a
    // stack) instead of a [rows, C] float32 tensor of zeros filled and read (autograd's default).
    ctx->set_materialize_grads(false);
    const at::Tensor xc = base.contiguous(), rc = branch.contiguous(), wc = w.contiguous(),
                     bc = b.contiguous();
    const int64_t C = base.size(-1), rows = C ? base.numel() / C : 0;
    at::Tensor sum = at::empty(base.sizes(), xc.options());
    at::Tensor y = at::empty(base.sizes(), xc.options().dtype(at::ScalarType(out_dtype)));
    at::Tensor mean = at::empty({rows}, xc.options()), rstd = at::empty({rows}, xc.options());
    cuda::add_layer_norm_forward(
        xc.data_ptr<float>(), rc.data_ptr(), kernel_dtype(rc.scalar_type()), sum.data_ptr<float>(),
        wc.data_ptr<float>(), bc.data_ptr<float>(), y.data_ptr(), kernel_dtype(y.scalar_type()),
        mean.data_ptr<float>(), rstd.data_ptr<float>(), rows, C, float(eps),
        at::cuda::getCurrentCUDAStream());
    ctx->save_for_backward({sum, wc, mean, rstd});
    ctx->saved_data["branch_dtype"] = int64_t(branch.scalar_type());
    return {sum, y};
  }

  // grads {d sum (undefined when sum has no other consumer), d y}.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &sum = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const auto branch_dtype = at::ScalarType(ctx->saved_data["branch_dtype"].toInt());
    const c10::cuda::CUDAGuard device(sum.device());
    at::Tensor ds = grads[0], dy = grads[1];
    if (!dy.defined()) dy = at::zeros_like(sum);
    if (!kernel_storable(dy.scalar_type())) dy = dy.to(at::kFloat);
    dy = dy.contiguous();
    if (ds.defined()) ds = ds.to(at::kFloat).contiguous();
    const int64_t C = sum.size(-1), rows = C ? sum.numel() / C : 0;
    at::Tensor dx = at::empty_like(sum), dw = at::empty_like(w), db = at::empty_like(w);
    // A float32 branch takes dx itself (autograd's add returns one gradient for both inputs too).
    at::Tensor dr =
        branch_dtype == at::kFloat ? dx : at::empty_like(sum, sum.options().dtype(branch_dtype));
    at::Tensor scratch = at::empty({cuda::layer_norm_backward_scratch(rows, C)}, w.options());
    cuda::add_layer_norm_backward(
        dy.data_ptr(), kernel_dtype(dy.scalar_type()), sum.data_ptr<float>(), w.data_ptr<float>(),
        mean.data_ptr<float>(), rstd.data_ptr<float>(),
        ds.defined() ? ds.data_ptr<float>() : nullptr, dx.data_ptr<float>(),
        branch_dtype == at::kFloat ? nullptr : dr.data_ptr(), kernel_dtype(branch_dtype),
        dw.data_ptr<float>(), db.data_ptr<float>(), scratch.data_ptr<float>(), rows, C,
        at::cuda::getCurrentCUDAStream());
    return {dx, dr, dw, db, at::Tensor(), at::Tensor()};
  }
};

}  // namespace
#endif

// The kernel's argument rules, without the switches.
static bool kernel_takes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                         at::ScalarType out_dtype) {
#ifdef HACM_CUDA_KERNELS
  return x.is_cuda() && kernel_storable(x.scalar_type()) && kernel_storable(out_dtype) &&
         x.dim() >= 1 && cuda::layer_norm_supports(x.size(-1)) && w.defined() && b.defined() &&
         w.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
         w.device() == x.device() && b.device() == x.device() && w.numel() == x.size(-1) &&
         b.numel() == x.size(-1);
#else
  (void)x, (void)w, (void)b, (void)out_dtype;
  return false;
#endif
}

bool fused_layer_norm_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                              at::ScalarType out_dtype) {
  return custom_kernel(Kernel::kLayerNorm) && kernel_takes(x, w, b, out_dtype);
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

bool fused_add_layer_norm_applies(const at::Tensor& base, const at::Tensor& branch,
                                  const at::Tensor& w, const at::Tensor& b,
                                  at::ScalarType out_dtype) {
  // The residual form runs the LayerNorm kernel too: layer_norm off turns it off as well.
  return custom_kernel(Kernel::kLayerNorm) && custom_kernel(Kernel::kAddLayerNorm) &&
         kernel_takes(base, w, b, out_dtype) && base.scalar_type() == at::kFloat &&
         branch.defined() && kernel_storable(branch.scalar_type()) &&
         branch.device() == base.device() && branch.sizes() == base.sizes();
}

std::pair<at::Tensor, at::Tensor> fused_add_layer_norm(const at::Tensor& base,
                                                       const at::Tensor& branch,
                                                       const at::Tensor& w, const at::Tensor& b,
                                                       double eps, at::ScalarType out_dtype) {
  if (!fused_add_layer_norm_applies(base, branch, w, b, out_dtype))
    throw std::invalid_argument("fused_add_layer_norm: arguments without a fused kernel");
#ifdef HACM_CUDA_KERNELS
  auto out = FusedAddLayerNormFn::apply(base, branch, w, b, eps, int64_t(out_dtype));
  return {out[0], out[1]};
#else
  return {};
#endif
}

}  // namespace hacm::accel
