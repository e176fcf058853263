// The backward's kernels (backward.h): compile, launch, and backward() over the three,
// everything checked before the first launch.
#include "flashjit/backward.h"

#include <fmt/format.h>

#include <algorithm>

#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/heuristics.h"
#include "flashjit/tuning.h"
#include "kernel_pipeline.h"
#include "autotune_backward.h"
#include "launch.h"
#include "validate_args.h"
#include "flashjit/bwd_params.cuh"

namespace flashjit {

namespace {

// The spec a bwd_dkdv kernel is generated from: normalized, its tile the backward's.
// The spec's own tile is the forward's and is not read (nor checked against the forward's rules).
AttentionSpec dkdv_spec(const AttentionSpec& spec, const std::string& arch, const std::optional<TileConfig>& tile) {
  AttentionSpec s = without_tile(spec).normalized();
  validate(s);
  s.tile = tile ? *tile : default_bwd_tile(s, arch);
  check_bwd_tile(s, *s.tile, arch);
  return s;
}

size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

int64_t elements(const TensorView& t) {
  int64_t n = 1;
  for (int d = 0; d < t.rank; ++d) n *= t.sizes[d];
  return n;
}

// BackwardOptions::capture_grads against the captures: true when any gradient is wanted.
bool check_capture_grads(const AttentionSpec& spec0, const std::vector<TensorView>& captures,
                         const std::vector<TensorView>& grads) {
  if (grads.empty()) return false;
  const AttentionSpec spec = spec0.normalized();
  if (grads.size() != captures.size())
    throw ArgumentError("options.capture_grads",
                        fmt::format("{} views given for {} captures; pass one per capture (null data for none) or none",
                                    grads.size(), captures.size()));
  const std::vector<int> differentiable = codegen::score_grad_captures(spec.score_mod, spec.captures);
  bool any = false;
  for (size_t c = 0; c < grads.size(); ++c) {
    const TensorView& g = grads[c];
    if (g.data == nullptr) continue;
    const std::string name = fmt::format("options.capture_grads[{}] ({})", c, spec.captures[c].name);
    if (std::find(differentiable.begin(), differentiable.end(), static_cast<int>(c)) == differentiable.end())
      throw ArgumentError(name, "the score_mod does not read this capture on a differentiable path (a float tensor "
                                "whose values the score depends on), so it has no gradient; pass null data for it");
    if (g.dtype != ElemType::f32) throw ArgumentError(name, "must be float32");
    if (g.rank != captures[c].rank) throw ArgumentError(name, fmt::format("has rank {}; the capture has {}", g.rank, captures[c].rank));
    int64_t dense = 1;
    for (int d = g.rank - 1; d >= 0; --d) {
      if (g.sizes[d] != captures[c].sizes[d])
        throw ArgumentError(name, fmt::format("size {} of dim {} differs from the capture's {}", g.sizes[d], d,
                                              captures[c].sizes[d]));
      if (g.sizes[d] > 1 && g.strides[d] != dense)
        throw ArgumentError(name, "must be contiguous (row-major, dense)");
      dense *= g.sizes[d];
    }
    if (reinterpret_cast<uintptr_t>(g.data) % 4 != 0) throw ArgumentError(name, "must be 4-byte aligned");
    any = true;
  }
  return any;
}

CUcontext current_context(const char* what) {
  CudaDriver& drv = CudaDriver::get();
  drv.require(what);
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  if (ctx == nullptr) drv.current_device();  // the primary context, as forward() makes current
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  return ctx;
}

const LoadedKernel& preprocess_kernel(CUcontext ctx, const AttentionSpec& spec, const std::string& arch) {
  const AttentionSpec meta = codegen::bwd_preprocess_spec(spec);
  return loaded_module(ctx, codegen::bwd_preprocess_kernel_name(meta) + "@" + arch, [&] {
    CompileOptions options;
    options.arch = arch;
    return compile_bwd_preprocess(meta, options);
  });
}

void launch_preprocess(const LoadedKernel& k, const TensorView& o, const TensorView& dout, float* d, float* dq_accum,
                       const ProblemShape& s, CUstream stream) {
  BwdPreprocessParams p{};
  p.o = o.data, p.dout = dout.data, p.d = d, p.dq_accum = dq_accum;
  p.o_batch_stride = o.strides[0], p.o_head_stride = o.strides[1], p.o_row_stride = o.strides[2];
  p.dout_batch_stride = dout.strides[0], p.dout_head_stride = dout.strides[1], p.dout_row_stride = dout.strides[2];
  p.seqlen_q = static_cast<int>(s.seqlen_q);
  p.num_heads_q = static_cast<int>(s.heads_q);
  void* args[] = {&p};
  const unsigned blocks = static_cast<unsigned>((s.seqlen_q + codegen::kBwdPreprocessRows - 1) / codegen::kBwdPreprocessRows);
  CudaDriver& drv = CudaDriver::get();
  drv.check(drv.cuLaunchKernel(k.function, blocks, static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch),
                               codegen::kBwdPreprocessThreads, 1, 1, 0, stream, args, nullptr),
            "cuLaunchKernel(bwd_preprocess)");
}

}  // namespace

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

std::string emit_bwd_dkdv_cuda(const AttentionSpec& spec, const std::string& arch, const std::optional<TileConfig>& tile) {
  return codegen::generate_bwd_dkdv_cuda(dkdv_spec(spec, emit_arch(arch), tile));
}

CompiledKernel compile_bwd_dkdv(const AttentionSpec& spec, const CompileOptions& options,
                                const std::optional<TileConfig>& tile, bool dq_partials, bool capture_grads) {
  const std::string arch = resolve_arch(options.arch);
  const AttentionSpec s = dkdv_spec(spec, arch, tile);
  return compile_source(codegen::bwd_dkdv_kernel_name(s, dq_partials, capture_grads),
                        codegen::generate_bwd_dkdv_cuda(s, dq_partials, capture_grads), arch, spec_to_json(s),
                        32 * s.tile->warps, codegen::bwd_dkdv_smem_bytes(s, *s.tile), *s.tile, options.use_cache);
}

namespace {

// The spec a bwd_dq kernel is generated from: normalized, its tile the heuristic's.
AttentionSpec dq_spec(const AttentionSpec& spec, const std::string& arch) {
  AttentionSpec s = without_tile(spec).normalized();
  validate(s);
  s.tile = default_bwd_dq_tile(s, arch);
  return s;
}

}  // namespace

std::string emit_bwd_dq_cuda(const AttentionSpec& spec, const std::string& arch) {
  return codegen::generate_bwd_dq_cuda(dq_spec(spec, emit_arch(arch)));
}

CompiledKernel compile_bwd_dq(const AttentionSpec& spec, const CompileOptions& options) {
  const std::string arch = resolve_arch(options.arch);
  const AttentionSpec s = dq_spec(spec, arch);
  return compile_source(codegen::bwd_dq_kernel_name(s), codegen::generate_bwd_dq_cuda(s), arch, spec_to_json(s),
                        32 * s.tile->warps, codegen::bwd_dq_smem_bytes(s, *s.tile), *s.tile, options.use_cache);
}

std::string emit_bwd_dq_convert_cuda(const AttentionSpec& spec) {
  validate(spec);
  return codegen::generate_bwd_dq_convert_cuda(spec);
}

CompiledKernel compile_bwd_dq_convert(const AttentionSpec& spec, const CompileOptions& options) {
  validate(spec);
  const AttentionSpec meta = codegen::bwd_dq_convert_spec(spec);
  return compile_source(codegen::bwd_dq_convert_kernel_name(meta), codegen::generate_bwd_dq_convert_cuda(meta),
                        resolve_arch(options.arch), spec_to_json(meta), codegen::kBwdDqConvertThreads, 0, TileConfig{},
                        options.use_cache);
}

void backward_preprocess(const AttentionSpec& spec, const TensorView& o, const TensorView& dout, const TensorView& d,
                         const TensorView& dq_accum, CUstream_st* stream) {
  validate(spec);
  const ProblemShape s = validate_bwd_preprocess_args(spec, o, dout, d, dq_accum);
  if (s.seqlen_q == 0) return;  // no row: nothing to compute or zero
  const CUcontext ctx = current_context("flashjit::backward_preprocess");
  const LoadedKernel& k = preprocess_kernel(ctx, spec, current_device_info().arch);
  launch_preprocess(k, o, dout, static_cast<float*>(d.data), static_cast<float*>(dq_accum.data), s,
                    reinterpret_cast<CUstream>(stream));
}

size_t backward_workspace_bytes(const AttentionSpec& spec0, int64_t batch, int64_t seqlen_q) {
  const AttentionSpec spec = spec0.normalized();
  const size_t rows = static_cast<size_t>(batch) * static_cast<size_t>(spec.num_heads_q) * static_cast<size_t>(seqlen_q);
  return round_up(rows * 4) + round_up(rows * static_cast<size_t>(spec.head_dim) * 4);
}

void backward(const AttentionSpec& spec, const TensorView& q, const TensorView& k, const TensorView& v,
              const TensorView& o, const TensorView& lse, const TensorView& dout, const TensorView& dq,
              const TensorView& dk, const TensorView& dv, CUstream_st* stream, const std::vector<TensorView>& captures,
              const BackwardOptions& options) {
  validate(spec);
  const ProblemShape s = validate_backward_args(spec, q, k, v, o, lse, dout, dq, dk, dv);
  validate_capture_args(spec, captures, s, {{"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
  validate_dropout_args(spec, options.dropout);
  const size_t need = backward_workspace_bytes(spec, s.batch, s.seqlen_q);
  if (options.workspace) {
    if (options.workspace_bytes < need)
      throw ArgumentError("options.workspace_bytes",
                          fmt::format("{} bytes given; this call needs {} (backward_workspace_bytes)", options.workspace_bytes, need));
    if (reinterpret_cast<uintptr_t>(options.workspace) % 16 != 0)
      throw ArgumentError("options.workspace", "must be 16-byte aligned");
  }
  const CUcontext ctx = current_context("flashjit::backward");
  CudaDriver& drv = CudaDriver::get();
  const DeviceInfo device = current_device_info();
  const std::string arch = device.arch;
  if (options.tile) (void)dkdv_spec(spec, arch, options.tile);  // a given tile is checked before anything runs
  const CUstream st = reinterpret_cast<CUstream>(stream);
  const LoadedKernel& pre = preprocess_kernel(ctx, spec, arch);
  const bool dq_partials = !options.deterministic;
  const bool capture_grads = check_capture_grads(spec, captures, options.capture_grads);
  // The last step: the dQ convert, or (deterministic) the bwd_dq kernel.
  const AttentionSpec conv_meta = codegen::bwd_dq_convert_spec(spec);
  const AttentionSpec dqs = options.deterministic ? dq_spec(spec, arch) : AttentionSpec{};
  const LoadedKernel& last =
      options.deterministic ? loaded_module(ctx, codegen::bwd_dq_kernel_name(dqs) + "@" + arch,
                                            [&] {
                                              CompileOptions co;
                                              co.arch = arch;
                                              return compile_bwd_dq(dqs, co);
                                            })
                            : loaded_module(ctx, codegen::bwd_dq_convert_kernel_name(conv_meta) + "@" + arch, [&] {
                                CompileOptions co;
                                co.arch = arch;
                                return compile_bwd_dq_convert(conv_meta, co);
                              });

  CUdeviceptr owned = 0;
  unsigned char* ws = static_cast<unsigned char*>(options.workspace);
  if (!ws && need > 0) {
    drv.check(drv.cuMemAllocAsync(&owned, need, st), "cuMemAllocAsync(backward workspace)");
    ws = reinterpret_cast<unsigned char*>(owned);
  }
  const size_t rows = static_cast<size_t>(s.batch * s.heads_q * s.seqlen_q);
  float* delta = reinterpret_cast<float*>(ws);
  float* accum = reinterpret_cast<float*>(ws + round_up(rows * 4));
  // Deterministic: no accumulator (bwd_preprocess and bwd_dkdv see null and leave dQ alone).
  float* dq_accum = options.deterministic ? nullptr : accum;
  // No query: dK, dV are 0 (bwd_dkdv stores its zero accumulators). No key: every row is
  // fully masked, so dQ is 0 (the zeroed accumulator, converted).
  try {
    BwdParams p{};
    p.fwd = make_params(q, k, v, o, &lse, s, captures);
    set_dropout(p.fwd, options.dropout);
    p.dout = dout.data;
    p.dout_batch_stride = dout.strides[0], p.dout_head_stride = dout.strides[1], p.dout_row_stride = dout.strides[2];
    p.delta = delta, p.dq_accum = dq_accum;
    p.dk = dk.data;
    p.dk_batch_stride = dk.strides[0], p.dk_head_stride = dk.strides[1], p.dk_row_stride = dk.strides[2];
    p.dv = dv.data;
    p.dv_batch_stride = dv.strides[0], p.dv_head_stride = dv.strides[1], p.dv_row_stride = dv.strides[2];
    p.dq = dq.data;
    p.dq_batch_stride = dq.strides[0], p.dq_head_stride = dq.strides[1], p.dq_row_stride = dq.strides[2];

    // The bwd_dkdv tile: the given one, or the tuning database's / autotuner's / heuristic's
    // (detail::choose_bwd_tile). Tuning times candidates on these buffers before anything is
    // computed: they overwrite dk, dv and add into the accumulator, which bwd_preprocess
    // zeroes afterwards; capture gradients are not touched (the candidates have none).
    AttentionSpec ds;
    if (options.tile) {
      ds = dkdv_spec(spec, arch, options.tile);
    } else {
      ds = without_tile(spec).normalized();
      BwdParams tp = p;
      tp.dq_accum = accum;
      ds.tile = detail::choose_bwd_tile(ds, tp, s, ctx, device, st);
      check_bwd_tile(ds, *ds.tile, arch);
    }
    const LoadedKernel& dkdv =
        loaded_module(ctx, codegen::bwd_dkdv_kernel_name(ds, dq_partials, capture_grads) + "@" + arch, [&] {
          CompileOptions co;
          co.arch = arch;
          return compile_bwd_dkdv(ds, co, ds.tile, dq_partials, capture_grads);
        });

    if (s.seqlen_q > 0) launch_preprocess(pre, o, dout, delta, dq_accum, s, st);
    for (size_t c = 0; capture_grads && c < options.capture_grads.size(); ++c) {
      const TensorView& g = options.capture_grads[c];
      if (g.data == nullptr) continue;
      p.dcaps[c].data = static_cast<float*>(g.data);
      for (int d = 0; d < g.rank; ++d) p.dcaps[c].strides[d] = g.strides[d];
      drv.check(drv.cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(g.data), 0, static_cast<size_t>(elements(g)), st),
                "cuMemsetD32Async(capture gradient)");
    }
    void* args[] = {&p};
    const TileConfig& t = *ds.tile;
    if (s.seqlen_k > 0)
      drv.check(drv.cuLaunchKernel(dkdv.function, static_cast<unsigned>((s.seqlen_k + t.block_n - 1) / t.block_n),
                                 static_cast<unsigned>(s.heads_kv), static_cast<unsigned>(s.batch), dkdv.info.threads, 1,
                                 1, dkdv.info.dynamic_smem_bytes, st, args, nullptr),
              "cuLaunchKernel(bwd_dkdv)");

    if (options.deterministic) {
      // No key: bwd_dq's blocks see no key tile and store zero dQ.
      const TileConfig& qt = *dqs.tile;
      if (s.seqlen_q > 0)
        drv.check(drv.cuLaunchKernel(last.function, static_cast<unsigned>((s.seqlen_q + qt.block_m - 1) / qt.block_m),
                                     static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch), last.info.threads,
                                     1, 1, last.info.dynamic_smem_bytes, st, args, nullptr),
                  "cuLaunchKernel(bwd_dq)");
      if (owned) drv.check(drv.cuMemFreeAsync(owned, st), "cuMemFreeAsync(backward workspace)");
      return;
    }
    BwdDqConvertParams c{};
    c.dq_accum = dq_accum, c.dq = dq.data;
    c.dq_batch_stride = dq.strides[0], c.dq_head_stride = dq.strides[1], c.dq_row_stride = dq.strides[2];
    c.seqlen_q = static_cast<int>(s.seqlen_q);
    c.num_heads_q = static_cast<int>(s.heads_q);
    c.scale = static_cast<float>(spec.effective_scale());
    void* cargs[] = {&c};
    if (s.seqlen_q > 0)
      drv.check(drv.cuLaunchKernel(last.function,
                                 static_cast<unsigned>((s.seqlen_q + codegen::kBwdDqConvertRows - 1) / codegen::kBwdDqConvertRows),
                                 static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch),
                                 codegen::kBwdDqConvertThreads, 1, 1, 0, st, cargs, nullptr),
              "cuLaunchKernel(bwd_dq_convert)");
  } catch (...) {
    if (owned) drv.cuMemFreeAsync(owned, st);
    throw;
  }
  if (owned) drv.check(drv.cuMemFreeAsync(owned, st), "cuMemFreeAsync(backward workspace)");
}

}  // namespace flashjit
