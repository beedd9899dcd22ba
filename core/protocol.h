// Experiments as data: a protocol JSON names its dataset, method, backend, device, seeds and
// stages (pretrain, then linear | semi | finetune | transfer). Every setting defaults to the
// authors' value (hacm-spec.md §5, datasets-and-protocols.md §2); protocols/README.md documents
// each key. Validation happens before any work: unknown keys, wrong types, out-of-range values
// and missing files give one InputError naming the file and the key path (exit code 2).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hacm {

struct DatasetSpec {
  std::string kind = "npz";    // npz | synthetic
  std::string path;            // npz: prepared benchmark file (x_train, y_train, x_test, y_test)
  std::string prepare_hint;    // npz: the `repro prepare` command that makes it (for the error)
  std::string name;            // ntu60 | ntu120 | pku1 | pku2 | synthetic (for defaults)
  int64_t clips = 2000;        // synthetic
  uint64_t seed = 1;           // synthetic
  std::string split = "xsub";  // synthetic: xsub | xview
};

struct MethodSpec {
  std::string name = "hacm";         // hacm | mamp
  std::string variant = "released";  // hacm: released | corrected
  int64_t dim = 256, depth = 8, decoder_depth = 3, heads = 8, mlp_ratio = 4;
  int64_t frames = 72, t_patch = 3;  // window and temporal patch (MAMP: 120 / 4)
  // HA-CM settings (corrected variant may change them; released uses these defaults)
  double keep_ratio = 0.1, temperature = 0.9, dist_factor = 4.0;
  // MAMP settings
  double mask_ratio = 0.9, tau = 0.8;
};

struct StageSpec {
  std::string kind;  // pretrain | linear | semi | finetune | transfer
  int64_t epochs = 0;
  double warmup_epochs = 0;
  int64_t batch_size = 0;
  double lr = 0, min_lr = 0, weight_decay = 0;
  double beta1 = 0.9, beta2 = 0.999, momentum = 0.9;
  double layer_decay = 1.0, label_smoothing = 0, drop_path = 0, dropout = 0;
  double fraction = 1.0;         // semi: labelled fraction of the training set
  bool vel = false;              // velocity input
  int64_t checkpoint_every = 0;  // epochs between checkpoints (0 = only at the end)
  int64_t eval_every = 1;        // epochs between test evaluations (linear/finetune)
  std::string from;              // finetune/transfer/linear: "pretrain" (this run) or "scratch"
  DatasetSpec dataset;           // transfer: the target dataset
  bool has_dataset = false;
};

struct Protocol {
  std::string name;    // file stem
  std::string path;    // the protocol file
  std::string sha256;  // of the file bytes
  std::string description;
  DatasetSpec dataset;
  MethodSpec method;
  std::string backend = "accelerated";  // reference | accelerated
  std::string device = "auto";          // cpu | cuda | auto
  std::string data_device = "auto";  // where clips live and are transformed: host | device | auto
  std::string precision = "fp32";    // accelerated: fp32 | tf32 | bf16 (accelerated/precision.h)
  bool cuda_graphs = false;          // accelerated on CUDA: pretraining steps as one CUDA graph
  bool custom_kernels = true;        // accelerated on CUDA: our CUDA kernels (accelerated/kernels/)
  std::vector<uint64_t> seeds = {0};
  int threads = 0;               // data-loading threads (0 = all cores)
  bool random_baseline = false;  // also run the linear probe on a random-init encoder
  std::vector<StageSpec> stages;
  nlohmann::json raw;  // the file as read (recorded in results)
};

// Parse and validate; fills defaults. Relative dataset paths resolve against the current
// directory. Throws InputError("<file>: <key.path>: <problem>").
Protocol load_protocol(const std::string& path);
Protocol parse_protocol(const nlohmann::json& j, const std::string& path);

// The stage defaults of the authors for a method/dataset (used when a key is absent).
StageSpec default_stage(const std::string& kind, const MethodSpec& m,
                        const std::string& dataset_name);

std::string sha256_hex(const std::string& bytes);

}  // namespace hacm
