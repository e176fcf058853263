// forward(): validate, pick the tile config, fetch the loaded kernel, launch.
//
// Tile choice for a spec without a tile, per (spec, shape bucket, device):
//   1. the tuning database's record, if one exists (no tuning);
//   2. else, unless FLASHJIT_AUTOTUNE=0, the autotuner's winner, which is then stored;
//   3. else the heuristic default.
// The decision is remembered in-process (detail::remembered_or_decide), so after the first
// call for a key a launch does no disk I/O and no tuning. (It is not revisited when FLASHJIT_AUTOTUNE changes later.)
#include <fmt/format.h>

#include <optional>

#include "flashjit/autotune.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"
#include "launch.h"
#include "runtime_stats.h"
#include "tuning_internal.h"

namespace flashjit {

namespace {

// The first decision for a key in this process: database, autotuner or heuristic.
TileConfig first_decision(const AttentionSpec& spec, const TuningKey& key, const TensorView& q, const TensorView& k,
                          const TensorView& v, const TensorView& o, const TensorView* lse, CUstream_st* stream,
                          const std::vector<TensorView>& captures) {
  const TuningDb db = TuningDb::default_db();
  if (std::optional<TuningRecord> rec = db.lookup(key)) {
    ++detail::counters().tuning_db_hits;
    if (detail::log_enabled())
      detail::log_line(fmt::format("tuning db hit {} bucket {} -> tile {} ({:.4f} ms when tuned, {})", key.spec_json,
                                   to_string(key.bucket), to_string(rec->tile), rec->median_ms,
                                   db.record_path(key).string()));
    return rec->tile;
  }
  if (detail::autotune_enabled()) {
    const TuneResult r = autotune(spec, q, k, v, o, lse, stream, captures);
    try {
      db.store(key, r.record());
    } catch (const std::exception& e) {
      // A read-only or full cache costs a re-tune in the next process, not this launch.
      detail::log_line(fmt::format("warning: tuning result not saved: {}", e.what()));
    }
    return r.best;
  }
  const TileConfig t = default_tile(spec, key.arch);
  if (detail::log_enabled())
    detail::log_line(fmt::format("heuristic tile for {} bucket {} -> tile {} (FLASHJIT_AUTOTUNE=0, no tuning record)",
                                 key.spec_json, to_string(key.bucket), to_string(t)));
  return t;
}

// `spec` (validated) with its tile filled in for this problem on this device.
AttentionSpec choose_tile(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
                          const TensorView& o, const TensorView* lse, const ProblemShape& shape,
                          const DeviceInfo& device, CUstream_st* stream, const std::vector<TensorView>& captures) {
  if (spec.tile) return resolve_tile(spec, device.arch);  // the user's tile, as is
  AttentionSpec resolved = spec.normalized();
  const TuningKey key =
      make_tuning_key(resolved, shape_bucket(shape.batch, shape.heads_q, shape.seqlen_q, shape.seqlen_k), device);
  resolved.tile = detail::remembered_or_decide(
      key.digest(), [&] { return first_decision(resolved, key, q, k, v, o, lse, stream, captures); });
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
  const AttentionSpec resolved = choose_tile(spec, q, k, v, o, lse, shape, device, stream, captures);
  const LoadedKernel& kernel = loaded_kernel(resolved, ctx, device.arch);
  FwdParams params = make_params(q, k, v, o, lse, shape, captures);
  set_dropout(params, dropout);
  launch(kernel, *resolved.tile, params, shape, reinterpret_cast<CUstream>(stream));
}

}  // namespace flashjit
