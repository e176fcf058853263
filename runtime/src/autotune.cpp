// The autotuner: candidate enumeration, parallel compilation, CUDA-event timing.
#include "flashjit/autotune.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <optional>
#include <mutex>
#include <cstring>
#include <cstdlib>
#include <atomic>
#include <cmath>
#include <exception>
#include <thread>

#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/ir.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/passes.h"
#include "launch.h"
#include "runtime_stats.h"
#include "tuning_internal.h"

namespace flashjit {

namespace {

constexpr int kWarmups = 2;
constexpr double kTargetMs = 20.0;  // timed launches per candidate add up to about this
constexpr int kMinReps = 3;
constexpr int kMaxReps = 50;

AttentionSpec with_tile(const AttentionSpec& spec, const TileConfig& t) {
  AttentionSpec s = spec;
  s.tile = t;
  return s;
}

bool legal(const AttentionSpec& spec, const TileConfig& t, const std::string& arch) {
  try {
    validate(t, spec);
  } catch (const SpecError&) {
    return false;  // e.g. 64 rows over 8 warps: not a whole m16 tile per warp
  }
  try {
    passes::run_pipeline(ir::lower(with_tile(spec, t)), arch);
  } catch (const LegalityError&) {
    return false;  // shared memory or registers over the arch's budget
  }
  return true;
}

double elapsed_ms(CudaDriver& drv, CUevent a, CUevent b) {
  float ms = 0.0f;
  drv.check(drv.cuEventElapsedTime(&ms, a, b), "cuEventElapsedTime");
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One loaded forward candidate (time_launches).
void time_candidate(const LoadedKernel& kernel, const TileConfig& tile, const FwdParams& params,
                    const ProblemShape& shape, CUstream stream, detail::Events& ev, CandidateTiming& out,
                    const FwdTmaMaps* maps) {
  const CandidateTiming t =
      detail::time_launches([&] { launch(kernel, tile, params, shape, stream, maps); }, stream, ev);
  out.ok = t.ok;
  out.median_ms = t.median_ms;
  out.repetitions = t.repetitions;
}

}  // namespace

namespace detail {

bool autotune_enabled() {
  const char* v = std::getenv("FLASHJIT_AUTOTUNE");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

TuneMode tune_mode() {
  const char* v = std::getenv("FLASHJIT_TUNE_MODE");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "background") == 0) return TuneMode::background;
  if (std::strcmp(v, "blocking") == 0) return TuneMode::blocking;
  throw ArgumentError("FLASHJIT_TUNE_MODE", fmt::format("is '{}'; allowed: background (the default), blocking", v));
}

TileConfig remembered_or_decide_interim(const std::string& digest,
                                       const std::function<std::pair<TileConfig, bool>()>& decide, bool* is_final) {
  static std::mutex mu;         // guards `tiles`; held only for lookups and inserts
  static std::mutex decide_mu;  // held while a new digest is decided, so it is tuned once
  static std::unordered_map<std::string, TileConfig> tiles;
  const auto remembered = [&]() -> std::optional<TileConfig> {
    std::lock_guard<std::mutex> lock(mu);
    auto it = tiles.find(digest);
    if (it == tiles.end()) return std::nullopt;
    return it->second;
  };
  if (is_final) *is_final = true;
  if (std::optional<TileConfig> t = remembered()) return *t;
  std::lock_guard<std::mutex> deciding(decide_mu);
  if (std::optional<TileConfig> t = remembered()) return *t;  // decided while we waited
  const auto [t, final] = decide();
  if (final) {
    std::lock_guard<std::mutex> lock(mu);
    tiles.emplace(digest, t);
  }
  if (is_final) *is_final = final;
  return t;
}

TileConfig remembered_or_decide(const std::string& digest, const std::function<TileConfig()>& decide) {
  return remembered_or_decide_interim(digest, [&] { return std::make_pair(decide(), true); });
}

std::vector<std::string> compile_in_parallel(std::size_t n, const std::function<void(std::size_t)>& compile_one,
                                             std::size_t max_workers) {
  std::vector<std::string> errors(n);
  std::atomic<std::size_t> next{0};
  const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t workers = std::min<std::size_t>(n, max_workers == 0 ? cores : std::min(cores, max_workers));
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (std::size_t i; (i = next++) < n;) {
        try {
          compile_one(i);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        } catch (...) {
          errors[i] = "unknown exception";
        }
      }
    });
  for (std::thread& t : pool) t.join();
  return errors;
}

Events::Events(int n) {
  CudaDriver& drv = CudaDriver::get();
  for (int i = 0; i < n; ++i) {
    CUevent e = nullptr;
    drv.check(drv.cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
    ev_.push_back(e);
  }
}

Events::~Events() {
  for (CUevent e : ev_) (void)CudaDriver::get().cuEventDestroy(e);
}

void Events::destroy() {
  CudaDriver& drv = CudaDriver::get();
  while (!ev_.empty()) {
    const CUevent e = ev_.back();
    ev_.pop_back();
    drv.check(drv.cuEventDestroy(e), "cuEventDestroy");
  }
}

CandidateTiming time_launches(const std::function<void()>& launch_once, CUstream stream, Events& ev) {
  CudaDriver& drv = CudaDriver::get();
  for (int i = 0; i < kWarmups; ++i) launch_once();
  drv.check(drv.cuEventRecord(ev[0], stream), "cuEventRecord");
  launch_once();
  drv.check(drv.cuEventRecord(ev[1], stream), "cuEventRecord");
  drv.check(drv.cuEventSynchronize(ev[1]), "cuEventSynchronize");
  const double estimate = std::max(elapsed_ms(drv, ev[0], ev[1]), 1e-3);
  const int reps = std::clamp(static_cast<int>(std::ceil(kTargetMs / estimate)), kMinReps, ev.size() - 1);

  drv.check(drv.cuEventRecord(ev[0], stream), "cuEventRecord");
  for (int r = 0; r < reps; ++r) {
    launch_once();
    drv.check(drv.cuEventRecord(ev[r + 1], stream), "cuEventRecord");
  }
  drv.check(drv.cuEventSynchronize(ev[reps]), "cuEventSynchronize");
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) times.push_back(elapsed_ms(drv, ev[r], ev[r + 1]));
  CandidateTiming out;
  out.ok = true;
  out.median_ms = median(times);
  out.repetitions = reps;
  return out;
}

}  // namespace detail

bool tma_ws_candidates_enabled() {
  // Until the warp-specialised kernels have passed the GPU matrix they are tuned only on
  // request (FLASHJIT_TUNE_TMA_WS=1); a spec can always name such a tile itself.
  const char* v = std::getenv("FLASHJIT_TUNE_TMA_WS");
  return v && std::string(v) == "1";
}

std::vector<TileConfig> tile_candidates(const AttentionSpec& spec0, const std::string& arch) {
  check_arch(arch);
  validate(spec0);
  const AttentionSpec spec = without_tile(spec0.normalized());
  // The heuristic is legal by construction (default_tile throws when nothing fits).
  std::vector<TileConfig> out{default_tile(spec, arch)};
  const auto consider = [&](const TileConfig& t) {
    if (!(t == out.front()) && legal(spec, t, arch)) out.push_back(t);
  };
  if (arch == "sm_90a")  // wgmma: one warpgroup per 64 rows
    for (int block_m : {64, 128, 192})
      for (int block_n : {64, 96, 128, 176, 192})
        for (int stages : {2, 3}) consider({block_m, block_n, block_m / 16, stages, MmaKind::wgmma});
  // Warp-specialised (a TMA producer warpgroup beside 2 or 3 consumers), where the mask's
  // tiles have a closed form (validate() refuses the others: legal() drops them).
  if (arch == "sm_90a" && tma_ws_candidates_enabled())
    for (int block_m : {128, 192})
      for (int block_n : {64, 96, 128, 176, 192})
        for (int stages : {2, 3})
          for (bool pingpong : {false, true})
            for (bool persistent : {false, true})
              if (block_m == 128 || (!pingpong && !persistent))  // both need 2 consumer warpgroups here
                consider({block_m, block_n, block_m / 16 + 4, stages, MmaKind::wgmma, PipelineKind::tma_ws, pingpong,
                          persistent});
  for (int block_m : {64, 128})
    for (int block_n : {32, 64, 128})
      for (int warps : {4, 8})
        for (int stages : {2, 3}) consider({block_m, block_n, warps, stages});
  return out;
}

TuningRecord TuneResult::record() const {
  TuningRecord r;
  r.key = key;
  r.tile = best;
  r.median_ms = best_ms;
  r.candidates = candidates;
  return r;
}

namespace detail {

std::string not_worth_timing(const CompiledKernel& k) {
  if (k.resources.spill_store_bytes > 0 || k.resources.spill_load_bytes > 0)
    return fmt::format("not timed: spills ({} bytes stored, {} loaded)", k.resources.spill_store_bytes,
                       k.resources.spill_load_bytes);
  if (k.log.find("C7514") != std::string::npos || k.log.find("wgmma.mma_async instructions are serialized") !=
                                                      std::string::npos)
    return "not timed: ptxas serialises its wgmma (C7514)";
  return "";
}

std::vector<std::string> compile_candidates(const AttentionSpec& spec, const std::vector<TileConfig>& tiles,
                                            const std::string& arch, std::size_t max_workers,
                                            const std::atomic<bool>* stop, const std::function<void()>& on_compiled) {
  std::vector<std::string> skip(tiles.size());
  std::mutex progress;
  const auto compiled = [&] {
    if (!on_compiled) return;
    const std::lock_guard<std::mutex> lock(progress);
    on_compiled();
  };
  const std::vector<std::string> errors = compile_in_parallel(
      tiles.size(),
      [&](std::size_t i) {
        try {
          if (stop != nullptr && stop->load()) throw CompileError("not compiled: the process is exiting");
          CompileOptions options;
          options.arch = arch;
          const CompiledKernel k = compile(with_tile(spec, tiles[i]), options);
          if (i > 0) skip[i] = not_worth_timing(k);  // the heuristic always runs: it is the fallback
        } catch (...) {
          compiled();
          throw;
        }
        compiled();
      },
      max_workers);
  for (std::size_t i = 0; i < tiles.size(); ++i)
    if (!errors[i].empty()) skip[i] = errors[i];
  return skip;
}

TuneResult time_candidates(const AttentionSpec& spec0, const std::vector<TileConfig>& tiles,
                           const std::vector<std::string>& skip, const TensorView& q, const TensorView& k,
                           const TensorView& v, const TensorView& o, const TensorView* lse, CUstream_st* stream0,
                           const std::vector<TensorView>& captures, const std::function<void()>& on_timed) {
  const AttentionSpec spec = without_tile(spec0.normalized());
  const ProblemShape shape = validate_forward_args(spec, q, k, v, o, lse);
  CudaDriver& drv = CudaDriver::get();
  const CUdevice dev = drv.current_device();
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  const DeviceInfo device = device_info(dev);
  const CUstream stream = reinterpret_cast<CUstream>(stream0);
  ++counters().tunings;

  TuneResult result;
  result.key = make_tuning_key(spec, shape_bucket(shape.batch, shape.heads_q, shape.seqlen_q, shape.seqlen_k), device);
  const FwdParams params = make_params(q, k, v, o, lse, shape, captures);
  Events events(kMaxReps + 1);
  int best = -1;
  for (std::size_t i = 0; i < tiles.size(); ++i) {
    CandidateTiming c;
    c.tile = tiles[i];
    const bool ws = tiles[i].pipeline == PipelineKind::tma_ws;
    if (!skip[i].empty()) {
      c.error = skip[i];
    } else if (ws && !tma_compatible(q, k, v)) {
      c.error = "not timed: TMA cannot read these tensors (a zero stride)";
    } else {
      try {
        const std::optional<FwdTmaMaps> maps = ws ? std::optional<FwdTmaMaps>(make_tma_maps(q, k, v, tiles[i])) : std::nullopt;
        time_candidate(loaded_kernel(with_tile(spec, tiles[i]), ctx, device.arch), tiles[i], params, shape, stream,
                       events, c, maps ? &*maps : nullptr);
      } catch (const std::exception& e) {
        c.ok = false;
        c.error = e.what();
      }
    }
    if (log_enabled())
      log_line(c.ok ? fmt::format("tune candidate {}: {:.4f} ms ({} launches)", to_string(c.tile), c.median_ms,
                                  c.repetitions)
                    : fmt::format("tune candidate {}: {}", to_string(c.tile), c.error));
    if (c.ok && (best < 0 || c.median_ms < result.candidates[static_cast<std::size_t>(best)].median_ms))
      best = static_cast<int>(i);
    result.candidates.push_back(std::move(c));
    if (on_timed) on_timed();
  }
  events.destroy();
  if (best < 0) {
    std::string why;
    for (const CandidateTiming& c : result.candidates) why += "\n  " + to_string(c.tile) + ": " + c.error;
    throw CudaError("flashjit: autotune: no candidate tile could be compiled and timed for " + spec_to_json(spec) +
                    ":" + why);
  }
  const CandidateTiming& w = result.candidates[static_cast<std::size_t>(best)];
  result.best = w.tile;
  result.best_ms = w.median_ms;
  result.winner = loaded_kernel(with_tile(spec, w.tile), ctx, device.arch).info;
  if (log_enabled())
    log_line(fmt::format("tuned {} bucket {} on {} -> tile {} ({:.4f} ms, best of {} candidates)",
                         result.key.spec_json, to_string(result.key.bucket), device.gpu_name, to_string(result.best),
                         result.best_ms, tiles.size()));
  return result;
}

}  // namespace detail

TuneResult autotune(const AttentionSpec& spec0, const TensorView& q, const TensorView& k, const TensorView& v,
                    const TensorView& o, const TensorView* lse, CUstream_st* stream,
                    const std::vector<TensorView>& captures, const TuneOptions& options) {
  validate(spec0);
  const AttentionSpec spec = without_tile(spec0.normalized());
  const ProblemShape shape = validate_forward_args(spec, q, k, v, o, lse);
  validate_capture_args(spec, captures, shape, o, lse);
  if (shape.seqlen_q == 0) throw ArgumentError("q", "seqlen_q is 0: there is nothing to launch, so nothing to time");
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::autotune");
  const DeviceInfo device = detail::device_info(drv.current_device());
  const std::vector<TileConfig> tiles = tile_candidates(spec, device.arch);
  TuneProgress progress;
  progress.candidates = tiles.size();
  const auto report = [&] {
    if (options.progress) options.progress(progress);
  };
  report();  // 0 of n: the display can start before the first compile ends
  const std::vector<std::string> skip = detail::compile_candidates(spec, tiles, device.arch, 0, nullptr, [&] {
    ++progress.compiled;
    report();
  });
  return detail::time_candidates(spec, tiles, skip, q, k, v, o, lse, stream, captures, [&] {
    ++progress.timed;
    report();
  });
}

}  // namespace flashjit
