// Internal: the bwd_dkdv tile decision of backward() (tuning database, autotuner, heuristic),
// the backward's counterpart of forward()'s choose_tile.
#pragma once

#include <cuda.h>

#include <string>

#include "flashjit/bwd_params.cuh"
#include "flashjit/spec.h"
#include "flashjit/tuning.h"
#include "validate_args.h"

namespace flashjit::detail {

// The bwd_dkdv tile for `spec` (validated, untiled) on this problem: the tuning database's
// record (kind bwd_dkdv), else, unless FLASHJIT_AUTOTUNE=0, the fastest candidate of
// bwd_tile_candidates() timed on `params` (which is stored), else default_bwd_tile().
// Remembered in-process per tuning key. `params` must be complete for the dQ-partials kernel
// (dq_accum set): timing launches overwrite dk, dv and add into dq_accum, so call it before
// bwd_preprocess zeroes the accumulator.
TileConfig choose_bwd_tile(const AttentionSpec& spec, const BwdParams& params, const ProblemShape& shape, CUcontext ctx,
                           const DeviceInfo& device, CUstream stream);

}  // namespace flashjit::detail
