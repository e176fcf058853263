// The autotuner: time every legal tile config for a spec on the caller's tensors and keep
// the fastest. forward() runs it on the first call for an untiled spec and shape bucket
// (unless FLASHJIT_AUTOTUNE=0) and stores the winner in the tuning database; the
// `flashjit tune` command runs it offline.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"

namespace flashjit {

// The configs worth timing for (spec, arch): block_m {64,128} x block_n {32,64,128} x
// warps {4,8} x stages {2,3}, kept when the tile validates for the spec and the legality
// pass accepts it on `arch` (shared memory, registers). The heuristic default comes
// first (so it wins ties), the rest in that fixed order. No GPU needed.
std::vector<TileConfig> tile_candidates(const AttentionSpec& spec, const std::string& arch);
// Whether tile_candidates() includes the warp-specialised (pipeline = tma_ws) tiles on sm_90a.
bool tma_ws_candidates_enabled();

// The bwd_dkdv tiles worth timing for (spec, arch): the heuristic first (default_bwd_tile),
// then on sm_90a the wgmma shapes (block_m 64/128, one or two warpgroups, 1 or 2 stages),
// then FlashAttention-2's mma.sync shapes, each kept when check_bwd_tile accepts it. backward()
// times them on the first call of an untiled spec and shape bucket (unless
// FLASHJIT_AUTOTUNE=0) and stores the winner under kind "bwd_dkdv". No GPU needed.
std::vector<TileConfig> bwd_tile_candidates(const AttentionSpec& spec, const std::string& arch);

struct TuneResult {
  TuningKey key;
  TileConfig best;
  double best_ms = 0.0;                     // the winner's median launch time
  std::vector<CandidateTiming> candidates;  // every candidate, in tile_candidates() order
  CompiledKernel winner;                    // the winner's kernel (its cache key and entry)

  TuningRecord record() const;  // what the tuning database stores
};

// How far one autotune() call is, for a progress display (`flashjit tune` draws one).
struct TuneProgress {
  std::size_t candidates = 0;  // tiles considered (tile_candidates())
  std::size_t compiled = 0;    // of them, compiled so far (or failed to compile)
  std::size_t timed = 0;       // of them, timed so far (or skipped: failed, spills, ...)
};

struct TuneOptions {
  // Empty: no reports. Else called once with nothing done yet, after each candidate's
  // compile (from the compiling worker threads) and after each candidate's timing (from the
  // calling thread). The calls never overlap, and must not throw; a compile-phase call that
  // throws counts as that candidate's compile error.
  std::function<void(const TuneProgress&)> progress;
};

// Compiles every candidate in parallel, then times each on these tensors with CUDA events
// on `stream`: 2 warm-up launches, then 3 to 50 timed launches (about 20 ms in all), the
// median counts. q, k and v are only read; o and lse are overwritten with some candidate's
// (correct) output. Candidates that fail to compile or launch are recorded as failed and
// skipped. Throws CudaError when no GPU is present or no candidate could be timed; stores
// nothing (forward() and the CLI write the database). options.progress, if set, is told how
// far it is (TuneOptions).
TuneResult autotune(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
                    const TensorView& o, const TensorView* lse, CUstream_st* stream,
                    const std::vector<TensorView>& captures = {}, const TuneOptions& options = {});

}  // namespace flashjit
