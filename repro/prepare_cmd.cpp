// `repro prepare`: raw releases (or the embedded generator) -> benchmark .npz files.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/prepare.h"
#include "repro/commands.h"
#include "repro/runner.h"

namespace hacm::repro {

static int g_exit_code = 0;
int exit_code() {
  return g_exit_code;
}
void set_exit_code(int code) {
  g_exit_code = code;
}

void add_prepare_command(CLI::App& app) {
  auto opt = std::make_shared<PrepareOptions>();
  CLI::App* sub = app.add_subcommand(
      "prepare",
      "Make benchmark .npz files (x_train, y_train, x_test, y_test) from a raw release or the "
      "embedded synthetic generator");
  sub->add_option("dataset", opt->dataset, "ntu60 | ntu120 | pku1 | pku2 | synthetic")
      ->required()
      ->check(CLI::IsMember({"ntu60", "ntu120", "pku1", "pku2", "synthetic"}));
  sub->add_option("--raw", opt->raw_dir,
                  "raw release directory (NTU: the .skeleton files; PKU: PKU_Skeleton_Renew/, "
                  "Train_Label_PKU_final/, Split/)");
  sub->add_option("--out", opt->out_dir, "output directory")->required();
  sub->add_option("--threads", opt->threads, "worker threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--clips", opt->clips, "synthetic: number of clips")->check(CLI::PositiveNumber);
  sub->add_option("--seed", opt->seed, "synthetic: generator seed");
  sub->add_flag(
      "--no-progress", [opt](int64_t) { opt->progress = false; }, "no progress bar");
  sub->callback([opt]() {
    if (opt->dataset != "synthetic" && opt->raw_dir.empty())
      throw InputError("prepare " + opt->dataset + ": --raw DIR is required");
    if (opt->threads == 0) opt->threads = int(std::max(1u, std::thread::hardware_concurrency()));
    // SIGINT/SIGTERM: stop at the next sample, remove the temporary files, exit 1.
    install_signal_handlers();
    opt->cancelled = stop_requested;
    std::vector<std::string> files;
    try {
      if (opt->dataset == "ntu60" || opt->dataset == "ntu120")
        files = prepare_ntu(*opt);
      else if (opt->dataset == "pku1" || opt->dataset == "pku2")
        files = prepare_pku(*opt);
      else
        files = prepare_synthetic(*opt);
    } catch (const Interrupted& e) {
      std::fprintf(stderr, "interrupted: %s\n", e.what());
      set_exit_code(1);
      return;
    }
    for (const auto& f : files) std::printf("wrote %s\n", f.c_str());
    set_exit_code(0);
  });
}

}  // namespace hacm::repro
