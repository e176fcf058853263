// The CLI's per-command help, the --cache-dir option and its deprecated --dir alias, and the
// "did you mean" suggestions for mistyped commands and options. The CLI runs as a separate
// process (tests/support/cli_runner.h); edit_distance/suggest are compiled in directly.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "suggest.h"

namespace {

using fjtest::has;
using fjtest::run_cli;

// stdout and stderr apart, to check which stream a message is on.
struct SplitResult {
  int status = -1;
  std::string out, err;
};

SplitResult run_split(const std::vector<std::string>& args) {
  fjtest::ScratchDir tmp("cli-help");
  const std::string out = (tmp.path / "out").string(), err = (tmp.path / "err").string();
  std::string cmd = fjtest::shell_quote(FLASHJIT_CLI_PATH);
  for (const auto& a : args) cmd += " " + fjtest::shell_quote(a);
  cmd += " >" + fjtest::shell_quote(out) + " 2>" + fjtest::shell_quote(err);
  SplitResult r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

struct Command {
  std::string name;
  std::vector<std::string> options;  // every option the help must explain
};

const std::vector<Command> kCommands = {
    {"compile", {"--spec SPEC", "--arch ARCH", "--kind KIND", "--cache-dir DIR", "--no-cache"}},
    {"emit", {"--spec SPEC", "--arch ARCH", "--kind KIND"}},
    {"ir", {"--spec SPEC", "--arch ARCH", "--after PASS", "--kind KIND"}},
    {"tune", {"--specs FILE", "--shapes SHAPES", "--arch ARCH", "--cache-dir DIR", "--compile-only", "--forward-only"}},
    {"check", {"--spec SPEC", "--shape SHAPE", "--seed N", "--forward-only", "--deterministic", "--cache-dir DIR"}},
    {"mask", {"--spec SPEC", "--sq N", "--sk N", "--png FILE"}},
    {"cache", {"--cache-dir DIR", "--dir DIR", "--verify"}},
};

// The help line of `option`: "  --arch ARCH   what it means".
std::string help_line(const std::string& help, const std::string& option) {
  const std::size_t at = help.find("\n  " + option + " ");
  if (at == std::string::npos) return "";
  const std::size_t end = help.find('\n', at + 1);
  return help.substr(at + 1, end - at - 1);
}

}  // namespace

TEST_CASE("cli help: each command prints its own usage, options and an example", "[cli][cli_help]") {
  for (const Command& c : kCommands) {
    INFO("command: " << c.name);
    const SplitResult r = run_split({c.name, "--help"});
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(has(r.out, "usage: flashjit " + c.name + " "));
    CHECK(!has(r.out, "usage: flashjit <command>"));  // not the global usage
    for (const std::string& o : c.options) {
      INFO("option: " << o);
      const std::string line = help_line(r.out, o);
      // Listed, one line, with an explanation after the name.
      REQUIRE(!line.empty());
      CHECK(line.size() > o.size() + 6);
    }
    CHECK(has(r.out, "  -h, --help"));
    CHECK(has(r.out, "example"));
    CHECK(has(r.out, "  flashjit " + c.name));
    // -h, `help COMMAND` and --help anywhere on the line give the same text.
    CHECK(run_split({c.name, "-h"}).out == r.out);
    CHECK(run_split({"help", c.name}).out == r.out);
    CHECK(run_split({c.name, "--spec", "{}", "--help"}).out == r.out);
  }
}

TEST_CASE("cli help: the lists in the help come from the library", "[cli][cli_help]") {
  const std::string compile = run_cli({"compile", "--help"}).out;
  CHECK(has(help_line(compile, "--kind KIND"), "bwd_dkdv"));
  CHECK(has(help_line(compile, "--kind KIND"), "all"));
  const std::string ir = run_cli({"ir", "--help"}).out;
  CHECK(has(help_line(ir, "--after PASS"), "lower"));
  CHECK(has(help_line(ir, "--after PASS"), "classify_tiles"));
  CHECK(has(help_line(ir, "--after PASS"), "check_legality"));
  // The deprecated alias says so.
  CHECK(has(help_line(run_cli({"cache", "--help"}).out, "--dir DIR"), "deprecated"));
}

TEST_CASE("cli help: the global usage lists every command", "[cli][cli_help]") {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
    const SplitResult r = run_split(args);
    CHECK(r.status == 0);
    CHECK(has(r.out, "usage: flashjit <command> [options]"));
    for (const Command& c : kCommands) CHECK(has(r.out, "  " + c.name + " "));
    CHECK(has(r.out, "flashjit help COMMAND"));
  }
  const SplitResult r = run_split({"help", "compil"});
  CHECK(r.status == 2);
  CHECK(has(r.err, "unknown command 'compil'; did you mean 'compile'?"));
  CHECK(run_split({"help", "compile", "extra"}).status == 2);
}

TEST_CASE("cli: --cache-dir on cache, --dir kept as a deprecated alias", "[cli][cli_help]") {
  fjtest::ScratchDir dir("cli-alias");
  const SplitResult canonical = run_split({"cache", "stats", "--cache-dir", dir.path.string()});
  CHECK(canonical.status == 0);
  CHECK(has(canonical.out, "directory: " + dir.path.string()));
  CHECK(canonical.err.empty());

  const SplitResult alias = run_split({"cache", "stats", "--dir", dir.path.string()});
  CHECK(alias.status == 0);
  CHECK(alias.out == canonical.out);  // same meaning
  // One line, on stderr (stdout stays the command's output for scripts).
  CHECK(alias.err == "flashjit: note: --dir is deprecated; use --cache-dir (same meaning)\n");
  CHECK(run_split({"cache", "stats", "--dir=" + dir.path.string()}).out == canonical.out);

  const SplitResult both = run_split({"cache", "stats", "--dir", dir.path.string(), "--cache-dir", "/tmp/x"});
  CHECK(both.status == 2);
  CHECK(has(both.err, "--dir and --cache-dir name the same option"));

  // compile takes it too: its entry goes under DIR.
  fjtest::ScratchDir cdir("cli-compile-dir");
  const SplitResult c = run_split({"compile", "--spec", R"({"dtype":"fp16","head_dim":64})", "--arch", "sm_80",
                                   "--cache-dir", cdir.path.string()});
  CHECK(c.status == 0);
  CHECK(has(c.out, "entry:         " + cdir.path.string() + "/"));
  CHECK(has(run_cli({"cache", "list", "--cache-dir", cdir.path.string()}).out, "1 entry in"));
}

TEST_CASE("cli: mistyped commands and options get a suggestion, exit 2 on stderr", "[cli][cli_help]") {
  SplitResult r = run_split({"compil"});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(has(r.err, "unknown command 'compil'; did you mean 'compile'?"));
  CHECK(has(r.err, "commands: compile, emit, ir, tune, check, mask, cache, help"));

  r = run_split({"compile", "--arhc", "sm_90a"});
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(has(r.err, "unknown option '--arhc' for 'compile'; did you mean '--arch'?"));
  // The allowed options, and where to read about them.
  CHECK(has(r.err, "options: --spec SPEC, --arch ARCH, --kind KIND, --cache-dir DIR, --no-cache, -h, --help"));
  CHECK(has(r.err, "(run 'flashjit compile --help' for usage)"));

  r = run_split({"cache", "list", "--cache-dri", "/tmp"});
  CHECK(r.status == 2);
  CHECK(has(r.err, "did you mean '--cache-dir'?"));
  r = run_split({"tune", "--compile", "--arch", "sm_80"});  // a prefix of one option
  CHECK(has(r.err, "did you mean '--compile-only'?"));
  r = run_split({"emti"});
  CHECK(has(r.err, "did you mean 'emit'?"));
  r = run_split({"ir", "--spec={}", "--afterr=lower"});  // the =VALUE form too
  CHECK(has(r.err, "unknown option '--afterr=lower' for 'ir'; did you mean '--after'?"));

  // Nothing near: no suggestion, still the list.
  r = run_split({"frobnicate"});
  CHECK(r.status == 2);
  CHECK(!has(r.err, "did you mean"));
  CHECK(has(r.err, "commands: compile"));
  r = run_split({"emit", "--zzzzzz"});
  CHECK(r.status == 2);
  CHECK(!has(r.err, "did you mean"));
  CHECK(has(r.err, "options: --spec SPEC, --arch ARCH, --kind KIND, -h, --help"));

  // Before the command: the global options.
  r = run_split({"--verison"});
  CHECK(r.status == 2);
  CHECK(has(r.err, "unknown option '--verison'; did you mean '--version'? options before a command: -h, --help"));

  // A flag given a value.
  r = run_split({"compile", "--no-cache=1"});
  CHECK(r.status == 2);
  CHECK(has(r.err, "option --no-cache takes no value"));
}

TEST_CASE("suggest: edit distance with transpositions, prefixes, no far guesses", "[cli][cli_help]") {
  using flashjit::cli::edit_distance;
  using flashjit::cli::suggest;
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("arhc", "arch") == 1);      // one transposition
  CHECK(edit_distance("compil", "compile") == 1);  // one insertion
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("ca", "abc") == 3);  // optimal string alignment: no edit of a transposed pair

  const std::vector<std::string> commands = {"compile", "emit", "ir", "tune", "mask", "cache"};
  CHECK(suggest("compil", commands) == std::optional<std::string>("compile"));
  CHECK(suggest("emti", commands) == std::optional<std::string>("emit"));
  CHECK(suggest("tun", commands) == std::optional<std::string>("tune"));
  CHECK(suggest("cahce", commands) == std::optional<std::string>("cache"));
  CHECK(suggest("c", commands) == std::nullopt);  // a prefix of two: ambiguous, and too short to fix
  CHECK(suggest("x", commands) == std::nullopt);  // distance 2 to "ir", but the word is 1 char long
  CHECK(suggest("frobnicate", commands) == std::nullopt);
  CHECK(suggest("compile", commands) == std::nullopt);  // not a typo

  const std::vector<std::string> options = {"--spec", "--sq", "--sk", "--png"};
  CHECK(suggest("--sepc", options) == std::optional<std::string>("--spec"));
  CHECK(suggest("--s", options) == std::nullopt);  // a prefix of three
  CHECK(suggest("--", options) == std::nullopt);
  CHECK(suggest("--sx", options) == std::optional<std::string>("--sq"));  // a tie: the first
}
