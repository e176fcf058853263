// `flashjit tune` in compile-only mode (the CLI is run with no GPU visible, so this is the
// same on machines with and without one): exit codes, progress output, the kernel cache
// it fills, and its argument errors.
#include <fstream>
#include <string>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/disk_cache.h"
#include "flashjit/tuning.h"

namespace fs = std::filesystem;
using fjtest::has;
using fjtest::run_cli;

namespace {
void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

const std::string kSpecA = R"({"dtype":"bf16","head_dim":64,"num_heads_q":4,"mask":"causal"})";
const std::string kSpecB = R"({"dtype":"fp16","head_dim":128,"num_heads_q":8,"num_heads_kv":2,"return_lse":true})";
}  // namespace

TEST_CASE("cli tune: compile-only mode without a GPU fills the kernel cache for --arch", "[cli][tuning]") {
  fjtest::ScratchDir dir("cli-tune");
  const fs::path cache = dir.path / "cache";
  const fs::path specs = dir.path / "specs.json";
  write_text(specs, "[" + kSpecA + ", " + kSpecB + "]");
  const std::vector<std::string> args = {"tune",        "--specs",         specs.string(), "--shapes",
                                         "b=4,sq=4096,sk=4096;b=1,sq=16384", "--cache-dir",  cache.string(),
                                         "--arch",      "sm_90a",          "--forward-only"};

  fjtest::CliResult r = run_cli(args, fjtest::kNoGpuEnv);
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "not tuning: no GPU"));
  CHECK(has(r.out, "compile-only mode"));
  CHECK(has(r.out, "no tuning records are written"));
  CHECK(has(r.out, "[1/2] bf16 d64 causal h4/4"));
  CHECK(has(r.out, "[2/2] fp16 d128 none h8/2 lse"));
  CHECK(has(r.out, "compiled in"));
  CHECK(has(r.out, "2 kernel(s) for sm_90a in the cache (2 compiled, 0 already cached, 0 failed)"));

  const auto entries = flashjit::DiskCache(cache).list();
  REQUIRE(entries.size() == 2);
  for (const auto& e : entries) {
    CHECK(e.valid);
    CHECK(e.arch == "sm_90a");
  }
  CHECK(flashjit::TuningDb(cache).list().empty());

  // A second run finds both kernels; one spec per line (with comments) works the same.
  const fs::path lines = dir.path / "specs.jsonl";
  write_text(lines, "# two specs\n" + kSpecA + "\n\n" + kSpecB + "\n");
  std::vector<std::string> again = args;
  again[2] = lines.string();
  r = run_cli(again, fjtest::kNoGpuEnv);
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "(0 compiled, 2 already cached, 0 failed)"));

  // --compile-only asks for this mode explicitly (also on a machine with a GPU).
  std::vector<std::string> explicit_mode = args;
  explicit_mode.push_back("--compile-only");
  r = run_cli(explicit_mode);
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "not tuning: --compile-only"));
  CHECK(has(r.out, "2 already cached"));

  // Without --forward-only the backward's kernels (preprocess, bwd_dkdv, dQ convert) with
  // their heuristic tiles go into the cache too: 3 more per spec here.
  std::vector<std::string> both(args.begin(), args.end() - 1);
  r = run_cli(both, fjtest::kNoGpuEnv);
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "backward kernels compiled"));
  CHECK(has(r.out, "8 kernel(s) for sm_90a in the cache (6 compiled, 2 already cached, 0 failed)"));
  CHECK(flashjit::DiskCache(cache).list().size() == 8);
}

TEST_CASE("cli tune: argument errors", "[cli][tuning]") {
  fjtest::ScratchDir dir("cli-tune");
  const fs::path specs = dir.path / "specs.json";
  write_text(specs, "[" + kSpecA + "]");
  const std::string cache = (dir.path / "cache").string();
  auto tune = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"tune", "--cache-dir", cache};
    a.insert(a.end(), extra.begin(), extra.end());
    return run_cli(a, fjtest::kNoGpuEnv);
  };

  fjtest::CliResult r = tune({"--specs", specs.string(), "--shapes", "b=1,sq=128"});
  INFO(r.out);
  CHECK(r.status == 1);  // no GPU and no --arch: nothing to compile for
  CHECK(has(r.out, "pass --arch"));

  r = tune({"--shapes", "b=1,sq=128", "--arch", "sm_80"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "--specs"));
  r = tune({"--specs", specs.string(), "--arch", "sm_80"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "--shapes"));
  for (const std::string bad : {"b=1,sq=128,h=8", "b=0,sq=128", "sq=128", "b=1,sq=12x", ";"}) {
    r = tune({"--specs", specs.string(), "--shapes", bad, "--arch", "sm_80"});
    INFO(bad << ": " << r.out);
    CHECK(r.status == 2);
    CHECK(has(r.out, "--shapes"));
  }
  r = tune({"--specs", specs.string(), "--shapes", "b=1,sq=128", "--arch", "sm_12"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "sm_12"));

  r = tune({"--specs", (dir.path / "missing.json").string(), "--shapes", "b=1,sq=128", "--arch", "sm_80"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "missing.json' does not exist"));

  const fs::path bad_line = dir.path / "bad.jsonl";
  write_text(bad_line, kSpecA + "\n" + R"({"dtype":"bf16","head_dim":100})" + "\n");
  r = tune({"--specs", bad_line.string(), "--shapes", "b=1,sq=128", "--arch", "sm_80"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "bad.jsonl:2"));
  CHECK(has(r.out, "head_dim"));

  const fs::path empty = dir.path / "empty.json";
  write_text(empty, "[]");
  r = tune({"--specs", empty.string(), "--shapes", "b=1,sq=128", "--arch", "sm_80"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "holds no spec"));
}

TEST_CASE("cli tune: a warm cache means no compile in a fresh process (FLASHJIT_LOG=1)", "[cli][tuning]") {
  fjtest::ScratchDir dir("cli-tune");
  const fs::path specs = dir.path / "specs.json";
  write_text(specs, "[" + kSpecA + "]");
  const std::vector<std::string> args = {"tune",   "--specs",   specs.string(), "--shapes", "b=1,sq=256",
                                         "--arch", "sm_80", "--cache-dir",  (dir.path / "cache").string()};
  const std::string env = std::string(fjtest::kNoGpuEnv) + " FLASHJIT_LOG=1";
  fjtest::CliResult cold = run_cli(args, env);
  INFO(cold.out);
  REQUIRE(cold.status == 0);
  CHECK(has(cold.out, "flashjit: compile flashjit_fwd_bf16_d64"));
  CHECK(has(cold.out, "(cache miss, NVRTC"));

  fjtest::CliResult warm = run_cli(args, env);
  INFO(warm.out);
  REQUIRE(warm.status == 0);
  CHECK(has(warm.out, "(cache hit, disk"));
  CHECK(!has(warm.out, "cache miss"));

  // Without FLASHJIT_LOG nothing is traced (cleared explicitly: the test's own
  // environment may have it set).
  fjtest::CliResult quiet = run_cli(args, std::string(fjtest::kNoGpuEnv) + " FLASHJIT_LOG=");
  CHECK(!has(quiet.out, "flashjit: compile"));
}
