// forward(): validate, pick the tile config, fetch the loaded kernel, launch.
//
// Tile choice for a spec without a tile, per (spec, shape bucket, device):
//   1. the tuning database's record, if one exists (no tuning);
//   2. else, unless FLASHJIT_AUTOTUNE=0, the autotuner's winner, which is then stored. By
//      default (FLASHJIT_TUNE_MODE=background) the calls run the heuristic tile, compiled in
//      NVRTC's fast-compile mode (half the compile time, a slower kernel, not cached), until
//      the candidates have compiled on worker threads; the next call times them and swaps
//      the winner in. FLASHJIT_TUNE_MODE=blocking tunes on the first call, before it launches;
//   3. else the heuristic default.
// The decision is remembered in-process (detail::remembered_or_decide), so after the first
// call for a key a launch does no disk I/O and no tuning. (It is not revisited when FLASHJIT_AUTOTUNE changes later.)
#include <fmt/format.h>

#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flashjit/autotune.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"
#include "background_tuning.h"
#include "launch.h"
#include "runtime_stats.h"
#include "tuning_internal.h"

namespace flashjit {

namespace {

bool capturing(CUstream_st* stream) {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  CudaDriver& drv = CudaDriver::get();
  // An error (e.g. the legacy stream while another stream captures) counts as capturing:
  // timing then waits for a later call.
  return drv.cuStreamIsCapturing(reinterpret_cast<CUstream>(stream), &status) != CUDA_SUCCESS ||
         status != CU_STREAM_CAPTURE_STATUS_NONE;
}

void store_record(const TuningDb& db, const TuningKey& key, const TuneResult& r) {
  try {
    db.store(key, r.record());
  } catch (const std::exception& e) {
    // A read-only or full cache costs a re-tune in the next process, not this launch.
    detail::log_line(fmt::format("warning: tuning result not saved: {}", e.what()));
  }
}

// A decision for a key in this process: database, autotuner or heuristic. {tile, final}:
// a final tile is remembered; an interim one (the heuristic while background tuning
// compiles) is asked for again on the next call. *start_background: start compiling the
// candidates once this call has launched.
std::pair<TileConfig, bool> decide(const AttentionSpec& spec, const TuningKey& key, const TensorView& q,
                                   const TensorView& k, const TensorView& v, const TensorView& o,
                                   const TensorView* lse, CUstream_st* stream, const std::vector<TensorView>& captures,
                                   bool* start_background) {
  const std::string digest = key.digest();
  detail::BackgroundCompiles& bg = detail::BackgroundCompiles::get();
  if (bg.pending(digest)) {
    if (!capturing(stream))
      if (std::optional<detail::BackgroundCompiles::Compiled> c = bg.take_if_done(digest)) {
        const TuneResult r = detail::time_candidates(spec, c->tiles, c->skip, q, k, v, o, lse, stream, captures);
        store_record(TuningDb::default_db(), key, r);
        return {r.best, true};
      }
    return {default_tile(spec, key.arch), false};
  }
  const TuningDb db = TuningDb::default_db();
  if (std::optional<TuningRecord> rec = db.lookup(key)) {
    ++detail::counters().tuning_db_hits;
    if (detail::log_enabled())
      detail::log_line(fmt::format("tuning db hit {} bucket {} -> tile {} ({:.4f} ms when tuned, {})", key.spec_json,
                                   to_string(key.bucket), to_string(rec->tile), rec->median_ms,
                                   db.record_path(key).string()));
    return {rec->tile, true};
  }
  const TileConfig heuristic = default_tile(spec, key.arch);
  if (detail::autotune_enabled()) {
    if (detail::tune_mode() == detail::TuneMode::blocking) {
      const TuneResult r = autotune(spec, q, k, v, o, lse, stream, captures);
      store_record(db, key, r);
      return {r.best, true};
    }
    *start_background = true;
    if (detail::log_enabled())
      detail::log_line(fmt::format("heuristic tile for {} bucket {} -> tile {} while the candidates compile",
                                   key.spec_json, to_string(key.bucket), to_string(heuristic)));
    return {heuristic, false};
  }
  if (detail::log_enabled())
    detail::log_line(fmt::format("heuristic tile for {} bucket {} -> tile {} (FLASHJIT_AUTOTUNE=0, no tuning record)",
                                 key.spec_json, to_string(key.bucket), to_string(heuristic)));
  return {heuristic, true};
}

// `spec` (validated) with its tile filled in for this problem on this device. *background:
// the tuning key's digest when this call should start background compiles after launching.
// *is_final: whether the tile is this process's decision for the key (a later call gets
// the same), not the interim heuristic of background tuning.
AttentionSpec choose_tile(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
                          const TensorView& o, const TensorView* lse, const ProblemShape& shape,
                          const DeviceInfo& device, CUstream_st* stream, const std::vector<TensorView>& captures,
                          std::string* background, bool* is_final) {
  *is_final = true;
  if (spec.tile) return resolve_tile(spec, device.arch);  // the user's tile, as is
  AttentionSpec resolved = spec.normalized();
  const TuningKey key =
      make_tuning_key(resolved, shape_bucket(shape.batch, shape.heads_q, shape.seqlen_q, shape.seqlen_k), device);
  bool start = false;
  resolved.tile = detail::remembered_or_decide_interim(
      key.digest(), [&] { return decide(resolved, key, q, k, v, o, lse, stream, captures, &start); }, is_final);
  if (start) *background = key.digest();
  return resolved;
}

}  // namespace

// What a PreparedForward remembers: per (context, shape bucket), the final tile and its
// loaded kernel (LoadedKernels live in loaded_module's map for the process: the pointer
// stays valid). A handful of entries per spec in practice: searched linearly.
struct PreparedForward::Memo {
  struct Entry {
    CUcontext ctx = nullptr;
    ShapeBucket bucket;
    TileConfig tile;
    const LoadedKernel* kernel = nullptr;
  };
  static constexpr std::size_t kMaxEntries = 256;  // beyond it, start over (bounded memory)

  AttentionSpec spec;
  mutable std::mutex mu;
  mutable std::vector<Entry> entries;

  std::optional<Entry> find(CUcontext ctx, const ShapeBucket& bucket) const {
    std::lock_guard<std::mutex> lock(mu);
    for (const Entry& e : entries)
      if (e.ctx == ctx && e.bucket == bucket) return e;
    return std::nullopt;
  }
  void remember(const Entry& e) const {
    std::lock_guard<std::mutex> lock(mu);
    if (entries.size() >= kMaxEntries) entries.clear();
    entries.push_back(e);
  }
};

PreparedForward::PreparedForward(const AttentionSpec& spec) : memo_(std::make_shared<Memo>()) {
  validate(spec);
  memo_->spec = spec;
}

const AttentionSpec& PreparedForward::spec() const { return memo_->spec; }

void PreparedForward::operator()(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& o,
                                 const TensorView* lse, CUstream_st* stream, const std::vector<TensorView>& captures,
                                 const DropoutRng& dropout) const {
  const AttentionSpec& spec = memo_->spec;
  const ProblemShape shape = validate_forward_args(spec, q, k, v, o, lse);
  validate_capture_args(spec, captures, shape, o, lse);
  validate_dropout_args(spec, dropout);
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::forward");
  if (shape.seqlen_q == 0) return;  // nothing to compute or store

  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  // A spec with its own tile has one decision for every shape: one entry per context.
  const ShapeBucket bucket =
      spec.tile ? ShapeBucket{} : shape_bucket(shape.batch, shape.heads_q, shape.seqlen_q, shape.seqlen_k);
  std::optional<Memo::Entry> entry = ctx ? memo_->find(ctx, bucket) : std::nullopt;
  std::string background;  // a tuning key's digest: start its background compiles after the launch
  std::optional<AttentionSpec> untiled;
  std::string arch;
  if (!entry) {
    const CUdevice dev = drv.current_device();
    if (!ctx) drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");  // current_device() made it current
    const DeviceInfo device = detail::device_info(dev);                  // queried once per device
    bool is_final = true;
    const AttentionSpec resolved =
        choose_tile(spec, q, k, v, o, lse, shape, device, stream, captures, &background, &is_final);
    // An interim tile (background tuning compiles the candidates) runs a quickly compiled
    // kernel: half the first call's compile time; the tuned winner replaces it within seconds.
    entry = Memo::Entry{ctx, bucket, *resolved.tile, &loaded_kernel(resolved, ctx, device.arch, !is_final)};
    if (is_final) memo_->remember(*entry);
    if (!background.empty()) {
      untiled = resolved;
      untiled->tile.reset();
      arch = device.arch;
    }
  }
  FwdParams params = make_params(q, k, v, o, lse, shape, captures);
  set_dropout(params, dropout);
  const CUstream cu_stream = reinterpret_cast<CUstream>(stream);
  if (entry->tile.pipeline != PipelineKind::tma_ws) {
    launch(*entry->kernel, entry->tile, params, shape, cu_stream);
  } else if (tma_compatible(q, k, v)) {
    const FwdTmaMaps maps = make_tma_maps(q, k, v, entry->tile);
    launch(*entry->kernel, entry->tile, params, shape, cu_stream, &maps);
  } else {
    // Tensors TMA cannot describe (a zero stride: a broadcast view): the same tile on the
    // cp.async pipeline, compiled on first need, serves this call.
    TileConfig plain = entry->tile;
    plain.pipeline = PipelineKind::cp_async;
    plain.warps -= 4;
    plain.pingpong = plain.persistent = false;  // the warp-specialised kernel's options
    AttentionSpec s = spec;
    s.tile = plain;
    launch(loaded_kernel(s, ctx, detail::device_info(drv.current_device()).arch), plain, params, shape, cu_stream);
  }
  // After the launch: the heuristic's compile, on this thread, comes first.
  if (!background.empty()) detail::BackgroundCompiles::get().start(background, *untiled, arch);
}

bool gpu_available() { return CudaDriver::get().available(); }
std::string gpu_unavailable_reason() { return CudaDriver::get().unavailable_reason(); }

void forward(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
             const TensorView& o, const TensorView* lse, CUstream_st* stream,
             const std::vector<TensorView>& captures, const DropoutRng& dropout) {
  const PreparedForward prepared(spec);
  prepared(q, k, v, o, lse, stream, captures, dropout);
}

void wait_for_tuning() { detail::BackgroundCompiles::get().wait_all(); }

void stop_tuning() { detail::BackgroundCompiles::get().shutdown(); }

}  // namespace flashjit
