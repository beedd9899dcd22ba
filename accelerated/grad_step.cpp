#include "accelerated/grad_step.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#ifdef HACM_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace hacm::accel {

struct GradStep::Graph {
#ifdef HACM_TORCH_CUDA
  at::cuda::CUDAGraph graph;
#endif
  std::vector<at::Tensor> inputs;  // the tensors the graph reads (copied into before a replay)
  at::Tensor loss;                 // the tensor the graph writes the loss into
};

GradStep::GradStep(StateDict& params, Precision precision, bool cuda_graph, Forward forward)
    : params_(params),
      precision_(precision),
      cuda_graph_(cuda_graph),
      forward_(std::move(forward)) {
#ifndef HACM_TORCH_CUDA
  if (cuda_graph_) throw std::runtime_error("CUDA graphs need a LibTorch build with CUDA");
#endif
}

GradStep::~GradStep() = default;

at::Tensor GradStep::eager(const std::vector<at::Tensor>& inputs, bool cache) {
  // Gradients set to none rather than zeroed (torch's zero_grad default): backward then hands
  // each parameter its gradient instead of adding it to zeros, ~2 kernels per parameter fewer.
  // The values are the same (0 + g = g; only a -0 would become +0, which AdamW cannot see).
  set_grads_to_none();
  at::Tensor loss;
  {
    Autocast autocast(precision_, inputs.front().device(), cache);
    loss = forward_(inputs);
  }
  loss.backward();  // outside autocast, as torch.autocast's recipe (backward ops follow forward)
  return loss.detach();
}

void GradStep::set_grads_to_none() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

at::Tensor GradStep::run(const std::vector<at::Tensor>& inputs) {
  if (inputs.empty()) throw std::invalid_argument("GradStep::run: no inputs");
  if (!cuda_graph_) return eager(inputs, /*cache=*/true);
  if (!inputs.front().is_cuda())
    throw std::invalid_argument("GradStep: a CUDA graph needs CUDA inputs");
  if (!graph_) {
    try {
      capture(inputs);
    } catch (const std::exception& e) {
      // A failed capture (an operation a capture forbids, say) must not stop a training run:
      // this and every later step run eagerly, and the reason is kept for the result record.
      abandon_capture();
      const std::string what = e.what();
      capture_error_ = what.substr(0, what.find('\n'));
      cuda_graph_ = false;
      std::fprintf(stderr, "[GradStep] CUDA graph capture failed (%s); steps run eagerly\n",
                   capture_error_.c_str());
      return eager(inputs, /*cache=*/true);
    }
  }
  return replay(inputs);
}

void GradStep::capture(const std::vector<at::Tensor>& inputs) {
#ifdef HACM_TORCH_CUDA
  // As torch.cuda.graph: warm up on the capture stream, then record.
  graph_ = std::make_unique<Graph>();
  for (const auto& x : inputs) graph_->inputs.push_back(x.detach().clone());
  at::cuda::device_synchronize();
  at::cuda::CUDAStream side = at::cuda::getStreamFromPool();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    // Warm-up: cuBLAS workspaces and handles of this stream, lazily loaded kernels, autograd's
    // first-use allocations; none of it may happen for the first time inside the capture.
    // Afterwards the warm-up's side effects are undone, so that the first replay computes what
    // the eager step would have: the default CUDA generator is put back (a forward that draws
    // dropout / drop-path masks draws the same ones), and so are the parameters without gradient
    // (BatchNorm running statistics, which a training forward updates in place).
    at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(side.device_index());
    const at::Tensor rng_state = gen.get_state();
    std::vector<std::pair<at::Tensor, at::Tensor>> buffers;  // (tensor, copy before warm-up)
    for (auto& [name, p] : params_)
      if (!p.requires_grad()) buffers.emplace_back(p, p.detach().clone());
    auto undo_warm_up = [&] {
      at::NoGradGuard no_grad;
      for (auto& [p, copy] : buffers) p.copy_(copy);  // on this stream, after the warm-up
      side.synchronize();
      gen.set_state(rng_state);
    };
    try {
      for (int i = 0; i < 3; ++i) eager(graph_->inputs, /*cache=*/false);
    } catch (...) {
      undo_warm_up();
      throw;
    }
    undo_warm_up();
    // The captured backward then allocates the gradients in the graph's private pool; every
    // replay rewrites them in place, and the optimiser reads them through .grad as usual.
    set_grads_to_none();
    c10::cuda::CUDACachingAllocator::emptyCache();
    graph_->graph.capture_begin();
    try {
      {
        Autocast autocast(precision_, side.device(), /*cache=*/false);
        graph_->loss = forward_(graph_->inputs);
      }
      graph_->loss.backward();
    } catch (...) {
      try {
        graph_->graph.capture_end();  // ends the (invalidated) capture on this stream
      } catch (...) {
      }
      throw;
    }
    graph_->graph.capture_end();
  }
  at::cuda::device_synchronize();
#else
  (void)inputs;
  throw std::runtime_error("CUDA graphs need a LibTorch build with CUDA");
#endif
}

void GradStep::abandon_capture() {
  graph_.reset();
  set_grads_to_none();  // they may point into the abandoned graph's pool
#ifdef HACM_TORCH_CUDA
  (void)cudaGetLastError();  // a failed capture leaves a (non-sticky) error behind
  at::cuda::device_synchronize();
#endif
}

at::Tensor GradStep::replay(const std::vector<at::Tensor>& inputs) {
#ifdef HACM_TORCH_CUDA
  if (inputs.size() != graph_->inputs.size())
    throw std::invalid_argument("GradStep: the number of inputs changed after capture");
  for (size_t i = 0; i < inputs.size(); ++i) {
    at::Tensor& s = graph_->inputs[i];
    if (inputs[i].sizes() != s.sizes() || inputs[i].scalar_type() != s.scalar_type())
      throw std::invalid_argument("GradStep: input " + std::to_string(i) +
                                  " changed shape or dtype after capture");
    s.copy_(inputs[i], /*non_blocking=*/true);  // on the replay's stream, so in order
  }
  graph_->graph.replay();
  return graph_->loss.detach().clone();  // the graph overwrites its loss on the next replay
#else
  (void)inputs;
  throw std::runtime_error("CUDA graphs need a LibTorch build with CUDA");
#endif
}

}  // namespace hacm::accel
