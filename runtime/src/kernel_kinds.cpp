// Dispatch over the kernel kinds (kernel_kinds.h).
#include "flashjit/kernel_kinds.h"

#include "flashjit/backward.h"
#include "flashjit/block_mask.h"

namespace flashjit {

std::string emit_kind_cuda(KernelKind kind, const AttentionSpec& spec, const std::string& arch) {
  switch (kind) {
    case KernelKind::fwd: return emit_cuda(spec, arch);
    case KernelKind::block_mask: return emit_block_mask_cuda(mask_expression(spec.normalized().mask), spec.captures);
    case KernelKind::bwd_preprocess: return emit_bwd_preprocess_cuda(spec);
    case KernelKind::bwd_dkdv: return emit_bwd_dkdv_cuda(spec, arch, spec.tile);
    case KernelKind::bwd_dq_convert: return emit_bwd_dq_convert_cuda(spec);
    case KernelKind::bwd_dq: return emit_bwd_dq_cuda(spec, arch);
  }
  return "";
}

void validate_for_kind(KernelKind kind, const AttentionSpec& spec) {
  validate(kind == KernelKind::bwd_dkdv || kind == KernelKind::bwd_dq ? without_tile(spec) : spec);
}

CompiledKernel compile_kind(KernelKind kind, const AttentionSpec& spec, const CompileOptions& options) {
  switch (kind) {
    case KernelKind::fwd: return compile(spec, options);
    case KernelKind::block_mask: return compile_block_mask(mask_expression(spec.normalized().mask), spec.captures, options);
    case KernelKind::bwd_preprocess: return compile_bwd_preprocess(spec, options);
    case KernelKind::bwd_dkdv: return compile_bwd_dkdv(spec, options, spec.tile);
    case KernelKind::bwd_dq_convert: return compile_bwd_dq_convert(spec, options);
    case KernelKind::bwd_dq: return compile_bwd_dq(spec, options);
  }
  return {};
}

std::vector<KernelKind> spec_kernel_kinds(const AttentionSpec& spec) {
  std::vector<KernelKind> out;
  for (KernelKind k : kernel_kinds())
    if (k != KernelKind::block_mask || spec.normalized().mask.kind == MaskKind::custom) out.push_back(k);
  return out;
}

}  // namespace flashjit
