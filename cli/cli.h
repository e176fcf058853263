// The flashjit command-line tool: shared pieces of its subcommands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "flashjit/spec.h"

namespace flashjit::cli {

// A malformed command line (unknown option, missing value): exit status 2 with usage.
// `command`: the subcommand it is about, when known, so the hint can point at its --help.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what, std::string command = "")
      : std::runtime_error(what), command_(std::move(command)) {}
  const std::string& command() const { return command_; }

 private:
  std::string command_;
};

// A subcommand's options and help text, in one table (cli/command_table.cpp) that both the
// parser and `--help` read, so the help cannot list an option the parser refuses or miss one.
struct OptionSpec {
  std::string name;      // "--arch"
  std::string value;     // the value's placeholder, "ARCH"; empty for a flag
  std::string help;      // one line: what it means, its default
  std::string alias_of;  // non-empty: a deprecated spelling of that option (a note on stderr)
};

struct CommandSpec {
  std::string name;                   // "compile"
  std::vector<std::string> synopsis;  // usage lines after "flashjit NAME "
  std::string summary;                // one line, for the global usage
  std::string description;            // a paragraph for the command's own help
  std::vector<OptionSpec> options;
  std::vector<std::string> examples;  // full command lines
  bool positional = false;            // takes positional arguments (cache: the action, a directory)
};

const std::vector<CommandSpec>& command_specs();
const CommandSpec* find_command(const std::string& name);  // null when there is none
// The usage error for a command name that is not one: names the commands, suggests the nearest.
UsageError unknown_command(const std::string& name);
void print_command_help(std::FILE* out, const CommandSpec& command);

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // "--name VALUE" or "--name=VALUE"
  std::set<std::string> flags;                // "--name"

  std::optional<std::string> get(const std::string& name) const;
  bool flag(const std::string& name) const { return flags.count(name) != 0; }
};

// Parses the arguments after the subcommand against its options (a value option takes
// "--name VALUE" or "--name=VALUE", a flag neither); a deprecated alias is stored under its
// option's name, with a note on stderr. Throws UsageError, naming the allowed options and the
// nearest one, on anything else.
Args parse_args(const CommandSpec& command, const std::vector<std::string>& argv);

// The --spec argument: a JSON object if it starts with '{', else a path to a JSON file.
// The spec is validated, so every subcommand reports a bad field the same way.
AttentionSpec load_spec(const Args& args);

// `flashjit tune` inputs. A specs file is a JSON array of specs or one spec per line;
// tiles in it are dropped (choosing the tile is the point of tuning).
struct TuneShape {
  int64_t batch = 1, seqlen_q = 1, seqlen_k = 1;  // heads come from the spec
};
std::vector<AttentionSpec> load_specs_file(const std::string& path);
// "b=4,sq=4096,sk=4096;b=1,sq=16384" (sk defaults to sq); throws UsageError naming `option`.
std::vector<TuneShape> parse_shapes(const std::string& text, const std::string& option = "--shapes");
std::string describe(const AttentionSpec& spec);  // "bf16 d128 causal h16/16 lse"
std::string describe(const TuneShape& shape);     // "b=4 sq=4096 sk=4096"

// Subcommands; each returns the process exit status.
int run_compile(const Args& args);
int run_emit(const Args& args);
int run_ir(const Args& args);
int run_cache(const Args& args);
int run_tune(const Args& args);
int run_mask(const Args& args);
int run_check(const Args& args);
// `cache export DIR` / `cache import [--verify] DIR`: copies verified entries between cache
// directories. `verify` recompiles every imported kernel and rejects those whose key or cubin
// do not match their spec (exit status 1 when any is rejected).
int run_cache_transfer(const std::string& action, const std::string& other_dir, const std::string& cache_dir,
                       bool verify = false);

void print_usage(std::FILE* out);

}  // namespace flashjit::cli
