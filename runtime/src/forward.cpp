// forward(): validate, fetch the loaded kernel for (spec, device), launch.
#include <fmt/format.h>

#include <map>
#include <mutex>
#include <utility>

#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/runtime.h"
#include "templates_host.h"
#include "validate_args.h"

namespace flashjit {
namespace {

struct LoadedKernel {
  CUmodule module = nullptr;
  CUfunction function = nullptr;
  CompiledKernel info;
};

// Modules are per context: key by (context, canonical spec). Loaded once, kept for the
// life of the process (like cuModuleLoad'ed kernels in any CUDA library).
const LoadedKernel& loaded_kernel(const AttentionSpec& spec, CUcontext ctx, const std::string& arch) {
  static std::mutex mu;
  static std::map<std::pair<CUcontext, std::string>, LoadedKernel> loaded;
  const std::string spec_key = spec_to_json(spec) + "@" + arch;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find({ctx, spec_key});
  if (it != loaded.end()) return it->second;

  CudaDriver& drv = CudaDriver::get();
  LoadedKernel lk;
  CompileOptions opts;
  opts.arch = arch;
  lk.info = compile(spec, opts);
  drv.check(drv.cuModuleLoadData(&lk.module, lk.info.image.data()), "cuModuleLoadData");
  drv.check(drv.cuModuleGetFunction(&lk.function, lk.module, lk.info.kernel_name.c_str()), "cuModuleGetFunction");
  // More than 48 KB of dynamic shared memory must be opted into per function.
  drv.check(drv.cuFuncSetAttribute(lk.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                   lk.info.dynamic_smem_bytes),
            "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
  return loaded.emplace(std::make_pair(ctx, spec_key), std::move(lk)).first->second;
}

}  // namespace

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

  FwdParams p{};
  p.q = q.data, p.k = k.data, p.v = v.data, p.o = o.data;
  p.lse = lse ? static_cast<float*>(lse->data) : nullptr;
  p.q_batch_stride = q.strides[0], p.q_head_stride = q.strides[1], p.q_row_stride = q.strides[2];
  p.k_batch_stride = k.strides[0], p.k_head_stride = k.strides[1], p.k_row_stride = k.strides[2];
  p.v_batch_stride = v.strides[0], p.v_head_stride = v.strides[1], p.v_row_stride = v.strides[2];
  p.o_batch_stride = o.strides[0], p.o_head_stride = o.strides[1], p.o_row_stride = o.strides[2];
  if (lse) p.lse_batch_stride = lse->strides[0], p.lse_head_stride = lse->strides[1];
  p.seqlen_q = static_cast<int>(shape.seqlen_q);
  p.seqlen_k = static_cast<int>(shape.seqlen_k);
  p.num_heads_q = static_cast<int>(shape.heads_q);
  p.gqa_group = static_cast<int>(shape.heads_q / shape.heads_kv);

  const TileConfig& t = *resolved.tile;
  const unsigned grid_x = static_cast<unsigned>((shape.seqlen_q + t.block_m - 1) / t.block_m);
  void* args[] = {&p};
  drv.check(drv.cuLaunchKernel(kernel.function, grid_x, static_cast<unsigned>(shape.heads_q),
                               static_cast<unsigned>(shape.batch), kernel.info.threads, 1, 1,
                               kernel.info.dynamic_smem_bytes, reinterpret_cast<CUstream>(stream), args, nullptr),
            "cuLaunchKernel");
}

}  // namespace flashjit
