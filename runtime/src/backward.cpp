// The backward's kernels (backward.h): compile and launch, checked before any launch.
#include "flashjit/backward.h"

#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/tuning.h"
#include "kernel_pipeline.h"
#include "launch.h"
#include "validate_args.h"
#include "flashjit/bwd_params.cuh"

namespace flashjit {

std::string emit_bwd_preprocess_cuda(const AttentionSpec& spec) {
  validate(spec);
  return codegen::generate_bwd_preprocess_cuda(spec);
}

CompiledKernel compile_bwd_preprocess(const AttentionSpec& spec, const CompileOptions& options) {
  validate(spec);
  const AttentionSpec meta = codegen::bwd_preprocess_spec(spec);  // shown by `flashjit cache list`
  return compile_source(codegen::bwd_preprocess_kernel_name(meta), codegen::generate_bwd_preprocess_cuda(meta),
                        resolve_arch(options.arch), spec_to_json(meta), codegen::kBwdPreprocessThreads, 0,
                        TileConfig{}, options.use_cache);
}

void backward_preprocess(const AttentionSpec& spec, const TensorView& o, const TensorView& dout, const TensorView& d,
                         const TensorView& dq_accum, CUstream_st* stream) {
  validate(spec);
  const ProblemShape s = validate_bwd_preprocess_args(spec, o, dout, d, dq_accum);
  if (s.seqlen_q == 0) return;  // no row: nothing to compute or zero
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::backward_preprocess");
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  const std::string arch = current_device_info().arch;
  const AttentionSpec meta = codegen::bwd_preprocess_spec(spec);
  const LoadedKernel& k = loaded_module(ctx, codegen::bwd_preprocess_kernel_name(meta) + "@" + arch, [&] {
    CompileOptions options;
    options.arch = arch;
    return compile_bwd_preprocess(meta, options);
  });

  BwdPreprocessParams p{};
  p.o = o.data, p.dout = dout.data;
  p.d = static_cast<float*>(d.data), p.dq_accum = static_cast<float*>(dq_accum.data);
  p.o_batch_stride = o.strides[0], p.o_head_stride = o.strides[1], p.o_row_stride = o.strides[2];
  p.dout_batch_stride = dout.strides[0], p.dout_head_stride = dout.strides[1], p.dout_row_stride = dout.strides[2];
  p.seqlen_q = static_cast<int>(s.seqlen_q);
  p.num_heads_q = static_cast<int>(s.heads_q);
  void* args[] = {&p};
  const unsigned blocks = static_cast<unsigned>((s.seqlen_q + codegen::kBwdPreprocessRows - 1) / codegen::kBwdPreprocessRows);
  drv.check(drv.cuLaunchKernel(k.function, blocks, static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch),
                               codegen::kBwdPreprocessThreads, 1, 1, 0, reinterpret_cast<CUstream>(stream), args, nullptr),
            "cuLaunchKernel(bwd_preprocess)");
}

}  // namespace flashjit
