// Tile IR (after passes) -> readable CUDA C++ that instantiates the device templates.
#pragma once

#include <string>

#include "flashjit/expr.h"
#include "flashjit/ir.h"

namespace flashjit::codegen {

// The complete translation unit handed to NVRTC: a header comment with the spec and
// the IR, the launch contract, and an extern "C" __global__ entry named k.name.
std::string generate_cuda(const ir::Kernel& k);

// The kernel entry name for a spec: flashjit_fwd_<dtype>_d<D>x<DV>_<mask>_<hash8>.
std::string kernel_name(const AttentionSpec& spec);

// The user's expressions as device functions over `params` (FwdParams), shared by every
// kernel kind (expr_hooks.cpp):
//   mask_mod(params, b, h, q_idx, kv_idx) -> bool, per element (exact float math);
//   mask_interval(params, box) -> IvB, the mask over an index box (tile classification);
//   score_mod(params, score, b, h, q_idx, kv_idx) -> float (fast float math);
// and, for the forward's element loop, each factored (compiler/expr/factor.cpp):
//   mask_row / mask_col / mask_elem, score_row / score_col / score_elem, with their structs, and
//   score_narrow_* when score_hook_splits() (the form exact while the lengths are at most
//   kScoreNarrowLimit).
std::string capture_comments(const std::vector<expr::CaptureDecl>& captures);
std::string mask_hooks(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures);
std::string score_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures);
bool score_hook_splits(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures);

// The block-mask builder kernel for a mask expression (templates/flashjit/block_mask_build.cuh):
// a complete translation unit whose entry is named by block_mask_kernel_name().
// A spec holding only this mask and its captures (other fields at valid defaults): what
// names and describes a builder kernel, and what its reads are checked against.
AttentionSpec mask_only_spec(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures);
std::string generate_block_mask_cuda(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures);
std::string block_mask_kernel_name(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures);
inline constexpr int kBlockMaskThreads = 128;

// The backward's preprocess kernel (templates/flashjit/bwd_preprocess.cuh), a complete
// translation unit. It reads only the dtype and head dims of `spec`: bwd_preprocess_spec()
// is the spec that names it and is stored with its cache entry.
AttentionSpec bwd_preprocess_spec(const AttentionSpec& spec);
std::string bwd_preprocess_kernel_name(const AttentionSpec& spec);
std::string generate_bwd_preprocess_cuda(const AttentionSpec& spec);
inline constexpr int kBwdPreprocessRows = 64, kBwdPreprocessThreads = 128;

}  // namespace flashjit::codegen
