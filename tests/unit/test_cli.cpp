// The flashjit command-line tool, run as a separate process (no GPU needed: compile
// tests pass --arch, and NVRTC works without a device).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"

namespace fs = std::filesystem;

namespace {

// The shared CLI runner and scratch directories (tests/support/cli_runner.h).
using Result = fjtest::CliResult;
using fjtest::has;
using fjtest::run_cli;
std::string quote(const std::string& s) { return fjtest::shell_quote(s); }
struct TempDir : fjtest::ScratchDir {
  TempDir() : fjtest::ScratchDir("cli") {}
};

const std::string kCausal = R"({"dtype":"bf16","head_dim":64,"num_heads_q":4,"mask":"causal"})";

}  // namespace

TEST_CASE("cli: help, version and usage errors", "[cli]") {
  Result r = run_cli({"--help"});
  CHECK(r.status == 0);
  CHECK(has(r.out, "usage: flashjit"));
  CHECK(has(r.out, "compile"));
  CHECK(has(r.out, "cache"));

  r = run_cli({"emit", "--help"});  // emit's own usage (test_cli_help.cpp: every command's)
  CHECK(r.status == 0);
  CHECK(has(r.out, "usage: flashjit emit --spec SPEC"));

  r = run_cli({"--version"});
  CHECK(r.status == 0);
  CHECK(has(r.out, "flashjit " FLASHJIT_VERSION));
  CHECK(has(r.out, "NVRTC"));

  r = run_cli({});
  CHECK(r.status == 2);
  CHECK(has(r.out, "missing command"));

  r = run_cli({"frobnicate"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "unknown command 'frobnicate'"));

  r = run_cli({"emit", "--spec", kCausal, "--bogus"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "unknown option '--bogus'"));

  r = run_cli({"emit"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "missing --spec"));

  r = run_cli({"emit", "--spec"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "--spec needs a value"));

  r = run_cli({"ir", "--spec", kCausal, "--after", "no_such_pass"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "no_such_pass"));
  CHECK(has(r.out, "allowed: lower, classify_tiles"));

  r = run_cli({"cache", "explode"});
  CHECK(r.status == 2);
  CHECK(has(r.out, "allowed: list, stats, clear"));
}

TEST_CASE("cli: spec errors name the field and exit 1", "[cli]") {
  Result r = run_cli({"compile", "--spec", R"({"dtype":"bf16","head_dim":0})", "--arch", "sm_80"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "flashjit: error: spec.head_dim: 0 is not supported"));
  CHECK(has(r.out, "allowed: 32, 64, 96, 128, 192, 256"));

  r = run_cli({"compile", "--spec", R"({"dtype":"fp64","head_dim":128})", "--arch", "sm_80"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "flashjit: error: spec.dtype:"));
  CHECK(has(r.out, "fp64"));

  r = run_cli({"emit", "--spec", R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"causal","left":8}})"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "spec.mask.left"));

  r = run_cli({"emit", "--spec", R"({"dtype":"bf16","head_dim":128,"extra":1})"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "spec.extra: unknown key"));

  r = run_cli({"emit", "--spec", R"({"dtype":"bf16",)"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "spec.json: parse error"));

  r = run_cli({"emit", "--spec", "/nonexistent/spec.json"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "spec file '/nonexistent/spec.json' does not exist"));

  r = run_cli({"emit", "--spec", kCausal, "--arch", "sm_12"});
  CHECK(r.status == 1);
  CHECK(has(r.out, "arch"));
  CHECK(has(r.out, "sm_12"));
}

TEST_CASE("cli: emit prints the CUDA source", "[cli]") {
  Result r = run_cli({"emit", "--spec", kCausal});
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "extern \"C\" __global__"));
  CHECK(has(r.out, "flashjit_fwd_bf16_d64"));

  // The same spec from a file (and with --arch=VALUE spelling) gives the same source.
  TempDir dir;
  const fs::path file = dir.path / "spec.json";
  std::ofstream(file) << kCausal << "\n";
  Result f = run_cli({"emit", "--spec", file.string(), "--arch=sm_80"});
  REQUIRE(f.status == 0);
  CHECK(f.out == r.out);
}

TEST_CASE("cli: --kind block_mask emits and compiles the block-mask builder", "[cli][block_mask]") {
  Result e = run_cli({"emit", "--kind", "block_mask", "--spec", kCausal});
  REQUIRE(e.status == 0);
  CHECK(has(e.out, "flashjit::block_mask_cells<128>"));
  CHECK(has(e.out, "// The block mask of: kv_idx <= q_idx + (seqlen_k - seqlen_q)"));
  CHECK(run_cli({"emit", "--kind=fwd", "--spec", kCausal}).out == run_cli({"emit", "--spec", kCausal}).out);
  Result c = run_cli({"compile", "--kind", "block_mask", "--spec", kCausal, "--arch", "sm_80", "--no-cache"});
  INFO(c.out);
  REQUIRE(c.status == 0);
  CHECK(has(c.out, "kernel:        flashjit_block_mask_"));
  CHECK(has(c.out, "threads:       128"));
  Result bad = run_cli({"emit", "--kind", "bwd", "--spec", kCausal});
  CHECK(bad.status == 2);
  CHECK(has(bad.out, "allowed: fwd, block_mask"));
}

// --kind all: every kernel of the spec, the forward with the spec's tile, the backward's with
// their own (heuristic) tiles; ir takes --kind fwd (or all) only.
TEST_CASE("cli: --kind all emits and compiles every kernel of the spec", "[cli][backward]") {
  const std::string tiled = R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"causal"},"tile":{"block_m":128,"block_n":64,"warps":4,"stages":2}})";
  Result e = run_cli({"emit", "--kind", "all", "--spec", tiled, "--arch", "sm_90a"});
  REQUIRE(e.status == 0);
  for (const char* k : {"fwd", "bwd_preprocess", "bwd_dkdv", "bwd_dq_convert", "bwd_dq"})
    CHECK(has(e.out, std::string("// ===== --kind ") + k + " =====\n"));
  CHECK_FALSE(has(e.out, "--kind block_mask"));  // a band: no block-mask builder
  CHECK(has(e.out, "flashjit::bwd_dkdv_sm90<T, Variant>(params, smem);"));
  Result c = run_cli({"compile", "--kind", "all", "--spec", tiled, "--arch", "sm_80", "--no-cache"});
  INFO(c.out);
  REQUIRE(c.status == 0);
  CHECK(has(c.out, "tile:          block_m=128 block_n=64 warps=4 stages=2 mma=mma_sync"));  // the forward's
  CHECK(has(c.out, "kernel:        flashjit_bwd_dq_bf16_d64x64_causal_br_"));
  const std::string doc =
      R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"custom","expr":"doc[q_idx] == doc[kv_idx]"},"captures":[{"name":"doc","dtype":"i32","rank":1}]})";
  CHECK(has(run_cli({"emit", "--kind", "all", "--spec", doc}).out, "// ===== --kind block_mask =====\n"));
  Result ir = run_cli({"ir", "--kind", "bwd_dkdv", "--spec", tiled});
  CHECK(ir.status == 2);
  CHECK(has(ir.out, "only the forward kernel (fwd) has a tile IR"));
  CHECK(run_cli({"ir", "--kind", "all", "--spec", tiled}).status == 0);
  CHECK(has(run_cli({"emit", "--kind", "bwd", "--spec", tiled}).out, "bwd_dq_convert, bwd_dq, all"));
}

TEST_CASE("cli: ir after lowering and after the passes", "[cli]") {
  Result lowered = run_cli({"ir", "--spec", kCausal, "--after", "lower"});
  REQUIRE(lowered.status == 0);
  CHECK(has(lowered.out, "kernel @"));
  CHECK_FALSE(has(lowered.out, "async_copy"));  // pipeline_loads has not run

  Result full = run_cli({"ir", "--spec", kCausal});
  REQUIRE(full.status == 0);
  CHECK(has(full.out, "kernel @"));
  CHECK(full.out != lowered.out);

  Result last = run_cli({"ir", "--spec", kCausal, "--after", "check_legality"});
  REQUIRE(last.status == 0);
  CHECK(last.out == full.out);
}

TEST_CASE("cli: compile (NVRTC) fills and hits the cache", "[cli]") {
  TempDir dir;
  const std::string env = "FLASHJIT_CACHE_DIR=" + quote(dir.path.string());
  Result first = run_cli({"compile", "--spec", kCausal, "--arch", "sm_80"}, env);
  INFO(first.out);
  REQUIRE(first.status == 0);
  CHECK(has(first.out, "kernel:        flashjit_fwd_bf16_d64"));
  CHECK(has(first.out, "arch:          sm_80"));
  CHECK(has(first.out, "cache hit:     no"));
  CHECK(has(first.out, "registers:"));
  CHECK(has(first.out, "threads:"));
  CHECK(has(first.out, "tile:          block_m="));
  CHECK(has(first.out, dir.path.string()));  // the entry path is in the cache dir

  Result second = run_cli({"compile", "--spec", kCausal, "--arch", "sm_80"}, env);
  REQUIRE(second.status == 0);
  CHECK(has(second.out, "cache hit:     yes"));

  Result uncached = run_cli({"compile", "--spec", kCausal, "--arch", "sm_80", "--no-cache"}, env);
  REQUIRE(uncached.status == 0);
  CHECK(has(uncached.out, "cache hit:     no"));
  CHECK(has(uncached.out, "entry:         (not cached)"));

  Result list = run_cli({"cache", "list", "--cache-dir", dir.path.string()});
  REQUIRE(list.status == 0);
  CHECK(has(list.out, "flashjit_fwd_bf16_d64"));
  CHECK(has(list.out, "1 entry in"));

  Result stats = run_cli({"cache", "stats", "--cache-dir", dir.path.string()});
  REQUIRE(stats.status == 0);
  CHECK(has(stats.out, "entries:   1"));
  CHECK(has(stats.out, "corrupt:   0"));

  Result clear = run_cli({"cache", "clear", "--cache-dir", dir.path.string()});
  REQUIRE(clear.status == 0);
  CHECK(has(clear.out, "removed 1 entry"));
  CHECK(has(run_cli({"cache", "stats", "--cache-dir", dir.path.string()}).out, "entries:   0"));
}

TEST_CASE("cli: cache commands on an empty directory", "[cli]") {
  TempDir dir;
  Result r = run_cli({"cache", "list", "--cache-dir", dir.path.string()});
  CHECK(r.status == 0);
  CHECK(has(r.out, "no entries in"));
  r = run_cli({"cache", "clear", "--cache-dir", dir.path.string()});
  CHECK(r.status == 0);
  CHECK(has(r.out, "removed 0 entries"));
}
