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
// A C++ float literal ("0.0f", "0.125f"; "0f" would not parse), 9 significant digits.
std::string float_literal(double v);
// The <mask> part of kernel names: nomask, causal_br, swin128_0_tl, custom, ...
std::string mask_tag(const MaskSpec& mask);

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
// factored = false: only mask_mod and mask_interval, only score_mod (what the backward uses).
std::string mask_hooks(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures,
                       bool factored = true);
std::string score_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures,
                       bool factored = true);
// score_mod_grad(params, score, b, h, q_idx, kv_idx) -> d score_mod / d score (fast float math).
std::string score_grad_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures);
// The captures (indices into `captures`) the score_mod reads on a differentiable path: float
// tensors whose values the score depends on smoothly (expr::read_gradients), sorted.
std::vector<int> score_grad_captures(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures);
// score_mod_capture_grads(bp, g, score, b, h, q_idx, kv_idx): g times the derivative with
// respect to each such read, added into bp.dcaps (the backward's `_dcap` kernels).
std::string capture_grad_hook(const std::string& score_mod, const std::vector<expr::CaptureDecl>& captures);
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

// The bwd_dkdv kernel (templates/flashjit/bwd_dkdv_sm80.cuh, bwd_dkdv_sm90.cuh) for spec with spec.tile the
// backward's tile (default_bwd_tile, heuristics.h): the skeleton instantiated with the spec's
// mask, score_mod and its derivative. Grid (ceil(seqlen_k / block_n), heads_kv, batch).
// dq_partials false: the deterministic mode's kernel, without dQ (bwd_dq computes it).
// capture_grads: the kernel also accumulates the score_mod's float captures' gradients ("_dcap").
std::string bwd_dkdv_kernel_name(const AttentionSpec& spec, bool dq_partials = true, bool capture_grads = false);
std::string generate_bwd_dkdv_cuda(const AttentionSpec& spec, bool dq_partials = true, bool capture_grads = false);
// Its dynamic shared memory: the traits' plan, plus the tile list when the mask is classified
// by interval analysis.
int bwd_dkdv_smem_bytes(const AttentionSpec& spec, const TileConfig& tile);
// Whether the q tiles of a key block are classified per tile (a mask expression that is not
// a band), rather than given in closed form.
bool bwd_dkdv_listed(const AttentionSpec& spec);

// The variant part shared by the backward's kernels: capture comments, mask and score hooks
// and the `Variant` struct (bwd_block.cuh documents what the skeletons call). Refers to the
// kernel's traits as T (T::BM, T::BN) for the full-tile rule. Emitted inside the caller's
// anonymous namespace, which it closes before the struct.
// capture_grads: the Variant also adds into the captures' gradients (kCaptureGrads).
std::string bwd_variant_text(const AttentionSpec& spec, bool capture_grads = false);

// The deterministic mode's dQ kernel (templates/flashjit/bwd_dq_sm80.cuh): q-stationary, each
// block owns block_m query rows of one head and loops over the key tiles that they see,
// recomputing S and dP, so dQ is summed in one fixed order (no atomics). spec.tile is its
// tile (default_bwd_dq_tile); grid (ceil(seqlen_q / block_m), heads_q, batch).
std::string bwd_dq_kernel_name(const AttentionSpec& spec);
std::string generate_bwd_dq_cuda(const AttentionSpec& spec);
int bwd_dq_smem_bytes(const AttentionSpec& spec, const TileConfig& tile);

// The dQ convert kernel (templates/flashjit/bwd_dq_convert.cuh): dq = dq_accum · scale in the
// dtype. It reads the dtype and head_dim only (bwd_dq_convert_spec names it).
AttentionSpec bwd_dq_convert_spec(const AttentionSpec& spec);
std::string bwd_dq_convert_kernel_name(const AttentionSpec& spec);
std::string generate_bwd_dq_convert_cuda(const AttentionSpec& spec);
inline constexpr int kBwdDqConvertRows = 64, kBwdDqConvertThreads = 128;

}  // namespace flashjit::codegen
