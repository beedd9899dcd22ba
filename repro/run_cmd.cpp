// `repro run FILE`: validate a protocol, run its stages, print the result table.
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/protocol.h"
#include "repro/commands.h"
#include "repro/reference_trainer.h"
#include "repro/runner.h"
#include "repro/table.h"

namespace hacm::repro {

void add_run_command(CLI::App& app) {
  struct Opts {
    std::string file;
    RunOptions run;
    bool validate_only = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("run",
                         "Run an experiment protocol (protocols/<name>.json): pretraining, then "
                         "linear / semi / finetune / transfer evaluation");
  sub->add_option("protocol", o->file, "protocol JSON file")->required();
  sub->add_option("--work", o->run.work_dir,
                  "work directory: checkpoints, logs, generated data (default runs/<protocol>)");
  sub->add_option("--results", o->run.results_dir, "result directory (default results/<protocol>)");
  sub->add_flag("--validate", o->validate_only,
                "only validate the protocol and print its settings");
  sub->add_flag(
      "--no-progress", [o](int64_t) { o->run.progress = false; }, "no progress bars");
  sub->callback([o]() {
    Protocol p = load_protocol(o->file);  // InputError -> exit 2 before any work
    if (p.backend == "reference") check_reference_protocol(p);  // stages it cannot train
    if (o->validate_only) {
      std::printf("%s: valid (%zu stages, method %s, backend %s, precision %s%s%s)\n",
                  o->file.c_str(), p.stages.size(), p.method.name.c_str(), p.backend.c_str(),
                  p.precision.c_str(), p.cuda_graphs ? ", CUDA graphs" : "",
                  p.custom_kernels ? "" : ", ATen ops only (custom_kernels false)");
      set_exit_code(0);
      return;
    }
    try {
      nlohmann::json r = run_protocol(p, o->run);
      std::printf("%s", render_run_summary(r).c_str());
      std::printf("result: %s\n", r["result_file"].get<std::string>().c_str());
      set_exit_code(0);
    } catch (const RunStopped&) {
      std::fprintf(stderr,
                   "interrupted: progress so far is saved; run the same command to resume\n");
      set_exit_code(1);
    }
  });
}

}  // namespace hacm::repro
