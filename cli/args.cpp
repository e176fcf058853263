// Hand-written argument parsing (six subcommands, a handful of options each: a library would
// add a dependency the GPU machine image lacks for little) and loading of the --spec argument.
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "cli.h"
#include "flashjit/error.h"
#include "flashjit/file_input.h"
#include "flashjit/kernel_kinds.h"
#include "flashjit/limits.h"
#include "suggest.h"

namespace flashjit::cli {

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

namespace {
const OptionSpec* find_option(const CommandSpec& command, const std::string& name) {
  for (const OptionSpec& o : command.options)
    if (o.name == name) return &o;
  return nullptr;
}

// "--spec SPEC, --arch ARCH, --no-cache": what the command accepts (deprecated aliases left out).
std::string options_list(const CommandSpec& command) {
  std::string s;
  for (const OptionSpec& o : command.options)
    if (o.alias_of.empty()) s += (s.empty() ? "" : ", ") + o.name + (o.value.empty() ? "" : " " + o.value);
  return (s.empty() ? std::string("none") : s) + ", -h, --help";
}

UsageError unknown_option(const CommandSpec& command, const std::string& arg, const std::string& name) {
  std::vector<std::string> names;
  for (const OptionSpec& o : command.options)
    if (o.alias_of.empty()) names.push_back(o.name);
  names.push_back("--help");
  const std::optional<std::string> near = suggest(name, names);
  return UsageError(fmt::format("unknown option '{}' for '{}'; {}options: {}", arg, command.name,
                                near ? fmt::format("did you mean '{}'? ", *near) : std::string(),
                                options_list(command)),
                    command.name);
}
}  // namespace

Args parse_args(const CommandSpec& command, const std::vector<std::string>& argv) {
  Args args;
  std::map<std::string, std::string> spelled;  // option name -> how it was written (alias or not)
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      args.positional.push_back(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string written = a.substr(0, eq);
    const OptionSpec* opt = find_option(command, written);
    if (!opt) throw unknown_option(command, a, written);
    std::string name = written;
    if (!opt->alias_of.empty()) {
      fmt::print(stderr, "flashjit: note: {} is deprecated; use {} (same meaning)\n", written, opt->alias_of);
      name = opt->alias_of;
    }
    // Both spellings at once would leave one silently unused.
    const auto seen = spelled.find(name);
    if (seen != spelled.end() && seen->second != written)
      throw UsageError(fmt::format("{} and {} name the same option; give one", seen->second, written), command.name);
    spelled[name] = written;
    if (opt->value.empty()) {
      if (eq != std::string::npos)
        throw UsageError(fmt::format("option {} takes no value (got '{}')", written, a), command.name);
      args.flags.insert(name);
    } else if (eq != std::string::npos) {
      args.values[name] = a.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      args.values[name] = argv[++i];
    } else {
      throw UsageError(fmt::format("option {} needs a value ({})", written, opt->value), command.name);
    }
  }
  if (!command.positional && !args.positional.empty())
    throw UsageError(fmt::format("unexpected argument '{}' for '{}'", args.positional[0], command.name),
                     command.name);
  return args;
}

AttentionSpec load_spec(const Args& args) {
  const auto arg = args.get("--spec");
  if (!arg) throw UsageError("missing --spec (a JSON object or a path to a JSON file)");
  const auto first = arg->find_first_not_of(" \t\r\n");
  std::string text;
  if (first != std::string::npos && (*arg)[first] == '{') {
    text = *arg;
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(*arg, ec))
      throw ArgumentError("--spec", fmt::format("spec file '{}' does not exist (a JSON literal must start with '{{')",
                                                *arg));
    // Bounded and non-blocking: /dev/zero, a FIFO or a directory is an error, not a hang.
    text = read_input_file(*arg, limits::kMaxSpecJsonBytes, "--spec");
  }
  AttentionSpec spec = spec_from_json(text);
  // --kind bwd_dkdv reads the tile as the backward's (checked when its kernel is generated).
  const std::optional<KernelKind> kind = kernel_kind_from_string(args.get("--kind").value_or("fwd"));
  validate_for_kind(kind.value_or(KernelKind::fwd), spec);
  return spec;
}

}  // namespace flashjit::cli
