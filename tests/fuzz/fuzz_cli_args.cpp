// libFuzzer harness: the command line of the flashjit CLI (cli/args.cpp, cli/tune_inputs.cpp).
//
// Input: the first byte picks a subcommand of the command table (modulo their number); the
// rest, split at '\n', is its argv. For any input it checks that
//   1. parse_args() either returns or throws UsageError (anything else escapes and aborts);
//   2. what it returns holds only that command's options: each value under an option that
//      takes one, each flag under an option that takes none, positional arguments only for a
//      command that takes them; a deprecated alias never appears under its own name;
//   3. parse_shapes() of the same text joined by ';' either throws UsageError or returns
//      shapes whose sizes are all in [1, 2^31];
//   4. print_command_help() of the picked command writes without failing.
// Failed checks print what was wrong and __builtin_trap(), which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.h"

namespace {

using flashjit::cli::Args;
using flashjit::cli::CommandSpec;
using flashjit::cli::OptionSpec;
using flashjit::cli::UsageError;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_cli_args: %s\n", what.c_str());
  __builtin_trap();
}

const OptionSpec* option(const CommandSpec& c, const std::string& name) {
  for (const OptionSpec& o : c.options)
    if (o.name == name) return &o;
  return nullptr;
}

void check_args(const CommandSpec& c, const Args& a) {
  for (const auto& [name, value] : a.values) {
    const OptionSpec* o = option(c, name);
    if (!o) fail("value under '" + name + "', not an option of " + c.name);
    if (o->value.empty()) fail("flag option '" + name + "' got a value");
    if (!o->alias_of.empty()) fail("alias '" + name + "' stored under its own name");
  }
  for (const std::string& name : a.flags) {
    const OptionSpec* o = option(c, name);
    if (!o) fail("flag '" + name + "', not an option of " + c.name);
    if (!o->value.empty()) fail("value option '" + name + "' stored as a flag");
    if (!o->alias_of.empty()) fail("alias '" + name + "' stored under its own name");
  }
  if (!c.positional && !a.positional.empty()) fail(c.name + " takes no positional arguments but got some");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::vector<CommandSpec>& commands = flashjit::cli::command_specs();
  if (size == 0 || commands.empty()) return 0;
  const CommandSpec& command = commands[data[0] % commands.size()];
  std::vector<std::string> argv;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1), cur;
  for (char ch : text) {
    if (ch == '\n') {
      argv.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  argv.push_back(cur);

  try {
    check_args(command, flashjit::cli::parse_args(command, argv));
  } catch (const UsageError&) {
  }

  std::string shapes_text;
  for (const std::string& a : argv) shapes_text += a + ";";
  try {
    for (const flashjit::cli::TuneShape& s : flashjit::cli::parse_shapes(shapes_text))
      for (int64_t n : {s.batch, s.seqlen_q, s.seqlen_k})
        if (n < 1 || n > (int64_t{1} << 31)) fail("parse_shapes returned a size " + std::to_string(n));
  } catch (const UsageError&) {
  }

  if (std::FILE* sink = std::fopen("/dev/null", "w")) {
    flashjit::cli::print_command_help(sink, command);
    std::fclose(sink);
  }
  return 0;
}
