// Launch parameters of the backward kernel kinds (docs/architecture.md, "Backward"). Included
// by the host runtime and by the generated kernels, so both agree on the layout.
#pragma once

#include "flashjit/fwd_params.cuh"

namespace flashjit {

// bwd_preprocess: D = rowsum(dO ∘ O) and a zeroed fp32 dQ accumulator, per query row.
struct BwdPreprocessParams {
  const void* o;     // (batch, heads_q, seqlen_q, head_dim_v), the forward's output
  const void* dout;  // same shape: dL/dO
  float* d;          // (batch, heads_q, seqlen_q) fp32, contiguous
  float* dq_accum;   // (batch, heads_q, seqlen_q, head_dim) fp32, contiguous; zeroed
  long long o_batch_stride, o_head_stride, o_row_stride;
  long long dout_batch_stride, dout_head_stride, dout_row_stride;
  int seqlen_q;
  int num_heads_q;
};

// The fp32 gradient of a captured float tensor (a learnable bias), accumulated with atomics
// by the bwd_dkdv kernel of a spec whose score_mod reads it on a differentiable path. Null
// data: no gradient wanted for it. Same index space as the capture (CaptureArg).
struct CaptureGradArg {
  float* data;
  long long strides[4];  // in elements
};

// bwd_dkdv: dK and dV of one block of keys, and its share of dQ reduce-added into dq_accum;
// bwd_dq: dQ of one block of queries.
// Strides in elements, as in FwdParams; fwd.o is not read (D stands for it).
struct BwdParams {
  FwdParams fwd;  // q, k, v, lse (natural log; -inf for a row with no key), lengths, heads, captures
  const void* dout;  // (batch, heads_q, seqlen_q, head_dim_v)
  long long dout_batch_stride, dout_head_stride, dout_row_stride;
  const float* delta;  // (batch, heads_q, seqlen_q) contiguous: D = rowsum(dO ∘ O)
  float* dq_accum;     // (batch, heads_q, seqlen_q, head_dim) contiguous fp32, dL/d(q·k) · K summed
  void* dk;            // (batch, heads_kv, seqlen_k, head_dim)
  long long dk_batch_stride, dk_head_stride, dk_row_stride;
  void* dv;            // (batch, heads_kv, seqlen_k, head_dim_v)
  long long dv_batch_stride, dv_head_stride, dv_row_stride;
  // Deterministic mode: dq_accum is null (bwd_preprocess and bwd_dkdv leave dQ alone) and
  // bwd_dq writes dQ here, (batch, heads_q, seqlen_q, head_dim).
  void* dq;
  long long dq_batch_stride, dq_head_stride, dq_row_stride;
  // Capture gradients (the `_dcap` bwd_dkdv kernels only), indexed like fwd.caps.
  CaptureGradArg dcaps[kMaxCaptures];
};

// bwd_dq_convert: dQ = dq_accum · scale in the dtype.
struct BwdDqConvertParams {
  const float* dq_accum;  // (batch, heads_q, seqlen_q, head_dim) contiguous
  void* dq;               // (batch, heads_q, seqlen_q, head_dim)
  long long dq_batch_stride, dq_head_stride, dq_row_stride;
  int seqlen_q;
  int num_heads_q;
  float scale;
};

}  // namespace flashjit
