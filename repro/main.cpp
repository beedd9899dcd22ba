// repro: command-line entry point of hacm-repro.
// Exit codes: 0 success, 2 bad input or usage, 1 internal failure.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "core/error.h"
#include "repro/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "hacm-repro: reproduce and benchmark HA-CM (and MAMP) for skeleton action recognition"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("hacm-repro 0.1"));
  hacm::repro::add_prepare_command(app);
  hacm::repro::add_inspect_command(app);
#ifdef HACM_WITH_TORCH
  hacm::repro::add_run_command(app);
#endif
  hacm::repro::add_table_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const hacm::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
  return hacm::repro::exit_code();
}
