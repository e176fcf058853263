// Block masks: the class of every (query block, key block) cell of a mask, built on the GPU
// from the mask expression without a dense mask, and a forward restricted to one.
//
//   // cells: int32 [batch, heads, ceil(seqlen_q / 128), ceil(seqlen_k / 128)], contiguous
//   flashjit::build_block_mask(mask_expr, decls, {1, 1, 8192, 8192, 128, 128}, cells, stream, caps);
//   AttentionSpec s = flashjit::with_block_mask(spec, 128, 128, /*per_batch=*/false, /*per_head=*/false);
//   flashjit::forward(s, q, k, v, o, nullptr, stream, {caps..., cells});
//
// A cell is 0 (empty: no key of it is visible), 1 (partial: the mask decides per element)
// or 2 (full: every key visible). FlexAttention's BlockMask converts to this form (Python:
// flashjit.BlockMask.from_flex).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flashjit/compiled_kernel.h"
#include "flashjit/expr.h"
#include "flashjit/runtime.h"

namespace flashjit {

inline constexpr int kCellEmpty = 0, kCellPartial = 1, kCellFull = 2;
// The capture name with_block_mask() gives the cells.
inline constexpr const char* kBlockMaskCapture = "block_mask";

struct BlockMaskShape {
  int64_t batch = 1;  // 1: one mask for every batch (the mask is evaluated at b = 0)
  int64_t heads = 1;  // 1: one mask for every head (evaluated at h = 0)
  int64_t seqlen_q = 0, seqlen_k = 0;
  int block_q = 128, block_kv = 128;

  int64_t q_blocks() const { return (seqlen_q + block_q - 1) / block_q; }
  int64_t kv_blocks() const { return (seqlen_k + block_kv - 1) / block_kv; }
};

// The builder's CUDA source and its compile (NVRTC, cached like every kernel); no GPU needed
// when options.arch is given. Throws ArgumentError("mask_expr") for an expression that does
// not parse or is not a bool.
std::string emit_block_mask_cuda(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures);
CompiledKernel compile_block_mask(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures,
                                  const CompileOptions& options = {});

// Fills `cells` (int32, rank 4, sizes [batch, heads, q_blocks, kv_blocks], contiguous) on
// `stream`. Checked before the launch like forward(): the shape, the cells' view, and every
// read of the captured tensors against their sizes (captures.<name>).
void build_block_mask(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& captures,
                      const BlockMaskShape& shape, const TensorView& cells, CUstream_st* stream,
                      const std::vector<TensorView>& capture_views = {});

// `spec` restricted to a block mask passed as one more capture, kBlockMaskCapture (int32,
// rank 4: [batch or 1, heads or 1, q blocks, kv blocks]): a key is visible iff its cell is
// full, or partial and spec's own mask shows it. per_batch / per_head: whether the cells'
// first / second dim is indexed by b / h (else by 0). The result's mask is an expression, so
// tiles are classified by reading the cells (one read per tile when the kernel's tile lies
// inside a cell) and only partial tiles are masked per element.
AttentionSpec with_block_mask(const AttentionSpec& spec, int block_q, int block_kv, bool per_batch, bool per_head);

// A built-in mask (none, causal, sliding_window) as the expression it stands for; a custom
// mask's own expression.
std::string mask_expression(const MaskSpec& mask);

}  // namespace flashjit
