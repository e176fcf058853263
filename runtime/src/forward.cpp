// forward(): validate, pick the tile config, fetch the loaded kernel, launch.
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/runtime.h"
#include "launch.h"

namespace flashjit {

bool gpu_available() { return CudaDriver::get().available(); }
std::string gpu_unavailable_reason() { return CudaDriver::get().unavailable_reason(); }

void forward(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
             const TensorView& o, const TensorView* lse, CUstream_st* stream) {
  validate(spec);
  const ProblemShape shape = validate_forward_args(spec, q, k, v, o, lse);
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::forward");
  if (shape.seqlen_q == 0) return;  // nothing to compute or store

  const CUdevice dev = drv.current_device();
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  const std::string arch = drv.device_arch(dev);
  const AttentionSpec resolved = resolve_tile(spec, arch);
  const LoadedKernel& kernel = loaded_kernel(resolved, ctx, arch);
  launch(kernel, *resolved.tile, make_params(q, k, v, o, lse, shape), shape, reinterpret_cast<CUstream>(stream));
}

}  // namespace flashjit
