// Usage texts: the global list (`flashjit --help`) and each command's own
// (`flashjit COMMAND --help`, `flashjit help COMMAND`), both printed from the command table.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "cli.h"

namespace flashjit::cli {

namespace {
std::string option_label(const OptionSpec& o) { return o.value.empty() ? o.name : o.name + " " + o.value; }
}  // namespace

void print_usage(std::FILE* out) {
  fmt::print(out, "usage: flashjit <command> [options]\n\ncommands:\n");
  for (const CommandSpec& c : command_specs()) {
    for (const std::string& line : c.synopsis) fmt::print(out, "  {:<8}{}\n", c.name, line);
    fmt::print(out, "          {}\n", c.summary);
  }
  fmt::print(out,
             "  help    [COMMAND]\n"
             "          this list, or a command's options: flashjit help COMMAND (= flashjit COMMAND --help)\n"
             "\n"
             "SPEC is a JSON object, e.g. '{{\"dtype\":\"bf16\",\"head_dim\":128,\"mask\":\"causal\"}}',\n"
             "or the path of a file holding one. FILE holds a JSON array of specs, or one spec per line.\n"
             "SHAPES is e.g. 'b=4,sq=4096,sk=4096;b=1,sq=16384' (heads come from the spec; sk defaults to sq).\n"
             "ARCH is sm_80, sm_86, sm_89, sm_90a, ...: emit and ir default to sm_80, compile to the GPU.\n"
             "The cache lives in --cache-dir DIR, else $FLASHJIT_CACHE_DIR, else $XDG_CACHE_HOME/flashjit,\n"
             "else ~/.cache/flashjit.\n"
             "FLASHJIT_LOG=1 traces each compile (cache hit or miss) and tuning decision on stderr.\n"
             "\n"
             "options:\n"
             "  -h, --help   show this help\n"
             "  --version    show the flashjit and NVRTC versions\n");
}

void print_command_help(std::FILE* out, const CommandSpec& c) {
  for (std::size_t i = 0; i < c.synopsis.size(); ++i)
    fmt::print(out, "{} flashjit {} {}\n", i == 0 ? "usage:" : "      ", c.name, c.synopsis[i]);
  fmt::print(out, "\n{}\n\noptions:\n", c.description);
  std::size_t width = std::string("-h, --help").size();
  for (const OptionSpec& o : c.options) width = std::max(width, option_label(o).size());
  for (const OptionSpec& o : c.options) fmt::print(out, "  {:<{}}  {}\n", option_label(o), width, o.help);
  fmt::print(out, "  {:<{}}  {}\n", "-h, --help", width, "show this help");
  fmt::print(out, "\n{}:\n", c.examples.size() == 1 ? "example" : "examples");
  for (const std::string& e : c.examples) fmt::print(out, "  {}\n", e);
}

}  // namespace flashjit::cli
