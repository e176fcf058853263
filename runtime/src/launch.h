// Internal: loading a compiled kernel into a context and launching it. Shared by
// forward() and the autotuner (which launches candidate tile configs).
#pragma once

#include <cuda.h>

#include <functional>
#include <string>

#include "flashjit/compiled_kernel.h"
#include "flashjit/runtime.h"
#include "templates_host.h"
#include "validate_args.h"

namespace flashjit {

struct LoadedKernel {
  CUmodule module = nullptr;
  CUfunction function = nullptr;
  CompiledKernel info;
};

// The kernel named `key` (its identity and arch) in context `ctx`: compile_fn() (compiled
// or fetched from the caches) and loaded on first use, then kept for the life of the process.
// Every kernel kind goes through here.
const LoadedKernel& loaded_module(CUcontext ctx, const std::string& key, const std::function<CompiledKernel()>& compile_fn);
// The forward kernel for `spec` (tile set).
const LoadedKernel& loaded_kernel(const AttentionSpec& spec, CUcontext ctx, const std::string& arch, bool quick = false);

FwdParams make_params(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& o,
                      const TensorView* lse, const ProblemShape& shape, const std::vector<TensorView>& captures);

// The captured tensors (checked by validate_capture_args) into p.caps, in order.
void set_captures(FwdParams& p, const std::vector<TensorView>& captures);

// Dropout's RNG state into p (philox.cuh reads it; unused by kernels without dropout).
void set_dropout(FwdParams& p, const DropoutRng& rng);

// The TMA descriptors of a warp-specialised kernel (tile.pipeline = tma_ws) for these
// tensors (templates/flashjit/fwd_tma_params.cuh). Throws ArgumentError naming the tensor
// when the driver cannot describe it (tma_compatible() says so beforehand).
FwdTmaMaps make_tma_maps(const TensorView& q, const TensorView& k, const TensorView& v, const TileConfig& tile);
// Whether q, k and v can be read by TMA: what the driver's encoder requires beyond the
// forward's own checks (16-byte aligned rows are checked already): no zero strides, byte
// strides below 2^40.
bool tma_compatible(const TensorView& q, const TensorView& k, const TensorView& v);

// maps: the descriptors of a tma_ws kernel (required then), null otherwise.
void launch(const LoadedKernel& kernel, const TileConfig& tile, FwdParams params, const ProblemShape& shape,
            CUstream stream, const FwdTmaMaps* maps = nullptr);

}  // namespace flashjit
