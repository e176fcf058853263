// One door for every kernel kind of a spec (kernel_kind.h): what the CLI's --kind and
// `flashjit cache import --verify` call, so a new kind is added here once.
#pragma once

#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"
#include "flashjit/kernel_kind.h"
#include "flashjit/runtime.h"

namespace flashjit {

// The CUDA source of the spec's kernel of `kind` (block_mask: the builder of its mask;
// bwd_preprocess, bwd_dq_convert: the one its dtype and head dims share; bwd_dkdv: spec.tile
// read as the backward's tile, the heuristic's when absent). arch as emit_cuda().
std::string emit_kind_cuda(KernelKind kind, const AttentionSpec& spec, const std::string& arch = "");
// validate(spec) as the kind reads it: bwd_dkdv reads spec.tile as the backward's tile, which
// check_bwd_tile() checks when the kernel is generated, not the forward's rules.
void validate_for_kind(KernelKind kind, const AttentionSpec& spec);
// Its compile, as compile() does for the forward.
CompiledKernel compile_kind(KernelKind kind, const AttentionSpec& spec, const CompileOptions& options = {});
// Every kind the spec has a kernel of, in kernel_kinds() order: fwd; block_mask when its mask
// is an expression (the builder create_block_mask runs); the backward's bwd_preprocess,
// bwd_dkdv, bwd_dq_convert; bwd_dq (the deterministic backward). The CLI's --kind all.
std::vector<KernelKind> spec_kernel_kinds(const AttentionSpec& spec);

}  // namespace flashjit
