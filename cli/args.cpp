// Hand-written argument parsing (the tool has four subcommands and a handful of options)
// and loading of the --spec argument.
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

namespace flashjit::cli {

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

namespace {
bool listed(const std::vector<std::string>& names, const std::string& n) {
  for (const auto& x : names)
    if (x == n) return true;
  return false;
}

std::string options_list(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::string s;
  for (const auto* v : {&a, &b})
    for (const auto& n : *v) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}
}  // namespace

Args parse_args(const std::string& command, const std::vector<std::string>& argv,
                const std::vector<std::string>& value_options,
                const std::vector<std::string>& flag_options) {
  Args args;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      args.positional.push_back(a);
      continue;
    }
    const auto eq = a.find('=');
    const std::string name = a.substr(0, eq);
    if (listed(value_options, name)) {
      if (eq != std::string::npos) {
        args.values[name] = a.substr(eq + 1);
      } else if (i + 1 < argv.size()) {
        args.values[name] = argv[++i];
      } else {
        throw UsageError(fmt::format("option {} needs a value", name));
      }
    } else if (listed(flag_options, name) && eq == std::string::npos) {
      args.flags.insert(name);
    } else {
      throw UsageError(fmt::format("unknown option '{}' for '{}'; options: {}", a, command,
                                   options_list(value_options, flag_options)));
    }
  }
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
