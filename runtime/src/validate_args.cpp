// Every tensor of forward() is checked here, before anything is launched: a wrong shape,
// stride, dtype or pointer gets an ArgumentError naming it, never a wrong result.
#include "validate_args.h"

#include <fmt/format.h>

#include <cstdint>

#include "flashjit/error.h"

namespace flashjit {
namespace {

const char* name_of(ElemType t) { return t == ElemType::bf16 ? "bf16" : t == ElemType::f16 ? "fp16" : "float32"; }

void check_size(const char* name, const TensorView& t, int dim, int64_t expected, const char* what) {
  if (t.sizes[dim] != expected)
    throw ArgumentError(name, fmt::format("size {} of dim {} ({}) must be {}", t.sizes[dim], dim, what, expected));
}

// 16-bit tensors are moved in 16-byte chunks (cp.async): rows must start 16-byte aligned.
void check_16bit_tensor(const char* name, const TensorView& t, ElemType expected) {
  if (t.data == nullptr) throw ArgumentError(name, "data pointer is null");
  if (t.rank != 4) throw ArgumentError(name, fmt::format("must have 4 dims (batch, heads, seqlen, head_dim), has {}", t.rank));
  if (t.dtype != expected)
    throw ArgumentError(name, fmt::format("dtype is {}, the spec says {}", name_of(t.dtype), name_of(expected)));
  for (int d = 0; d < 4; ++d)
    if (t.sizes[d] < 0) throw ArgumentError(name, fmt::format("size of dim {} is negative ({})", d, t.sizes[d]));
  if (t.strides[3] != 1)
    throw ArgumentError(name, fmt::format("the last dim (head_dim) must be contiguous (stride 1), has stride {}", t.strides[3]));
  for (int d = 0; d < 3; ++d)
    if (t.strides[d] % 8 != 0 || t.strides[d] < 0)
      throw ArgumentError(name, fmt::format("stride {} of dim {} must be a non-negative multiple of 8 elements "
                                            "(16-byte aligned rows)", t.strides[d], d));
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) throw ArgumentError(name, "data pointer must be 16-byte aligned");
}

}  // namespace

ProblemShape validate_forward_args(const AttentionSpec& spec0, const TensorView& q, const TensorView& k,
                                   const TensorView& v, const TensorView& o, const TensorView* lse) {
  const AttentionSpec spec = spec0.normalized();
  const ElemType et = spec.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  check_16bit_tensor("q", q, et);
  check_16bit_tensor("k", k, et);
  check_16bit_tensor("v", v, et);
  check_16bit_tensor("o", o, et);

  ProblemShape s{q.sizes[0], q.sizes[1], k.sizes[1], q.sizes[2], k.sizes[2]};
  if (s.batch < 1) throw ArgumentError("q", "batch (dim 0) must be at least 1");
  if (s.batch > 65535) throw ArgumentError("q", fmt::format("batch {} exceeds 65535", s.batch));
  check_size("q", q, 1, spec.num_heads_q, "num_heads_q of the spec");
  check_size("q", q, 3, spec.head_dim, "head_dim of the spec");
  check_size("k", k, 0, s.batch, "batch of q");
  check_size("k", k, 1, spec.num_heads_kv, "num_heads_kv of the spec");
  check_size("k", k, 3, spec.head_dim, "head_dim of the spec");
  check_size("v", v, 0, s.batch, "batch of q");
  check_size("v", v, 1, spec.num_heads_kv, "num_heads_kv of the spec");
  check_size("v", v, 2, s.seqlen_k, "seqlen_k of k");
  check_size("v", v, 3, spec.head_dim_v, "head_dim_v of the spec");
  check_size("o", o, 0, s.batch, "batch of q");
  check_size("o", o, 1, spec.num_heads_q, "num_heads_q of the spec");
  check_size("o", o, 2, s.seqlen_q, "seqlen_q of q");
  check_size("o", o, 3, spec.head_dim_v, "head_dim_v of the spec");
  if (s.heads_q > 65535) throw ArgumentError("q", "num_heads_q exceeds 65535");
  if (s.seqlen_q > INT32_MAX / 2 || s.seqlen_k > INT32_MAX / 2)
    throw ArgumentError("q", "sequence lengths must be below 2^30");

  if (spec.return_lse && lse == nullptr) throw ArgumentError("lse", "the spec sets return_lse but no lse tensor was given");
  if (lse) {
    if (lse->data == nullptr) throw ArgumentError("lse", "data pointer is null");
    if (lse->dtype != ElemType::f32) throw ArgumentError("lse", fmt::format("dtype is {}, must be float32", name_of(lse->dtype)));
    if (lse->rank != 3) throw ArgumentError("lse", "must have 3 dims (batch, heads_q, seqlen_q)");
    check_size("lse", *lse, 0, s.batch, "batch");
    check_size("lse", *lse, 1, s.heads_q, "num_heads_q");
    check_size("lse", *lse, 2, s.seqlen_q, "seqlen_q");
    if (lse->strides[2] != 1) throw ArgumentError("lse", "the seqlen dim must be contiguous (stride 1)");
    if (reinterpret_cast<uintptr_t>(lse->data) % 4 != 0) throw ArgumentError("lse", "data pointer must be 4-byte aligned");
  }
  return s;
}

}  // namespace flashjit
