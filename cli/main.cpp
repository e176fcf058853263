// flashjit: compile, emit and inspect attention kernels from the shell.
//   flashjit emit --spec '{"dtype":"bf16","head_dim":128,"mask":"causal"}'
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/nvrtc_loader.h"
#include "flashjit/runtime.h"

namespace flashjit::cli {

namespace {

bool is_help(const std::string& a) { return a == "-h" || a == "--help"; }

int run_command(const CommandSpec& c, const std::vector<std::string>& rest) {
  const Args args = parse_args(c, rest);
  if (c.name == "compile") return run_compile(args);
  if (c.name == "emit") return run_emit(args);
  if (c.name == "ir") return run_ir(args);
  if (c.name == "tune") return run_tune(args);
  if (c.name == "mask") return run_mask(args);
  if (c.name == "check") return run_check(args);
  if (c.name == "cache") return run_cache(args);
  throw std::logic_error("command table entry '" + c.name + "' has no runner in cli/main.cpp");
}

int dispatch(const std::vector<std::string>& argv) {
  if (argv.empty()) throw UsageError("missing command");
  const std::string& cmd = argv[0];
  if (is_help(cmd)) {
    print_usage(stdout);
    return 0;
  }
  if (cmd == "help") {  // help [COMMAND]
    if (argv.size() == 1) {
      print_usage(stdout);
      return 0;
    }
    if (argv.size() > 2) throw UsageError(fmt::format("help takes one command; got '{}' too", argv[2]));
    const CommandSpec* c = find_command(argv[1]);
    if (!c) throw unknown_command(argv[1]);
    print_command_help(stdout, *c);
    return 0;
  }
  if (cmd == "--version") {
    // --version answers without NVRTC too (it is dlopen'ed): say which one a compile would
    // use, or that none loads (`flashjit compile` prints where it looked).
    if (nvrtc_available())
      fmt::print("flashjit {} (NVRTC {}, {})\n", FLASHJIT_VERSION, nvrtc_version_string(), nvrtc().path);
    else
      fmt::print("flashjit {} (NVRTC: none loadable; a compile lists where it looked)\n", FLASHJIT_VERSION);
    return 0;
  }
  const CommandSpec* c = find_command(cmd);
  if (!c) throw unknown_command(cmd);
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  // Help wins over everything else on the line, so a half-typed command can still ask for it.
  if (std::any_of(rest.begin(), rest.end(), is_help)) {
    print_command_help(stdout, *c);
    return 0;
  }
  try {
    return run_command(*c, rest);
  } catch (const UsageError& e) {
    if (!e.command().empty()) throw;
    throw UsageError(e.what(), cmd);  // a command's own usage errors point at its --help
  }
}

// Library messages already start with "flashjit: "; print it once.
std::string message(const std::exception& e) {
  std::string m = e.what();
  const std::string prefix = "flashjit: ";
  return m.compare(0, prefix.size(), prefix) == 0 ? m.substr(prefix.size()) : m;
}

}  // namespace
}  // namespace flashjit::cli

int main(int argc, char** argv) {
  using namespace flashjit::cli;
  try {
    const int status = dispatch(std::vector<std::string>(argv + 1, argv + argc));
    flashjit::stop_tuning();  // before exit() starts destroying what background compiles use
    return status;
  } catch (const UsageError& e) {
    const std::string help = e.command().empty() ? "flashjit --help" : "flashjit " + e.command() + " --help";
    fmt::print(stderr, "flashjit: usage error: {}\n(run '{}' for usage)\n", e.what(), help);
    return 2;
  } catch (const std::exception& e) {
    // SpecError, ArgumentError, LegalityError, CompileError, CudaError and anything else:
    // the message names the problem; there is nothing to add but the exit status.
    fmt::print(stderr, "flashjit: error: {}\n", message(e));
    return 1;
  }
}
