// forward(): validate, pick the tile config, fetch the loaded kernel, launch.
//
// Tile choice for a spec without a tile, per (spec, shape bucket, device):
//   1. the tuning database's record, if one exists (no tuning);
//   2. else, unless FLASHJIT_AUTOTUNE=0, the autotuner's winner, which is then stored;
//   3. else the heuristic default.
// The decision is remembered in-process, so after the first call for a key a launch does
// no disk I/O and no tuning. (It is not revisited when FLASHJIT_AUTOTUNE changes later.)
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

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

bool autotune_enabled() {
  const char* v = std::getenv("FLASHJIT_AUTOTUNE");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

struct Decisions {
  std::mutex mu;  // guards `tiles`; held only for lookups and inserts
  std::unordered_map<std::string, TileConfig> tiles;  // by tuning-key digest
  // Held while a new key is decided, so two threads meeting one new key tune it once.
  std::mutex decide_mu;
};
Decisions& decisions() {
  static Decisions d;
  return d;
}

std::optional<TileConfig> remembered(const std::string& digest) {
  Decisions& d = decisions();
  std::lock_guard<std::mutex> lock(d.mu);
  auto it = d.tiles.find(digest);
  if (it == d.tiles.end()) return std::nullopt;
  return it->second;
}

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
  if (autotune_enabled()) {
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
  const std::string digest = key.digest();
  if (std::optional<TileConfig> t = remembered(digest)) {
    resolved.tile = *t;
    return resolved;
  }
  Decisions& d = decisions();
  std::lock_guard<std::mutex> deciding(d.decide_mu);
  if (std::optional<TileConfig> t = remembered(digest)) {  // decided while we waited
    resolved.tile = *t;
    return resolved;
  }
  resolved.tile = first_decision(resolved, key, q, k, v, o, lse, stream, captures);
  std::lock_guard<std::mutex> lock(d.mu);
  d.tiles.emplace(digest, *resolved.tile);
  return resolved;
}

}  // namespace

bool gpu_available() { return CudaDriver::get().available(); }
std::string gpu_unavailable_reason() { return CudaDriver::get().unavailable_reason(); }

void forward(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
             const TensorView& o, const TensorView* lse, CUstream_st* stream,
             const std::vector<TensorView>& captures) {
  validate(spec);
  const ProblemShape shape = validate_forward_args(spec, q, k, v, o, lse);
  validate_capture_args(spec, captures, shape, o, lse);
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::forward");
  if (shape.seqlen_q == 0) return;  // nothing to compute or store

  const CUdevice dev = drv.current_device();
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  const DeviceInfo device = detail::device_info(dev);  // queried once per device
  const AttentionSpec resolved = choose_tile(spec, q, k, v, o, lse, shape, device, stream, captures);
  const LoadedKernel& kernel = loaded_kernel(resolved, ctx, device.arch);
  launch(kernel, *resolved.tile, make_params(q, k, v, o, lse, shape, captures), shape,
         reinterpret_cast<CUstream>(stream));
}

}  // namespace flashjit
