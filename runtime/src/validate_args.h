// Internal: checks of forward()'s tensors against the spec, before any launch.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "flashjit/runtime.h"

namespace flashjit {

struct ProblemShape {
  int64_t batch, heads_q, heads_kv, seqlen_q, seqlen_k;
};

// The most bytes one tensor may span, from its first to one past its last element:
// sum((size_d - 1) * stride_d) * elem_size + elem_size < 2^48 (256 TiB, beyond any GPU's
// address space today), and every single stride * elem_size < 2^48 as well (a dim of
// size 1 adds nothing to the extent, but its stride still reaches the kernel).
//
// Why it is enough: the kernel (block_context.cuh, smem_tile.cuh, epilogue.cuh) computes
// element offsets in 64-bit `long long`, index_d * stride_d summed over the dims, from int
// indices (batch, head, row, col). An index it dereferences is below size_d, so its term is
// at most (size_d - 1) * stride_d < 2^47 elements. An index it only forms (the rows of a
// tile past the tensor's end, a prefetched KV tile) is at most size_d - 1 + 256, adding at
// most 256 * stride_d < 2^8 * 2^47 = 2^55. So every offset is below 2^58 and no 64-bit
// arithmetic can wrap; 32-bit indices do not wrap either (batch and heads < 2^16, sequence
// lengths < 2^30, checked separately), and data + extent is checked not to wrap the address.
inline constexpr int kMaxTensorBytesLog2 = 48;
inline constexpr uint64_t kMaxTensorBytes = uint64_t(1) << kMaxTensorBytesLog2;

// Throws ArgumentError naming the tensor and dimension and what is allowed. Besides shapes,
// dtypes and alignment it checks that each tensor spans less than kMaxTensorBytes, that the
// outputs (o, lse) do not overlap themselves (distinct indices, distinct addresses; inputs
// may broadcast with zero strides), and that no output's byte range intersects an input's
// or the other output's (flashjit does not compute in place).
ProblemShape validate_forward_args(const AttentionSpec& spec, const TensorView& q, const TensorView& k,
                                   const TensorView& v, const TensorView& o, const TensorView* lse);

// Checks the tensors the spec's expressions read: their number, dtypes and ranks against
// spec.captures, sizes below 2^31, non-negative strides, alignment, extents, no overlap
// with o or lse; then, by interval analysis over this call's index ranges, that every read
// of them is in bounds (and that a mask compiled as a band cannot overflow 32 bits).
// Throws ArgumentError naming `captures.<name>` (or mask.expr / score_mod).
void validate_capture_args(const AttentionSpec& spec, const std::vector<TensorView>& captures,
                           const ProblemShape& shape, const TensorView& o, const TensorView* lse);
// The same for a kernel writing `outputs` (name, view; null views are skipped).
using NamedView = std::pair<const char*, const TensorView*>;
void validate_capture_args(const AttentionSpec& spec, const std::vector<TensorView>& captures,
                           const ProblemShape& shape, const std::vector<NamedView>& outputs);

// Dropout's RNG state: device_state, when set, 8-byte aligned (ArgumentError "dropout").
void validate_dropout_args(const AttentionSpec& spec, const DropoutRng& rng);

// bwd_preprocess's tensors: o and dout (batch, heads_q, seqlen_q, head_dim_v) of the spec's
// dtype, laid out as forward() allows; d float32 (batch, heads_q, seqlen_q) and dq_accum
// float32 (batch, heads_q, seqlen_q, head_dim), contiguous, 16-byte aligned, sharing no byte
// with any other. heads_kv and seqlen_k of the result are not known here (0 / the spec's).
ProblemShape validate_bwd_preprocess_args(const AttentionSpec& spec, const TensorView& o, const TensorView& dout,
                                          const TensorView& d, const TensorView& dq_accum);

// backward()'s tensors: q, k, v, o and lse as forward() takes them (lse required), dout like
// o, dq like q, dk like k, dv like v (16-bit, 16-byte aligned rows, last dim contiguous); each
// gradient overlaps neither itself, another gradient nor any input.
ProblemShape validate_backward_args(const AttentionSpec& spec, const TensorView& q, const TensorView& k,
                                    const TensorView& v, const TensorView& o, const TensorView& lse,
                                    const TensorView& dout, const TensorView& dq, const TensorView& dk,
                                    const TensorView& dv);

}  // namespace flashjit
