// The protocol runner: executes the stages of a protocol for each seed, with atomic
// checkpoints, resume, progress output and a result JSON. Training runs on the accelerated
// backend (LibTorch, CUDA or CPU) or, for pretraining and the linear probe, on the reference
// backend (repro/reference_trainer.h, CPU, float).
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/protocol.h"

namespace hacm::repro {

struct RunOptions {
  std::string work_dir;     // checkpoints, logs, generated data (default runs/<protocol>)
  std::string results_dir;  // result JSON (default results/<protocol>)
  bool progress = true;
};

// Runs everything; returns the result JSON (also written to results_dir/<run-id>.json).
nlohmann::json run_protocol(const Protocol& p, const RunOptions& opt);

// Thrown when a signal stopped the run (after the checkpoint was written).
struct RunStopped : std::runtime_error {
  RunStopped() : std::runtime_error("stopped by signal") {}
};

// Set by SIGINT/SIGTERM: the training loops checkpoint and stop at the next step.
bool stop_requested();
void install_signal_handlers();

}  // namespace hacm::repro
