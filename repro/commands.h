// Subcommands of the repro CLI. Each add_* registers its options and a callback; callbacks
// throw hacm::InputError for bad input (exit 2) and set exit_code() otherwise.
#pragma once
#include <CLI/CLI.hpp>

namespace hacm::repro {

void add_prepare_command(CLI::App& app);  // repro prepare <dataset> --raw DIR --out DIR
void add_inspect_command(CLI::App& app);  // repro inspect FILE.npz: keys, dtypes, shapes
void add_run_command(CLI::App& app);      // repro run protocols/<name>.json
void add_table_command(CLI::App& app);    // repro table [DIR]
int exit_code();
void set_exit_code(int code);

}  // namespace hacm::repro
