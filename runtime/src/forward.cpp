// forward(): validate, pick the tile config, fetch the loaded kernel, launch.
//
// Tile choice for a spec without a tile, per (spec, shape bucket, device):
//   1. the tuning database's record, if one exists (no tuning);
//   2. else, unless FLASHJIT_AUTOTUNE=0, the autotuner's winner, which is then stored. By
//      default (FLASHJIT_TUNE_MODE=background) the calls run the heuristic tile until the
//      candidates have compiled on worker threads; the next call times them and swaps the
//      winner in. FLASHJIT_TUNE_MODE=blocking tunes on the first call, before it launches;
//   3. else the heuristic default.
// The decision is remembered in-process (detail::remembered_or_decide), so after the first
// call for a key a launch does no disk I/O and no tuning. (It is not revisited when FLASHJIT_AUTOTUNE changes later.)
#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>

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
AttentionSpec choose_tile(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
                          const TensorView& o, const TensorView* lse, const ProblemShape& shape,
                          const DeviceInfo& device, CUstream_st* stream, const std::vector<TensorView>& captures,
                          std::string* background) {
  if (spec.tile) return resolve_tile(spec, device.arch);  // the user's tile, as is
  AttentionSpec resolved = spec.normalized();
  const TuningKey key =
      make_tuning_key(resolved, shape_bucket(shape.batch, shape.heads_q, shape.seqlen_q, shape.seqlen_k), device);
  bool start = false;
  resolved.tile = detail::remembered_or_decide_interim(
      key.digest(), [&] { return decide(resolved, key, q, k, v, o, lse, stream, captures, &start); });
  if (start) *background = key.digest();
  return resolved;
}

}  // namespace

bool gpu_available() { return CudaDriver::get().available(); }
std::string gpu_unavailable_reason() { return CudaDriver::get().unavailable_reason(); }

void forward(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
             const TensorView& o, const TensorView* lse, CUstream_st* stream,
             const std::vector<TensorView>& captures, const DropoutRng& dropout) {
  validate(spec);
  const ProblemShape shape = validate_forward_args(spec, q, k, v, o, lse);
  validate_capture_args(spec, captures, shape, o, lse);
  validate_dropout_args(spec, dropout);
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::forward");
  if (shape.seqlen_q == 0) return;  // nothing to compute or store

  const CUdevice dev = drv.current_device();
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  const DeviceInfo device = detail::device_info(dev);  // queried once per device
  std::string background;
  const AttentionSpec resolved = choose_tile(spec, q, k, v, o, lse, shape, device, stream, captures, &background);
  const LoadedKernel& kernel = loaded_kernel(resolved, ctx, device.arch);
  FwdParams params = make_params(q, k, v, o, lse, shape, captures);
  set_dropout(params, dropout);
  launch(kernel, *resolved.tile, params, shape, reinterpret_cast<CUstream>(stream));
  // After the launch: the heuristic's compile, on this thread, comes first.
  if (!background.empty()) {
    AttentionSpec untiled = resolved;
    untiled.tile.reset();
    detail::BackgroundCompiles::get().start(background, untiled, device.arch);
  }
}

void wait_for_tuning() { detail::BackgroundCompiles::get().wait_all(); }

}  // namespace flashjit
