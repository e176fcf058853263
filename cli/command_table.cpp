// The subcommands' options and help texts: one table for the parser (cli/args.cpp) and for
// `flashjit COMMAND --help` (cli/help.cpp). Lists that the library knows (kernel kinds, passes)
// are read from it, so the help follows the library.
#include <fmt/format.h>

#include "cli.h"
#include "flashjit/kernel_kind.h"
#include "flashjit/passes.h"
#include "suggest.h"

namespace flashjit::cli {

namespace {

constexpr const char* kExampleSpec = R"('{"dtype":"bf16","head_dim":128,"mask":"causal"}')";

OptionSpec spec_option() {
  return {"--spec", "SPEC", "the variant: a JSON object ('{...}') or the path of a file holding one (docs/spec.md)", ""};
}
OptionSpec cache_dir_option() {
  return {"--cache-dir", "DIR",
          "the cache directory (default: $FLASHJIT_CACHE_DIR, else $XDG_CACHE_HOME/flashjit, else ~/.cache/flashjit)",
          ""};
}
std::string kinds_help() { return fmt::format("which kernel: {} or all (every kernel of the spec); default: fwd",
                                              kernel_kind_names()); }
std::string passes_help() {
  std::string names = "lower (as lowered, before any pass)";
  for (const std::string& p : passes::pass_names()) names += ", " + p;
  return "print the IR after this pass instead of after all: " + names;
}

std::vector<CommandSpec> make_table() {
  std::vector<CommandSpec> t;
  t.push_back({"compile",
               {"--spec SPEC [--arch ARCH] [--kind KIND] [--cache-dir DIR] [--no-cache]"},
               "compile with NVRTC (cached) and show the kernel's name, cache entry and resources",
               "Generates the spec's kernel, compiles it with NVRTC or finds it in the disk cache, and prints its\n"
               "name, cache key and entry, registers, spills, shared memory, threads and tile. It does not\n"
               "autotune: a spec without a tile gets the heuristic's for the arch.",
               {spec_option(),
                {"--arch", "ARCH", "target: sm_80, sm_86, sm_89, sm_90a, ... (default: this GPU's; required without one)", ""},
                {"--kind", "KIND", kinds_help(), ""},
                cache_dir_option(),
                {"--no-cache", "", "neither read nor write the disk cache", ""}},
               {fmt::format("flashjit compile --spec {} --arch sm_90a", kExampleSpec)}});
  t.push_back({"emit",
               {"--spec SPEC [--arch ARCH] [--kind KIND]"},
               "print the generated CUDA source",
               "Prints the CUDA C++ translation unit that compile hands to NVRTC: the canonical spec and the IR\n"
               "as a comment, the template includes and the kernel. Needs no GPU.",
               {spec_option(),
                {"--arch", "ARCH", "the arch to generate for: sm_80, sm_86, sm_89, sm_90a, ... (default: sm_80)", ""},
                {"--kind", "KIND", kinds_help(), ""}},
               {fmt::format("flashjit emit --spec {} --arch sm_90a > kernel.cu", kExampleSpec)}});
  t.push_back({"ir",
               {"--spec SPEC [--arch ARCH] [--after PASS] [--kind KIND]"},
               "print the tile IR after all passes, or after PASS (lower = before any pass)",
               "Prints the forward kernel's tile IR after all passes, or after one; a trailing comment lists the\n"
               "passes run and, after check_legality, the resource estimate for the arch. Needs no GPU.",
               {spec_option(),
                {"--arch", "ARCH", "the arch the passes target: sm_80, sm_86, sm_89, sm_90a, ... (default: sm_80)", ""},
                {"--after", "PASS", passes_help(), ""},
                {"--kind", "KIND", "fwd or all (only the forward kernel has a tile IR; see emit --kind for the others)",
                 ""}},
               {fmt::format("flashjit ir --spec {} --after classify_tiles", kExampleSpec)}});
  t.push_back({"tune",
               {"--specs FILE --shapes SHAPES [--arch ARCH] [--cache-dir DIR] [--compile-only] [--forward-only]"},
               "autotune each spec x shape on the GPU into the tuning database (compile-only without one)",
               "With a GPU, autotunes each (spec, shape) pair on random tensors, the forward tile and, unless\n"
               "--forward-only, the backward's bwd_dkdv tile, and stores the winners in the tuning database and\n"
               "their kernels in the cache. Without a GPU, with --compile-only, or with an --arch that is not the\n"
               "GPU's, it compiles each spec's heuristic kernels for --arch into the cache instead.",
               {{"--specs", "FILE", "the specs: a JSON array, or one spec per line ('#' comments); their tiles are ignored", ""},
                {"--shapes", "SHAPES", "';'-separated shapes of b=, sq=, sk= (sk defaults to sq; heads come from the spec)", ""},
                {"--arch", "ARCH", "the arch to tune or compile for (default: this GPU's; required without one)", ""},
                cache_dir_option(),
                {"--compile-only", "", "do not time anything: compile the heuristic kernels for --arch into the cache", ""},
                {"--forward-only", "", "tune (or compile) the forward kernel only, not the backward's", ""}},
               {"flashjit tune --specs specs.jsonl --shapes 'b=4,sq=4096;b=1,sq=16384'",
                "flashjit tune --specs specs.jsonl --shapes 'b=1,sq=1024' --compile-only --arch sm_90a"}});
  t.push_back({"check",
               {"--spec SPEC --shape SHAPE [--seed N] [--forward-only] [--deterministic] [--cache-dir DIR]"},
               "run the variant on the GPU against float64 attention: errors beside the dtype's rounding floor",
               "Runs the spec's forward and backward on the GPU on random normal inputs (the spec's dtype, BHSD)\n"
               "and compares O, LSE, dQ, dK, dV with float64 attention computed on the CPU, as flashjit.check()\n"
               "does in Python: the largest absolute error, the Frobenius-relative error, and the dtype's\n"
               "rounding floor (the float64 result rounded to fp16 / bf16). Exit status 0 when every relative\n"
               "error is below 10 x its floor + 1e-2 and the LSE's below 2e-3, else 1. Needs a GPU. Specs with\n"
               "captured tensors are refused (use flashjit.check in Python).",
               {spec_option(),
                {"--shape", "SHAPE",
                 "b=, sq=, sk= (sk defaults to sq; heads from the spec); ';' between shapes checks each; "
                 "b * heads_q * sq * sk at most 2^22",
                 ""},
                {"--seed", "N", "the inputs' random seed (default: 0)", ""},
                {"--forward-only", "", "check the forward only (O and LSE), not the backward", ""},
                {"--deterministic", "", "run the deterministic backward (BackwardOptions::deterministic)", ""},
                cache_dir_option()},
               {R"(flashjit check --spec '{"dtype":"bf16","head_dim":64,"mask":"causal"}' --shape 'b=2,sq=17,sk=1000')"}});
  t.push_back({"mask",
               {"--spec SPEC --sq N [--sk N] [--png FILE]"},
               "count the empty / partial / full tiles of the spec's mask and draw it",
               "Counts the empty, partial and full tiles of the spec's mask as the kernel classifies them, with the\n"
               "spec's tile or the sm_80 heuristic's. Masks that read captured tensors are refused (their values\n"
               "are not known here: use flashjit.plot_block_mask in Python).",
               {spec_option(),
                {"--sq", "N", "seqlen_q, from 1 to 2^30", ""},
                {"--sk", "N", "seqlen_k, from 1 to 2^30 (default: --sq)", ""},
                {"--png", "FILE", "also draw the mask into FILE (at most 1024 x 1024 pixels)", ""}},
               {R"(flashjit mask --spec '{"dtype":"bf16","head_dim":64,"mask":"causal"}' --sq 4096 --png mask.png)"}});
  t.push_back({"cache",
               {"list | stats | clear [--cache-dir DIR]", "export DIR [--cache-dir DIR]",
                "import [--verify] DIR [--cache-dir DIR]"},
               "list, count, clear, export or import the kernel cache and tuning records",
               "list: every kernel entry and tuning record; stats: counts and bytes; clear: remove them all.\n"
               "export DIR / import DIR: copy the entries and records that pass their checksums to / from DIR.\n"
               "Importing a cache means running its kernels: import only caches you trust, or use --verify.",
               {cache_dir_option(),
                {"--dir", "DIR", "deprecated spelling of --cache-dir", "--cache-dir"},
                {"--verify", "",
                 "import only: recompile each kernel here and reject entries whose key or cubin differ (exit 1)", ""}},
               {"flashjit cache stats", "flashjit cache export /tmp/shipped --cache-dir ~/.cache/flashjit",
                "flashjit cache import --verify /tmp/shipped"},
               /*positional=*/true});
  return t;
}

}  // namespace

const std::vector<CommandSpec>& command_specs() {
  static const std::vector<CommandSpec> table = make_table();
  return table;
}

const CommandSpec* find_command(const std::string& name) {
  for (const CommandSpec& c : command_specs())
    if (c.name == name) return &c;
  return nullptr;
}

UsageError unknown_command(const std::string& name) {
  // Before the command only the global options can come: "--hlep" is a typo of one of them.
  if (name.size() > 1 && name[0] == '-') {
    const std::optional<std::string> near = suggest(name, {"--help", "--version"});
    return UsageError(fmt::format("unknown option '{}'; {}options before a command: -h, --help, --version", name,
                                  near ? fmt::format("did you mean '{}'? ", *near) : std::string()));
  }
  std::vector<std::string> names;
  for (const CommandSpec& c : command_specs()) names.push_back(c.name);
  names.push_back("help");
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
  const std::optional<std::string> near = suggest(name, names);
  return UsageError(fmt::format("unknown command '{}'; {}commands: {}", name,
                                near ? fmt::format("did you mean '{}'? ", *near) : std::string(), list));
}

}  // namespace flashjit::cli
