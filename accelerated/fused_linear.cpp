#include "accelerated/fused_linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <utility>

#include "accelerated/custom_kernels.h"

#ifdef HACM_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "accelerated/kernels/column_sum.h"
#include "accelerated/kernels/gelu.h"
#endif

namespace hacm::accel {

#ifdef HACM_CUDA_KERNELS
namespace {

// The operand type at::linear would compute in: the autocast type under CUDA autocast for
// floating inputs autocast casts (float32, half, bf16; it leaves float64 alone), else x's.
at::ScalarType compute_type(const at::Tensor& x) {
  const at::ScalarType t = x.scalar_type();
  const bool cast = t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
  return cast && at::autocast::is_autocast_enabled(at::kCUDA)
             ? at::autocast::get_autocast_dtype(at::kCUDA)
             : t;
}

// Records the inputs' dtypes: the gradients go back in them (the operands were cast).
void save_dtypes(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                 const at::Tensor& b) {
  ctx->saved_data["x_dtype"] = int64_t(x.scalar_type());
  ctx->saved_data["w_dtype"] = int64_t(w.scalar_type());
  ctx->saved_data["b_dtype"] = int64_t(b.scalar_type());
}
at::ScalarType saved_dtype(torch::autograd::AutogradContext* ctx, const char* key) {
  return at::ScalarType(ctx->saved_data[key].toInt());
}

// The two matmuls of a linear layer's backward: dy [rows, out] in the compute type, xc [..., in],
// wc [out, in] (the cast operands) -> {dx [..., in], dw [out, in]} in the inputs' dtypes (each
// undefined where autograd needs none).
std::pair<at::Tensor, at::Tensor> matmul_grads(torch::autograd::AutogradContext* ctx,
                                               const at::Tensor& dy, const at::Tensor& xc,
                                               const at::Tensor& wc) {
  at::Tensor dx, dw;
  if (ctx->needs_input_grad(0))
    dx = at::mm(dy, wc).view(xc.sizes()).to(saved_dtype(ctx, "x_dtype"));
  if (ctx->needs_input_grad(1)) {
    // A bf16 product for a float32 weight: cuBLAS writes the float32 accumulator directly (no
    // bf16 rounding of the gradient, no cast kernel); autograd's autocast path rounds to bf16.
    const at::ScalarType wt = saved_dtype(ctx, "w_dtype");
    const at::Tensor x2 = xc.reshape({-1, wc.size(1)});
    dw = wt == at::kFloat && wc.scalar_type() == at::kBFloat16 ? at::mm(dy.t(), x2, at::kFloat)
                                                               : at::mm(dy.t(), x2).to(wt);
  }
  return {dx, dw};
}

struct FusedLinearFn : torch::autograd::Function<FusedLinearFn> {
  // x [..., in], w [out, in], b [out] -> y [..., out] in the compute type.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, const at::Tensor& b) {
    const at::ScalarType ct = compute_type(x);
    const at::Tensor xc = x.to(ct), wc = w.to(ct), bc = b.to(ct);
    // Operands already in the compute type: autocast, if on, passes them through unchanged.
    at::Tensor y = at::linear(xc, wc, bc);
    ctx->save_for_backward({xc, wc});
    save_dtypes(ctx, x, w, b);
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &xc = saved[0], &wc = saved[1];
    const at::Tensor dy = grads[0].to(xc.scalar_type()).contiguous().view({-1, wc.size(0)});
    auto [dx, dw] = matmul_grads(ctx, dy, xc, wc);
    at::Tensor db;
    if (ctx->needs_input_grad(2)) db = column_sum(dy).to(saved_dtype(ctx, "b_dtype"));
    return {dx, dw, db};
  }
};

// GELU(x wᵀ + b) with the GELU backward and the bias gradient in one kernel (kernels/gelu.cu).
struct FusedLinearGeluFn : torch::autograd::Function<FusedLinearGeluFn> {
  // x [..., in], w [out, in], b [out] -> GELU(x wᵀ + b) [..., out] in the compute type.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, const at::Tensor& b) {
    const at::ScalarType ct = compute_type(x);
    const at::Tensor xc = x.to(ct), wc = w.to(ct), bc = b.to(ct);
    at::Tensor h = at::linear(xc, wc, bc);  // cuBLASLt adds the bias in its epilogue
    at::Tensor g = at::gelu(h);             // exact erf form, ATen's kernel (at its memory floor)
    ctx->save_for_backward({xc, wc, h});
    save_dtypes(ctx, x, w, b);
    return g;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &xc = saved[0], &wc = saved[1], h = saved[2].contiguous();
    const c10::cuda::CUDAGuard device(h.device());
    const int64_t out = wc.size(0), rows = out ? h.numel() / out : 0;
    const at::Tensor dg = grads[0].to(h.scalar_type()).contiguous();
    at::Tensor dh = at::empty_like(h), db;
    if (cuda::gelu_backward_supports(out, dg.data_ptr(), h.data_ptr(), dh.data_ptr())) {
      db = at::empty({out}, h.options().dtype(at::kFloat));
      at::Tensor scratch = at::empty({cuda::gelu_backward_scratch(rows, out)}, db.options());
      cuda::gelu_backward_column_sum(dg.data_ptr(), h.data_ptr(), kernel_dtype(h.scalar_type()),
                                     dh.data_ptr(), rows, out, db.data_ptr<float>(),
                                     scratch.data_ptr<float>(), at::cuda::getCurrentCUDAStream());
    } else {  // a gradient view without 8-byte alignment: ATen's GELU backward, then the sum
      dh = at::gelu_backward(dg, h);
      db = column_sum(dh.view({rows, out}));
    }
    auto [dx, dw] = matmul_grads(ctx, dh.view({rows, out}), xc, wc);
    return {dx, dw, ctx->needs_input_grad(2) ? db.to(saved_dtype(ctx, "b_dtype")) : at::Tensor()};
  }
};

}  // namespace
#endif

// The custom path's argument rules, without the switches.
static bool custom_path_takes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
#ifdef HACM_CUDA_KERNELS
  if (!x.is_cuda() || !w.defined() || !b.defined() || w.dim() != 2 || x.dim() < 1 ||
      x.size(-1) != w.size(1) || b.numel() != w.size(0) || w.device() != x.device() ||
      b.device() != x.device())
    return false;
  const at::ScalarType ct = compute_type(x);
  // The kernel's storage types; without autocast at::linear needs one dtype for all three.
  if (!kernel_storable(ct)) return false;
  if (!at::autocast::is_autocast_enabled(at::kCUDA) &&
      (w.scalar_type() != ct || b.scalar_type() != ct))
    return false;
  return w.size(0) % 2 == 0;  // the column-sum kernel's width rule (alignment: fresh tensors)
#else
  (void)x, (void)w, (void)b;
  return false;
#endif
}

bool fused_linear_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return custom_kernel(Kernel::kColumnSum) && custom_path_takes(x, w, b);
}

bool fused_linear_gelu_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return custom_kernel(Kernel::kLinearGelu) && custom_path_takes(x, w, b);
}

at::Tensor column_sum(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "column_sum: x must be [rows, cols]");
#ifdef HACM_CUDA_KERNELS
  const at::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0), cols = xc.size(1);
  if (custom_kernel(Kernel::kColumnSum) && xc.is_cuda() && kernel_storable(xc.scalar_type()) &&
      cuda::column_sum_supports(cols, xc.data_ptr())) {
    const c10::cuda::CUDAGuard device(xc.device());  // the stream and launch of x's GPU
    auto fopt = xc.options().dtype(at::kFloat);
    at::Tensor sum = at::empty({cols}, fopt);
    at::Tensor scratch = at::empty({cuda::column_sum_scratch(rows, cols)}, fopt);
    cuda::column_sum(xc.data_ptr(), kernel_dtype(xc.scalar_type()), rows, cols,
                     sum.data_ptr<float>(), scratch.data_ptr<float>(),
                     at::cuda::getCurrentCUDAStream());
    return sum;
  }
#endif
  return x.sum(0, false, at::kFloat);  // CPU, odd widths, misaligned views: ATen's reduction
}

at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
#ifdef HACM_CUDA_KERNELS
  if (fused_linear_applies(x, w, b)) return FusedLinearFn::apply(x, w, b);
#endif
  return at::linear(x, w, b);
}

at::Tensor linear_gelu_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
#ifdef HACM_CUDA_KERNELS
  if (fused_linear_gelu_applies(x, w, b)) return FusedLinearGeluFn::apply(x, w, b);
#endif
  return at::gelu(at::linear(x, w, b));  // exact erf form (approximate = "none")
}

}  // namespace hacm::accel
