// Protocol stages on the Eigen reference backend (`"backend": "reference"`): pretraining (HA-CM
// released / corrected, MAMP), the linear probe and fine-tuning (finetune / semi / transfer), in
// float (the reference's float instantiation), single-threaded and deterministic. Same data, seeds,
// checkpoint format and resume semantics as the accelerated stages of runner.cpp:
//  * batches from Feeder::get_batch, per-epoch permutations and per-step seeds derived from
//    (seed, epoch, step), masking uniforms from our Rng, so both backends see the same numbers;
//  * every stage checkpoints `<seed_dir>/<tag>.ckpt.npz`: parameters by state_dict
//    name (fine-tuning: encoder names + head.fc1 / head.bn (with running statistics) / head.fc2),
//    the AdamW state as optim.exp_avg.<name> / optim.exp_avg_sq.<name> / optim.step, progress
//    and curves as meta.*; a stop request checkpoints mid-epoch and a rerun continues bitwise;
//  * fine-tuning's drop-path / dropout masks come from Rng(mix(step_seed, 3)), so a resumed run
//    draws the same masks (the accelerated runner's torch generator draws different ones);
//  * the linear probe's checkpoint holds its head (fc, BN running statistics) and the SGD
//    momentum as optim.momentum_buffer.<name> / optim.step, like the accelerated probe's.
// This file is torch-free: the runner passes its dataset resolver and stop flag in.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/protocol.h"
#include "reference/checkpoint.h"

namespace hacm::repro {

struct ReferenceContext {
  const Protocol* p = nullptr;
  uint64_t seed = 0;
  std::string seed_dir;  // checkpoints go here
  int threads = 1;       // data loading only (the model is single-threaded)
  bool progress = true;
  // The npz of a dataset spec (the runner's resolver: generates the synthetic set once).
  std::function<std::string(const DatasetSpec&)> dataset_file;
  // Polled before every step; true = checkpoint (pretraining) and throw RunStopped.
  std::function<bool()> stop;
};

// Parameters handed from the pretraining stage to the following stages.
using ReferenceParams = ref::Checkpoint<float>;

// Throws InputError (naming the file and key) for what the reference cannot run: every stage
// kind trains, `device: "cuda"` is refused. Called before any work.
void check_reference_protocol(const Protocol& p);

// One stage. `pretrained` is filled by a pretrain stage and read by the later ones
// (`have_pretrained` says whether it holds anything). linear + random_baseline also runs the
// probe on a random-init encoder (result key "linear_random"), as the accelerated runner.
nlohmann::json run_reference_stage(const ReferenceContext& c, const StageSpec& s,
                                   const std::string& tag, ReferenceParams& pretrained,
                                   bool& have_pretrained);

}  // namespace hacm::repro
