// The backward's tile decision and autotuner (autotune_backward.h): bwd_dkdv candidates
// compiled in parallel, each timed with CUDA events on the caller's tensors, the fastest
// stored in the tuning database under kind "bwd_dkdv".
#include "autotune_backward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "flashjit/autotune.h"
#include "flashjit/backward.h"
#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/nvrtc_compiler.h"
#include "launch.h"
#include "runtime_stats.h"
#include "tuning_internal.h"

namespace flashjit {

std::vector<TileConfig> bwd_tile_candidates(const AttentionSpec& spec0, const std::string& arch) {
  check_arch(arch);
  const AttentionSpec spec = without_tile(spec0.normalized());
  validate(spec);
  std::vector<TileConfig> out{default_bwd_tile(spec, arch)};
  const auto consider = [&](const TileConfig& t) {
    if (std::find(out.begin(), out.end(), t) != out.end()) return;
    try {
      check_bwd_tile(spec, t, arch);
      out.push_back(t);
    } catch (const SpecError&) {
    } catch (const LegalityError&) {
    }
  };
  if (arch == "sm_90a")
    for (int block_m : {64, 128})
      for (int warps : {8, 4})
        for (int stages : {2, 1}) consider({block_m, 16 * warps, warps, stages, MmaKind::wgmma});
  for (const TileConfig& t : std::vector<TileConfig>{{64, 128, 8, 2}, {64, 64, 8, 2}, {64, 64, 4, 2}, {128, 64, 8, 2},
                                                     {64, 128, 8, 1}, {64, 64, 8, 1}, {64, 32, 8, 1}, {32, 32, 4, 1}})
    consider(t);
  return out;
}

namespace detail {
namespace {

constexpr int kMaxReps = 30;  // timed launches per candidate at most (time_launches)

void launch_dkdv(const LoadedKernel& k, const TileConfig& t, const BwdParams& params, const ProblemShape& s,
                 CUstream stream) {
  BwdParams p = params;
  void* args[] = {&p};
  CudaDriver& drv = CudaDriver::get();
  drv.check(drv.cuLaunchKernel(k.function, static_cast<unsigned>((s.seqlen_k + t.block_n - 1) / t.block_n),
                               static_cast<unsigned>(s.heads_kv), static_cast<unsigned>(s.batch), k.info.threads, 1, 1,
                               k.info.dynamic_smem_bytes, stream, args, nullptr),
            "cuLaunchKernel(bwd_dkdv candidate)");
}

TuningRecord tune(const AttentionSpec& spec, const TuningKey& key, const BwdParams& params, const ProblemShape& s,
                  CUcontext ctx, const std::string& arch, CUstream stream) {
  ++counters().tunings;
  const std::vector<TileConfig> tiles = bwd_tile_candidates(spec, arch);
  const std::vector<std::string> errors = compile_in_parallel(tiles.size(), [&](size_t i) {
    CompileOptions o;
    o.arch = arch;
    compile_bwd_dkdv(spec, o, tiles[i]);
  });

  Events ev(kMaxReps + 1);
  TuningRecord rec;
  rec.key = key;
  int best = -1;
  {
    for (size_t i = 0; i < tiles.size(); ++i) {
      CandidateTiming c;
      c.tile = tiles[i];
      if (!errors[i].empty()) {
        c.error = errors[i];
      } else {
        try {
          AttentionSpec ts = spec;
          ts.tile = tiles[i];
          const LoadedKernel& k = loaded_module(ctx, codegen::bwd_dkdv_kernel_name(ts) + "@" + arch, [&] {
            CompileOptions o;
            o.arch = arch;
            return compile_bwd_dkdv(spec, o, tiles[i]);
          });
          c = time_launches([&] { launch_dkdv(k, tiles[i], params, s, stream); }, stream, ev);
          c.tile = tiles[i];
        } catch (const std::exception& e) {
          c.ok = false;
          c.error = e.what();
        }
      }
      if (log_enabled())
        log_line(c.ok ? fmt::format("tune bwd_dkdv candidate {}: {:.4f} ms ({} launches)", to_string(c.tile), c.median_ms,
                                    c.repetitions)
                      : fmt::format("tune bwd_dkdv candidate {}: failed: {}", to_string(c.tile), c.error));
      if (c.ok && (best < 0 || c.median_ms < rec.candidates[static_cast<size_t>(best)].median_ms)) best = static_cast<int>(i);
      rec.candidates.push_back(std::move(c));
    }
  }
  ev.destroy();
  if (best < 0) {
    std::string why;
    for (const CandidateTiming& c : rec.candidates) why += "\n  " + to_string(c.tile) + ": " + c.error;
    throw CudaError("flashjit: autotune: no bwd_dkdv tile could be compiled and timed for " + key.spec_json + ":" + why);
  }
  rec.tile = rec.candidates[static_cast<size_t>(best)].tile;
  rec.median_ms = rec.candidates[static_cast<size_t>(best)].median_ms;
  if (log_enabled())
    log_line(fmt::format("tuned bwd_dkdv {} bucket {} -> tile {} ({:.4f} ms, best of {})", key.spec_json,
                         to_string(key.bucket), to_string(rec.tile), rec.median_ms, tiles.size()));
  return rec;
}

}  // namespace

TileConfig choose_bwd_tile(const AttentionSpec& spec, const BwdParams& params, const ProblemShape& s, CUcontext ctx,
                           const DeviceInfo& device, CUstream stream) {
  // The backward always reads the LSE: its key is the spec with return_lse, however the
  // caller spelled it, so `flashjit tune` and backward() meet in one record.
  AttentionSpec key_spec = spec;
  key_spec.return_lse = true;
  const TuningKey key =
      make_tuning_key(key_spec, shape_bucket(s.batch, s.heads_q, s.seqlen_q, s.seqlen_k), device, "bwd_dkdv");
  return remembered_or_decide(key.digest(), [&] {
    const TuningDb db = TuningDb::default_db();
    if (std::optional<TuningRecord> rec = db.lookup(key)) {
      ++counters().tuning_db_hits;
      if (log_enabled())
        log_line(fmt::format("tuning db hit bwd_dkdv {} bucket {} -> tile {}", key.spec_json, to_string(key.bucket),
                             to_string(rec->tile)));
      return rec->tile;
    }
    if (autotune_enabled() && s.seqlen_k > 0 && s.seqlen_q > 0) {
      const TuningRecord r = tune(spec, key, params, s, ctx, device.arch, stream);
      try {
        db.store(key, r);
      } catch (const std::exception& e) {
        log_line(fmt::format("warning: backward tuning result not saved: {}", e.what()));
      }
      return r.tile;
    }
    return default_bwd_tile(spec, device.arch);
  });
}

}  // namespace detail
}  // namespace flashjit
