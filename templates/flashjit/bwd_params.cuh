// Launch parameters of the backward kernel kinds (docs/architecture.md, "Backward"). Included
// by the host runtime and by the generated kernels, so both agree on the layout.
#pragma once

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

}  // namespace flashjit
