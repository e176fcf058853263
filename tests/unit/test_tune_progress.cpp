// flashjit tune's progress display (cli/progress.cpp, compiled in): the line, its ETA, and
// that nothing is drawn when stderr is not a terminal; and the tuner's progress hook,
// called once per compiled candidate on this machine too (compiles need no GPU).
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/autotune.h"
#include "flashjit/spec.h"
#include "progress.h"
#include "tuning_internal.h"

using fjtest::has;
using flashjit::cli::TuneProgressState;

TEST_CASE("tune progress: the line and its ETA", "[cli][tune_progress]") {
  using namespace flashjit::cli;
  TuneProgressState s;
  s.spec = 1, s.specs = 2, s.shape = 1, s.shapes = 3, s.candidates = 12;
  CHECK(format_progress(s) == "[spec 1/2, shape 1/3] compiling 0/12 candidates, timing 0/12, ETA ?");
  // Compiling: 5 in 2 s, 7 left at that rate.
  s.compiled = 5, s.compile_s = 2.0;
  CHECK(eta_seconds(s).value() == Approx(2.8));
  CHECK(format_progress(s) == "[spec 1/2, shape 1/3] compiling 5/12 candidates, timing 0/12, ETA 3 s");
  // Timing: the compile rate no longer counts; none timed yet, so no rate.
  s.compiled = 12, s.compile_s = 9.0;
  CHECK(!eta_seconds(s));
  s.timed = 3, s.timing_s = 1.2;
  CHECK(eta_seconds(s).value() == Approx(3.6));
  CHECK(format_progress(s) == "[spec 1/2, shape 1/3] compiling 12/12 candidates, timing 3/12, ETA 4 s");
  s.timed = 12;
  CHECK(eta_seconds(s).value() == 0.0);
  s.candidates = 0;
  CHECK(!eta_seconds(s));

  CHECK(format_eta(std::nullopt) == "?");
  CHECK(format_eta(0.4) == "0 s");
  CHECK(format_eta(59.4) == "59 s");
  CHECK(format_eta(65.0) == "1 min 05 s");
  CHECK(format_eta(7380.0) == "2 h 03 min");
  CHECK(format_eta(-1.0) == "?");
}

TEST_CASE("tune progress: drawn with \\r on a terminal only, the pending stdout text put back", "[cli][tune_progress]") {
  using flashjit::cli::ProgressLine;
  fjtest::ScratchDir dir("progress");
  const std::string path = (dir.path / "err").string();
  auto slurp = [&] {
    std::string text;
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
      char buf[512];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
      std::fclose(f);
    }
    return text;
  };
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    {
      ProgressLine line(f, /*tty=*/false, "[1/1] x ... ");
      line.draw("[spec 1/1, shape 1/1] compiling 1/2 candidates, timing 0/2, ETA 1 s");
      line.finish();
    }
    std::fclose(f);
    CHECK(slurp().empty());  // not a terminal: nothing at all
  }
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    {
      ProgressLine line(f, /*tty=*/true, "[1/1] x ... ");
      line.draw("first");
      line.draw("second");
      line.finish();
      line.finish();  // once only
    }
    std::fclose(f);
    // (A file has no window size: 80 columns.)
    CHECK(slurp() == "\r\033[Kfirst\r\033[Ksecond\r\033[K[1/1] x ... ");
  }
}

TEST_CASE("tune progress: the tuner reports each compiled candidate, failed ones too", "[cli][tune_progress]") {
  // Compiles need NVRTC, not a GPU (FLASHJIT_CACHE_DIR: the unit tests' scratch cache).
  flashjit::AttentionSpec spec;
  spec.dtype = flashjit::DType::bf16;
  spec.head_dim = 64;
  spec.mask.kind = flashjit::MaskKind::causal;
  const std::vector<flashjit::TileConfig> all = flashjit::tile_candidates(spec, "sm_80");
  REQUIRE(all.size() >= 2);
  // The heuristic, another legal tile, and one whose compile fails (block_n 7 is not a tile).
  flashjit::TileConfig bad = all[1];
  bad.block_n = 7;
  const std::vector<flashjit::TileConfig> tiles{all[0], all[1], bad};
  std::atomic<int> calls{0};
  const std::vector<std::string> skip =
      flashjit::detail::compile_candidates(spec, tiles, "sm_80", 0, nullptr, [&] { ++calls; });
  CHECK(calls == 3);
  REQUIRE(skip.size() == 3);
  CHECK(skip[0].empty());
  CHECK(!skip[2].empty());
}

TEST_CASE("tune progress: compile-only tune prints no progress when stderr is not a terminal", "[cli][tune_progress]") {
  fjtest::ScratchDir dir("tune-progress");
  const std::string specs = (dir.path / "specs.jsonl").string();
  if (FILE* f = std::fopen(specs.c_str(), "wb")) {
    std::fputs(R"({"dtype":"bf16","head_dim":64})" "\n", f);
    std::fclose(f);
  }
  const fjtest::CliResult r = fjtest::run_cli({"tune", "--specs", specs, "--shapes", "b=1,sq=128", "--compile-only",
                                               "--arch", "sm_80", "--forward-only", "--cache-dir",
                                               (dir.path / "cache").string()},
                                              fjtest::kNoGpuEnv);
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(!has(r.out, "\r"));
  CHECK(!has(r.out, "[spec "));
}
