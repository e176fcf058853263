// CompileOptions::quick: NVRTC's fast-compile mode for background tuning's interim kernel.
// It must compile a working cubin, never enter either cache (a slower kernel must not be
// found later as the variant's kernel), and give way to the fully optimised kernel when a
// cache already holds that one.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/runtime.h"
#include "flashjit/spec.h"

namespace fs = std::filesystem;

namespace {

std::size_t files_under(const fs::path& dir) {
  std::size_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) ++n;
  return n;
}

}  // namespace

TEST_CASE("nvrtc_options(quick) adds only the fast-compile flag", "[nvrtc][quick]") {
  const std::vector<std::string> full = flashjit::nvrtc_options("sm_90a");
  std::vector<std::string> quick = flashjit::nvrtc_options("sm_90a", true);
  CHECK(std::find(full.begin(), full.end(), "--Ofast-compile=max") == full.end());
  REQUIRE(std::find(quick.begin(), quick.end(), "--Ofast-compile=max") != quick.end());
  quick.erase(std::find(quick.begin(), quick.end(), "--Ofast-compile=max"));
  CHECK(quick == full);
}

TEST_CASE("a quick compile is not cached, and a cached full kernel is used instead", "[nvrtc][quick]") {
  fjtest::ScratchDir dir("quick-compile");
  fjtest::ScopedEnv cache("FLASHJIT_CACHE_DIR", (dir.path / "cache").string());
  // A spec of its own (window 77): no other test's memory cache holds its kernel.
  const flashjit::AttentionSpec spec = flashjit::spec_from_json(
      R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"sliding_window","left":77,"right":0}})");
  flashjit::CompileOptions quick;
  quick.arch = "sm_90a";
  quick.quick = true;

  const flashjit::RuntimeStats before = flashjit::runtime_stats();
  const flashjit::CompiledKernel q1 = flashjit::compile(spec, quick);
  CHECK_FALSE(q1.cache_hit);
  CHECK(q1.compile_ms > 0.0);
  CHECK_FALSE(q1.image.empty());
  CHECK(q1.cache_path.empty());
  CHECK(files_under(dir.path / "cache") == 0);
  const flashjit::CompiledKernel q2 = flashjit::compile(spec, quick);  // compiled again: not in memory either
  CHECK_FALSE(q2.cache_hit);
  CHECK(flashjit::runtime_stats().compiles == before.compiles + 2);

  flashjit::CompileOptions full;
  full.arch = "sm_90a";
  const flashjit::CompiledKernel f = flashjit::compile(spec, full);
  CHECK_FALSE(f.cache_hit);
  CHECK(f.cache_key != q1.cache_key);  // the options are part of the key
  CHECK(files_under(dir.path / "cache") >= 1);
  const flashjit::CompiledKernel q3 = flashjit::compile(spec, quick);  // the full kernel is cached now
  CHECK(q3.cache_hit);
  CHECK(q3.cache_key == f.cache_key);
  CHECK(q3.image == f.image);
  CHECK(flashjit::runtime_stats().compiles == before.compiles + 3);
}
