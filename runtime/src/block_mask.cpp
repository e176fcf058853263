// Block masks (block_mask.h): the builder kernel kind and the spec of a forward over cells.
#include "flashjit/block_mask.h"

#include <fmt/format.h>

#include <utility>

#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/tuning.h"
#include "kernel_pipeline.h"
#include "launch.h"
#include "validate_args.h"
#include "flashjit/block_mask_params.cuh"

namespace flashjit {
namespace {

using codegen::mask_only_spec;

// The expression, checked (it parses with these captures and is a bool), in canonical form.
std::string checked_mask(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures) {
  const AttentionSpec s = mask_only_spec(mask_expr, captures);
  try {
    validate(s);
  } catch (const SpecError& e) {
    const std::string prefix = "flashjit: spec." + e.field() + ": ";
    const std::string what = e.what();
    const std::string msg = what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
    throw ArgumentError(e.field() == "mask.expr" ? "mask_expr" : e.field(), msg);
  }
  return s.normalized().mask.expr;
}

const LoadedKernel& loaded_builder(const std::string& mask, const std::vector<expr::CaptureDecl>& captures,
                                   CUcontext ctx, const std::string& arch) {
  return loaded_module(ctx, codegen::block_mask_kernel_name(mask, captures) + "@" + arch, [&] {
    CompileOptions options;
    options.arch = arch;
    return compile_block_mask(mask, captures, options);
  });
}

void check_block_size(const char* name, int v) {
  if (v < 1 || v > (1 << 20))
    throw ArgumentError(name, fmt::format("is {}; allowed: 1 to 2^20", v));
}

}  // namespace

std::string mask_expression(const MaskSpec& m) {
  const std::string offset = m.align == MaskAlign::bottom_right ? " + (seqlen_k - seqlen_q)" : "";
  switch (m.kind) {
    case MaskKind::none: return "true";
    case MaskKind::causal: return "kv_idx <= q_idx" + offset;
    case MaskKind::sliding_window: {
      std::string s;
      if (m.left >= 0) s += fmt::format("kv_idx >= q_idx{} - {}", offset, m.left);
      if (m.right >= 0) s += fmt::format("{}kv_idx <= q_idx{} + {}", s.empty() ? "" : " & ", offset, m.right);
      return s.empty() ? "true" : s;
    }
    case MaskKind::custom: return m.expr;
  }
  return "true";
}

std::string emit_block_mask_cuda(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures) {
  return codegen::generate_block_mask_cuda(checked_mask(mask_expr, captures), captures);
}

CompiledKernel compile_block_mask(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures,
                                  const CompileOptions& options) {
  const std::string mask = checked_mask(mask_expr, captures);
  const std::string arch = resolve_arch(options.arch);
  const AttentionSpec meta = mask_only_spec(mask, captures);  // shown by `flashjit cache list`
  return compile_source(codegen::block_mask_kernel_name(mask, captures),
                        codegen::generate_block_mask_cuda(mask, captures), arch, spec_to_json(meta),
                        codegen::kBlockMaskThreads, 0, TileConfig{}, options.use_cache);
}

void build_block_mask(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures,
                      const BlockMaskShape& s, const TensorView& cells, CUstream_st* stream,
                      const std::vector<TensorView>& capture_views) {
  const std::string mask = checked_mask(mask_expr, captures);
  if (s.batch < 1 || s.batch > 65535) throw ArgumentError("batch", fmt::format("is {}; allowed: 1 to 65535", s.batch));
  if (s.heads < 1 || s.heads > 65535) throw ArgumentError("heads", fmt::format("is {}; allowed: 1 to 65535", s.heads));
  for (const auto& [name, n] : {std::pair<const char*, int64_t>{"seqlen_q", s.seqlen_q}, {"seqlen_k", s.seqlen_k}})
    if (n < 1 || n > (int64_t{1} << 30)) throw ArgumentError(name, fmt::format("is {}; allowed: 1 to 2^30", n));
  check_block_size("block_q", s.block_q);
  check_block_size("block_kv", s.block_kv);
  const int64_t want[4] = {s.batch, s.heads, s.q_blocks(), s.kv_blocks()};
  if (cells.dtype != ElemType::i32 || cells.rank != 4)
    throw ArgumentError("cells", "must be an int32 tensor of rank 4 (batch, heads, q blocks, kv blocks)");
  for (int d = 0; d < 4; ++d)
    if (cells.sizes[d] != want[d])
      throw ArgumentError("cells", fmt::format("has shape ({}, {}, {}, {}); expected ({}, {}, {}, {})", cells.sizes[0],
                                               cells.sizes[1], cells.sizes[2], cells.sizes[3], want[0], want[1],
                                               want[2], want[3]));
  if (cells.strides[3] != 1 || cells.strides[2] != want[3] || cells.strides[1] != want[2] * want[3] ||
      cells.strides[0] != want[1] * want[2] * want[3])
    throw ArgumentError("cells", "must be contiguous");
  if (cells.data == nullptr || reinterpret_cast<uintptr_t>(cells.data) % 4 != 0)
    throw ArgumentError("cells", "data pointer must be non-null and 4-byte aligned");
  const int64_t kb_groups = (want[3] + codegen::kBlockMaskThreads - 1) / codegen::kBlockMaskThreads;
  if (want[2] * kb_groups > INT32_MAX)
    throw ArgumentError("block_q", "gives more than 2^31 - 1 thread blocks; use larger blocks");

  const AttentionSpec spec = mask_only_spec(mask, captures);  // reads checked over the builder's ranges
  const ProblemShape shape{s.batch, s.heads, s.heads, s.seqlen_q, s.seqlen_k};
  validate_capture_args(spec, capture_views, shape, cells, nullptr);

  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::build_block_mask");
  CUcontext ctx = nullptr;
  drv.check(drv.cuCtxGetCurrent(&ctx), "cuCtxGetCurrent");
  const LoadedKernel& k = loaded_builder(mask, captures, ctx, current_device_info().arch);

  BlockMaskParams p{};
  p.f.seqlen_q = static_cast<int>(s.seqlen_q);
  p.f.seqlen_k = static_cast<int>(s.seqlen_k);
  p.f.num_heads_q = static_cast<int>(s.heads);
  p.f.gqa_group = 1;
  set_captures(p.f, capture_views);
  p.cells = static_cast<int*>(cells.data);
  p.nb = static_cast<int>(want[0]), p.nh = static_cast<int>(want[1]);
  p.nqb = static_cast<int>(want[2]), p.nkb = static_cast<int>(want[3]);
  p.block_q = s.block_q, p.block_kv = s.block_kv;
  p.kb_groups = static_cast<int>(kb_groups);
  void* args[] = {&p};
  drv.check(drv.cuLaunchKernel(k.function, static_cast<unsigned>(want[2] * kb_groups), static_cast<unsigned>(want[0]),
                               static_cast<unsigned>(want[1]), codegen::kBlockMaskThreads, 1, 1, 0,
                               reinterpret_cast<CUstream>(stream), args, nullptr),
            "cuLaunchKernel(block mask)");
}

AttentionSpec with_block_mask(const AttentionSpec& spec0, int block_q, int block_kv, bool per_batch, bool per_head) {
  check_block_size("block_mask.block_q", block_q);
  check_block_size("block_mask.block_kv", block_kv);
  AttentionSpec spec = spec0.normalized();
  for (const expr::CaptureDecl& c : spec.captures)
    if (c.name == kBlockMaskCapture)
      throw ArgumentError("captures", fmt::format("the name '{}' is taken by the block mask; rename that capture",
                                                  kBlockMaskCapture));
  if (static_cast<int>(spec.captures.size()) >= kMaxCaptures)
    throw ArgumentError("captures", fmt::format("a block mask needs one more capture; at most {} in all", kMaxCaptures));
  const std::string cell = fmt::format("{}[{}, {}, q_idx // {}, kv_idx // {}]", kBlockMaskCapture,
                                       per_batch ? "b" : "0", per_head ? "h" : "0", block_q, block_kv);
  const std::string own = mask_expression(spec.mask);
  spec.mask = MaskSpec{};
  spec.mask.kind = MaskKind::custom;
  spec.mask.expr = own == "true" ? cell + " != 0" : fmt::format("{0} == 2 | {0} == 1 & ({1})", cell, own);
  spec.captures.push_back(expr::CaptureDecl{kBlockMaskCapture, expr::CaptureDType::i32, 4});
  return spec.normalized();
}

}  // namespace flashjit
