// flashjit: compile, emit and inspect attention kernels from the shell.
//   flashjit emit --spec '{"dtype":"bf16","head_dim":128,"mask":"causal"}'
#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli.h"
#include "flashjit/error.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/nvrtc_loader.h"

namespace flashjit::cli {

void print_usage(std::FILE* out) {
  fmt::print(out,
             "usage: flashjit <command> [options]\n"
             "\n"
             "commands:\n"
             "  compile --spec SPEC [--arch ARCH] [--kind KIND] [--no-cache]\n"
             "                                                  compile with NVRTC (cached) and show\n"
             "                                                  the kernel's name, cache entry and resources\n"
             "  emit    --spec SPEC [--arch ARCH] [--kind KIND] print the generated CUDA source\n"
             "                                                  (KIND: fwd, block_mask, bwd_preprocess, bwd_dkdv,\n"
             "                                                  bwd_dq_convert, bwd_dq, or all: every kernel\n"
             "                                                  of the spec)\n"
             "  ir      --spec SPEC [--arch ARCH] [--after PASS] [--kind fwd]\n"
             "                                                  print the tile IR after all passes, or after\n"
             "                                                  PASS (lower = before any pass)\n"
             "  tune    --specs FILE --shapes SHAPES [--arch ARCH] [--cache-dir DIR] [--compile-only] [--forward-only]\n"
             "                                                  autotune each spec x shape on the GPU (forward, and\n"
             "                                                  the backward's bwd_dkdv unless --forward-only) and store\n"
             "                                                  the winners; without a GPU, compile each spec's\n"
             "                                                  heuristic kernel for ARCH into the cache instead\n"
             "  mask    --spec SPEC --sq N [--sk N] [--png FILE]\n"
             "                                                  count the empty / partial / full tiles of the\n"
             "                                                  spec's mask and draw it (masks without captures)\n"
             "  cache   list|stats|clear [--dir DIR]            inspect or empty the kernel cache and tuning records\n"
             "  cache   export|import DIR [--dir DIR]           copy kernels and tuning records that pass their\n"
             "                                                  checksums to/from DIR; import only caches you trust\n"
             "  cache   import --verify DIR [--dir DIR]         import, recompiling each kernel here: entries whose\n"
             "                                                  key or cubin do not match their spec are rejected\n"
             "                                                  (exit status 1)\n"
             "\n"
             "SPEC is a JSON object, e.g. '{{\"dtype\":\"bf16\",\"head_dim\":128,\"mask\":\"causal\"}}',\n"
             "or the path of a file holding one. FILE holds a JSON array of specs, or one spec per line.\n"
             "SHAPES is e.g. 'b=4,sq=4096,sk=4096;b=1,sq=16384' (heads come from the spec; sk defaults to sq).\n"
             "ARCH is sm_80, sm_86, sm_89, sm_90a, ...: emit and ir default to sm_80, compile to the GPU.\n"
             "KIND is fwd (the default: the forward kernel) or block_mask (the builder of the spec's\n"
             "mask's block mask, flashjit.create_block_mask).\n"
             "The cache lives in $FLASHJIT_CACHE_DIR, else $XDG_CACHE_HOME/flashjit, else ~/.cache/flashjit.\n"
             "FLASHJIT_LOG=1 traces each compile (cache hit or miss) and tuning decision on stderr.\n"
             "\n"
             "options:\n"
             "  -h, --help   show this help\n"
             "  --version    show the flashjit and NVRTC versions\n");
}

namespace {

int dispatch(const std::vector<std::string>& argv) {
  if (argv.empty()) throw UsageError("missing command");
  const std::string& cmd = argv[0];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    print_usage(stdout);
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
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  for (const std::string& a : rest)
    if (a == "-h" || a == "--help") {
      print_usage(stdout);
      return 0;
    }

  Args args;
  if (cmd == "compile") args = parse_args(cmd, rest, {"--spec", "--arch", "--kind"}, {"--no-cache"});
  else if (cmd == "emit") args = parse_args(cmd, rest, {"--spec", "--arch", "--kind"}, {});
  else if (cmd == "ir") args = parse_args(cmd, rest, {"--spec", "--arch", "--after", "--kind"}, {});
  else if (cmd == "mask") args = parse_args(cmd, rest, {"--spec", "--sq", "--sk", "--png"}, {});
  else if (cmd == "cache") return run_cache(parse_args(cmd, rest, {"--dir"}, {"--verify"}));
  else if (cmd == "tune")
    args = parse_args(cmd, rest, {"--specs", "--shapes", "--arch", "--cache-dir"}, {"--compile-only", "--forward-only"});
  else throw UsageError(fmt::format("unknown command '{}'; commands: compile, emit, ir, tune, mask, cache", cmd));

  if (!args.positional.empty())
    throw UsageError(fmt::format("unexpected argument '{}' for '{}'", args.positional[0], cmd));
  if (cmd == "compile") return run_compile(args);
  if (cmd == "emit") return run_emit(args);
  if (cmd == "tune") return run_tune(args);
  if (cmd == "mask") return run_mask(args);
  return run_ir(args);
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
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    fmt::print(stderr, "flashjit: usage error: {}\n(run 'flashjit --help' for usage)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    // SpecError, ArgumentError, LegalityError, CompileError, CudaError and anything else:
    // the message names the problem; there is nothing to add but the exit status.
    fmt::print(stderr, "flashjit: error: {}\n", message(e));
    return 1;
  }
}
