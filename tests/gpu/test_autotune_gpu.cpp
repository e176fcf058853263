// The autotuner on a GPU, through forward(): the first call for an untiled spec tunes and
// stores a record, later calls neither tune nor read the database, the tuned kernel is
// correct against a float64 reference, a stored record is used without tuning, and
// FLASHJIT_AUTOTUNE=0 falls back to the heuristic. Skipped, with the reason printed, where
// no GPU exists.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/autotune.h"
#include "flashjit/disk_cache.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"
#include "gpu_harness.h"

using flashjit::DType;

namespace {

constexpr int kB = 2, kH = 4, kS = 1000, kD = 64;

// A bf16 d64 causal spec. Each test case uses its own softmax scale, so that its key is
// new to this process: forward() remembers decisions per key for the process's life.
flashjit::AttentionSpec spec_with_scale(double scale) {
  flashjit::AttentionSpec s;
  s.dtype = DType::bf16;
  s.head_dim = kD;
  s.num_heads_q = kH;
  s.mask.kind = flashjit::MaskKind::causal;
  s.softmax_scale = scale;
  s.return_lse = true;
  return s;
}

// Random inputs on the device and the views forward() takes (BHSD).
struct Problem {
  std::vector<uint16_t> q, k, v;
  fjtest::DeviceBuffer dq, dk, dv, dout, dlse;
  flashjit::TensorView tq, tk, tv, to, tl;

  explicit Problem(uint32_t seed)
      : q(size_t(kB) * kH * kS * kD), k(q.size()), v(q.size()), dq(q.size() * 2), dk(q.size() * 2),
        dv(q.size() * 2), dout(q.size() * 2), dlse(size_t(kB) * kH * kS * 4) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (auto* t : {&q, &k, &v})
      for (auto& x : *t) x = fjtest::to_bits(normal(rng), DType::bf16);
    dq.upload(q.data());
    dk.upload(k.data());
    dv.upload(v.data());
    const auto et = flashjit::ElemType::bf16;
    tq = flashjit::TensorView::bhsd(dq.data(), et, kB, kH, kS, kD);
    tk = flashjit::TensorView::bhsd(dk.data(), et, kB, kH, kS, kD);
    tv = flashjit::TensorView::bhsd(dv.data(), et, kB, kH, kS, kD);
    to = flashjit::TensorView::bhsd(dout.data(), et, kB, kH, kS, kD);
    tl = flashjit::TensorView::lse(static_cast<float*>(dlse.data()), kB, kH, kS);
  }

  // Poisons the outputs (NaN), runs forward and waits for it.
  void run(const flashjit::AttentionSpec& spec) {
    dout.poison();
    dlse.poison();
    flashjit::forward(spec, tq, tk, tv, to, &tl, nullptr);
    auto& drv = flashjit::CudaDriver::get();
    drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after forward");
  }

  // Largest relative error (Frobenius over sampled rows) and LSE error against float64.
  std::pair<double, double> errors(const flashjit::AttentionSpec& spec) const {
    std::vector<uint16_t> out(q.size());
    std::vector<float> lse(size_t(kB) * kH * kS);
    dout.download(out.data());
    dlse.download(lse.data());
    auto at = [](int64_t b, int64_t h, int64_t s, int c) { return ((b * kH + h) * kS + s) * kD + c; };
    double err2 = 0, ref2 = 0, lse_err = 0;
    std::vector<double> ref;
    for (int64_t b = 0; b < kB; ++b)
      for (int64_t h = 0; h < kH; ++h)
        for (int64_t i : {0, 1, 63, 64, 127, 128, 500, 998, 999}) {
          auto qf = [&](int c) { return fjtest::from_bits(q[at(b, h, i, c)], DType::bf16); };
          auto kf = [&](int64_t j, int c) { return fjtest::from_bits(k[at(b, h, j, c)], DType::bf16); };
          auto vf = [&](int64_t j, int c) { return fjtest::from_bits(v[at(b, h, j, c)], DType::bf16); };
          auto vis = [](int64_t ii, int64_t j) { return j <= ii; };  // causal, sq == sk
          const double ref_lse =
              fjtest::reference_row(i, kS, kD, kD, spec.effective_scale(), qf, kf, vf, vis, ref);
          lse_err = std::max(lse_err, std::abs(lse[(b * kH + h) * kS + i] - ref_lse));
          for (int c = 0; c < kD; ++c) {
            const double got = fjtest::from_bits(out[at(b, h, i, c)], DType::bf16);
            if (!std::isfinite(got)) return {INFINITY, INFINITY};
            err2 += (got - ref[c]) * (got - ref[c]);
            ref2 += ref[c] * ref[c];
          }
        }
    return {std::sqrt(err2 / ref2), lse_err};
  }
};

flashjit::TuningKey key_for(const flashjit::AttentionSpec& spec) {
  return flashjit::make_tuning_key(spec, flashjit::shape_bucket(kB, kH, kS, kS), flashjit::current_device_info());
}

}  // namespace

TEST_CASE("autotune: forward tunes once, stores the record and is correct", "[gpu][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  fjtest::ScratchDir cache("autotune-gpu");
  fjtest::ScopedEnv cache_env("FLASHJIT_CACHE_DIR", cache.path.string());
  fjtest::ScopedEnv tune_env("FLASHJIT_AUTOTUNE", "1");
  fjtest::ScopedEnv mode_env("FLASHJIT_TUNE_MODE", "blocking");  // tuned inside the first call
  const auto spec = spec_with_scale(0.11);
  const std::string arch = flashjit::current_device_info().arch;
  Problem p(4242);

  const flashjit::RuntimeStats s0 = flashjit::runtime_stats();
  p.run(spec);
  const flashjit::RuntimeStats s1 = flashjit::runtime_stats();
  CHECK(s1.tunings == s0.tunings + 1);
  CHECK(s1.tuning_db_hits == s0.tuning_db_hits);

  // The record: every candidate listed, the winner the fastest that ran.
  const auto rec = flashjit::TuningDb(cache.path).lookup(key_for(spec));
  REQUIRE(rec);
  const auto candidates = flashjit::tile_candidates(spec, arch);
  REQUIRE(rec->candidates.size() == candidates.size());
  double fastest = std::numeric_limits<double>::infinity();
  int timed = 0, pruned = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = rec->candidates[i];
    INFO(flashjit::to_string(c.tile) << (c.ok ? "" : " failed: " + c.error));
    CHECK(c.tile == candidates[i]);
    if (!c.ok) {  // only a spilling or wgmma-serialising candidate may be left out, never the heuristic
      CHECK(i > 0);
      CHECK(c.error.rfind("not timed: ", 0) == 0);
      ++pruned;
      continue;
    }
    ++timed;
    CHECK(c.median_ms > 0);
    CHECK(c.repetitions >= 3);
    CHECK(c.repetitions <= 50);
    fastest = std::min(fastest, c.median_ms);
  }
  CHECK(timed + pruned == static_cast<int>(candidates.size()));  // every other legal candidate ran
  CHECK(rec->median_ms == fastest);
  std::printf("autotune on %s: %d candidates timed, %d pruned, winner %s at %.4f ms (heuristic %s)\n",
              flashjit::current_device_info().gpu_name.c_str(), timed, pruned, flashjit::to_string(rec->tile).c_str(),
              rec->median_ms, flashjit::to_string(candidates.front()).c_str());

  // Second call: the in-process decision, so no tuning, no database read, no compile.
  p.run(spec);
  const flashjit::RuntimeStats s2 = flashjit::runtime_stats();
  CHECK(s2.tunings == s1.tunings);
  CHECK(s2.tuning_db_hits == s1.tuning_db_hits);
  CHECK(s2.compiles == s1.compiles);

  // The tuned kernel's output against float64.
  const auto [rel, lse_err] = p.errors(spec);
  INFO("rel " << rel << " lse " << lse_err);
  CHECK(rel < 2e-2);
  CHECK(lse_err < 2e-3);

  // The winner's kernel is in the disk cache for the next process.
  auto tuned = spec;
  tuned.tile = rec->tile;
  CHECK(flashjit::DiskCache(cache.path).load(flashjit::compile(tuned, {arch, true}).cache_key));
}

// The default mode: the first call runs the heuristic without tuning and starts the
// candidates' compiles; once they are done the next call times them, stores the record and
// runs the winner; later calls neither tune nor read the database. Every call is correct.
TEST_CASE("autotune: background mode runs the heuristic first, then swaps the winner in", "[gpu][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  fjtest::ScratchDir cache("autotune-gpu");
  fjtest::ScopedEnv cache_env("FLASHJIT_CACHE_DIR", cache.path.string());
  fjtest::ScopedEnv tune_env("FLASHJIT_AUTOTUNE", "1");
  fjtest::ScopedEnv mode_env("FLASHJIT_TUNE_MODE", "background");  // the default
  const auto spec = spec_with_scale(0.15);
  const std::string arch = flashjit::current_device_info().arch;
  Problem p(2024);

  const flashjit::RuntimeStats s0 = flashjit::runtime_stats();
  p.run(spec);
  const flashjit::RuntimeStats s1 = flashjit::runtime_stats();
  CHECK(s1.tunings == s0.tunings);  // nothing timed yet
  CHECK(!flashjit::TuningDb(cache.path).lookup(key_for(spec)));
  {
    const auto [rel, lse_err] = p.errors(spec);
    CHECK(rel < 2e-2);
    CHECK(lse_err < 2e-3);
  }

  flashjit::wait_for_tuning();
  p.run(spec);  // times the compiled candidates, then runs the winner
  const flashjit::RuntimeStats s2 = flashjit::runtime_stats();
  CHECK(s2.tunings == s1.tunings + 1);
  const auto rec = flashjit::TuningDb(cache.path).lookup(key_for(spec));
  REQUIRE(rec);
  CHECK(rec->candidates.size() == flashjit::tile_candidates(spec, arch).size());
  {
    const auto [rel, lse_err] = p.errors(spec);
    INFO("winner " << flashjit::to_string(rec->tile));
    CHECK(rel < 2e-2);
    CHECK(lse_err < 2e-3);
  }

  p.run(spec);  // remembered: no tuning, no compile, no database read
  const flashjit::RuntimeStats s3 = flashjit::runtime_stats();
  CHECK(s3.tunings == s2.tunings);
  CHECK(s3.compiles == s2.compiles);
  CHECK(s3.tuning_db_hits == s2.tuning_db_hits);
  std::printf("background tuning: winner %s at %.4f ms (heuristic %s)\n", flashjit::to_string(rec->tile).c_str(),
              rec->median_ms, flashjit::to_string(flashjit::tile_candidates(spec, arch).front()).c_str());
}

TEST_CASE("autotune: a stored record is used without tuning", "[gpu][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  fjtest::ScratchDir cache("autotune-gpu");
  fjtest::ScopedEnv cache_env("FLASHJIT_CACHE_DIR", cache.path.string());
  fjtest::ScopedEnv tune_env("FLASHJIT_AUTOTUNE", "1");
  fjtest::ScopedEnv mode_env("FLASHJIT_TUNE_MODE", "blocking");  // tuned inside the first call
  const auto spec = spec_with_scale(0.12);
  const std::string arch = flashjit::current_device_info().arch;
  // A record naming the last candidate (not the heuristic), as another process might have.
  const auto candidates = flashjit::tile_candidates(spec, arch);
  flashjit::TuningRecord rec;
  rec.tile = candidates.back();
  rec.median_ms = 1.0;
  flashjit::TuningDb(cache.path).store(key_for(spec), rec);

  Problem p(777);
  const flashjit::RuntimeStats s0 = flashjit::runtime_stats();
  p.run(spec);
  const flashjit::RuntimeStats s1 = flashjit::runtime_stats();
  CHECK(s1.tunings == s0.tunings);
  CHECK(s1.tuning_db_hits == s0.tuning_db_hits + 1);
  const auto [rel, lse_err] = p.errors(spec);
  INFO(flashjit::to_string(rec.tile) << ": rel " << rel << " lse " << lse_err);
  CHECK(rel < 2e-2);
  CHECK(lse_err < 2e-3);
  // forward() compiled exactly the stored tile's kernel (into this fresh cache).
  auto stored = spec;
  stored.tile = rec.tile;
  CHECK(flashjit::DiskCache(cache.path).load(flashjit::compile(stored, {arch, true}).cache_key));
}

TEST_CASE("autotune: FLASHJIT_AUTOTUNE=0 uses the heuristic and stores nothing", "[gpu][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  fjtest::ScratchDir cache("autotune-gpu");
  fjtest::ScopedEnv cache_env("FLASHJIT_CACHE_DIR", cache.path.string());
  fjtest::ScopedEnv tune_env("FLASHJIT_AUTOTUNE", "0");
  const auto spec = spec_with_scale(0.13);
  Problem p(31337);
  const flashjit::RuntimeStats s0 = flashjit::runtime_stats();
  p.run(spec);
  const flashjit::RuntimeStats s1 = flashjit::runtime_stats();
  CHECK(s1.tunings == s0.tunings);
  CHECK(s1.tuning_db_hits == s0.tuning_db_hits);
  CHECK(!flashjit::TuningDb(cache.path).lookup(key_for(spec)));
  CHECK(flashjit::TuningDb(cache.path).list().empty());
  const auto [rel, lse_err] = p.errors(spec);
  CHECK(rel < 2e-2);
  CHECK(lse_err < 2e-3);
}

TEST_CASE("autotune: direct call times every candidate on the given tensors", "[gpu][tuning]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const auto spec = spec_with_scale(0.14);
  Problem p(99);
  const flashjit::RuntimeStats s0 = flashjit::runtime_stats();
  const flashjit::TuneResult r = flashjit::autotune(spec, p.tq, p.tk, p.tv, p.to, &p.tl, nullptr);
  CHECK(flashjit::runtime_stats().tunings == s0.tunings + 1);
  CHECK(r.key.digest() == key_for(spec).digest());
  CHECK(r.best_ms > 0);
  CHECK(r.winner.tile == r.best);
  CHECK(r.candidates.size() == flashjit::tile_candidates(spec, r.key.arch).size());
  // The last timed candidate left a correct result in o / lse.
  auto& drv = flashjit::CudaDriver::get();
  drv.check(drv.cuCtxSynchronize(), "cuCtxSynchronize after autotune");
  const auto [rel, lse_err] = p.errors(spec);
  CHECK(rel < 2e-2);
  CHECK(lse_err < 2e-3);
  // seqlen_q == 0 has nothing to time.
  auto empty_q = p.tq;
  empty_q.sizes[2] = 0;
  auto empty_o = p.to;
  empty_o.sizes[2] = 0;
  auto empty_l = p.tl;
  empty_l.sizes[2] = 0;
  REQUIRE_THROWS_AS(flashjit::autotune(spec, empty_q, p.tk, p.tv, empty_o, &empty_l, nullptr), flashjit::ArgumentError);
}
