// One training step's loss and gradients, computed eagerly or by replaying a CUDA graph.
//
// A pretraining step issues ~1,000 small kernels (42-token encoder, masking, 8 + 3 blocks forward
// and backward); on the H100 a batch-2 step (1/32 of the arithmetic of batch 64) still took 22-28
// ms (bench/RESULTS.md), which points at launch and dispatch overhead. With `cuda_graph` the
// first run captures the forward and backward of `forward` into one CUDA graph (shapes are fixed:
// drop_last batches), and every later run copies its inputs into the captured (static) input
// tensors and replays the graph: one launch.
// The optimiser stays outside the graph, so the learning-rate schedule and the checkpoint format
// are untouched, and gradients land in the parameters' .grad as in the eager path.
//
// Requirements on `forward` for capture (the eager path has none): no host<->device copies or
// host reads of device values (e.g. index tensors built from std::vector: place them once, see
// hacm_place_indices / encoder_place_indices), the same kernels on every call. Random draws from
// torch's default CUDA generator (dropout, drop path) are allowed: a replay reads the generator's
// seed and offset when it is launched, so reseeding before a step (as fine-tuning does) gives the
// eager step's masks. The capture's warm-up leaves the generator and the parameters without
// gradient (BatchNorm running statistics, updated in place) as it found them.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "accelerated/precision.h"
#include "accelerated/tensor_io.h"

namespace hacm::accel {

class GradStep {
 public:
  // inputs (the step's batch and uniforms, any shapes) -> scalar loss; backward is GradStep's.
  using Forward = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

  // `params`: the model's parameters (their .grad receive the gradients). `precision`: autocast
  // around `forward` (bf16) or none. `cuda_graph`: capture and replay (CUDA inputs only; the
  // build must have CUDA).
  GradStep(StateDict& params, Precision precision, bool cuda_graph, Forward forward);
  ~GradStep();

  // Gradients of forward(inputs) into params' .grad (replaced, not accumulated); returns the
  // loss as a new tensor on the inputs' device (safe to keep across steps). In graph mode the
  // inputs must keep the shapes, dtypes and device of the first call.
  at::Tensor run(const std::vector<at::Tensor>& inputs);

  // True while steps run as a CUDA graph. A capture that fails (an operation a capture forbids)
  // does not stop training: the step runs eagerly from then on, graphed() turns false and
  // capture_error() says why (also printed once to stderr).
  bool graphed() const { return cuda_graph_; }
  const std::string& capture_error() const { return capture_error_; }

 private:
  at::Tensor eager(const std::vector<at::Tensor>& inputs, bool cache);
  void set_grads_to_none();
  void capture(const std::vector<at::Tensor>& inputs);
  void abandon_capture();
  at::Tensor replay(const std::vector<at::Tensor>& inputs);

  StateDict& params_;
  Precision precision_;
  bool cuda_graph_;
  std::string capture_error_;
  Forward forward_;
  struct Graph;  // CUDA-only state (accelerated/grad_step.cpp)
  std::unique_ptr<Graph> graph_;
};

}  // namespace hacm::accel
