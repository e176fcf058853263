// The flashjit command-line tool: shared pieces of its subcommands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "flashjit/spec.h"

namespace flashjit::cli {

// A malformed command line (unknown option, missing value): exit status 2 with usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // "--name VALUE" or "--name=VALUE"
  std::set<std::string> flags;                // "--name"

  std::optional<std::string> get(const std::string& name) const;
  bool flag(const std::string& name) const { return flags.count(name) != 0; }
};

// Parses the arguments after the subcommand. `value_options` take a value, `flag_options`
// do not (names with the leading "--"). Throws UsageError on anything else.
Args parse_args(const std::string& command, const std::vector<std::string>& argv,
                const std::vector<std::string>& value_options,
                const std::vector<std::string>& flag_options);

// The --spec argument: a JSON object if it starts with '{', else a path to a JSON file.
// The spec is validated, so every subcommand reports a bad field the same way.
AttentionSpec load_spec(const Args& args);

// `flashjit tune` inputs. A specs file is a JSON array of specs or one spec per line;
// tiles in it are dropped (choosing the tile is the point of tuning).
struct TuneShape {
  int64_t batch = 1, seqlen_q = 1, seqlen_k = 1;  // heads come from the spec
};
std::vector<AttentionSpec> load_specs_file(const std::string& path);
// "b=4,sq=4096,sk=4096;b=1,sq=16384" (sk defaults to sq); throws UsageError.
std::vector<TuneShape> parse_shapes(const std::string& text);
std::string describe(const AttentionSpec& spec);  // "bf16 d128 causal h16/16 lse"
std::string describe(const TuneShape& shape);     // "b=4 sq=4096 sk=4096"

// Subcommands; each returns the process exit status.
int run_compile(const Args& args);
int run_emit(const Args& args);
int run_ir(const Args& args);
int run_cache(const Args& args);
int run_tune(const Args& args);
int run_mask(const Args& args);
// `cache export DIR` / `cache import [--verify] DIR`: copies verified entries between cache
// directories. `verify` recompiles every imported kernel and rejects those whose key or cubin
// do not match their spec (exit status 1 when any is rejected).
int run_cache_transfer(const std::string& action, const std::string& other_dir, const std::string& cache_dir,
                       bool verify = false);

void print_usage(std::FILE* out);

}  // namespace flashjit::cli
