// The forward kernel's launch parameters. Included by the host runtime and by the
// generated kernel, so both agree on the layout byte for byte. Strides are in elements.
#pragma once

#include "flashjit/capture_arg.cuh"

namespace flashjit {

struct FwdParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  float* lse;  // (batch, heads_q, seqlen_q) float32; null when not requested
  long long q_batch_stride, q_head_stride, q_row_stride;
  long long k_batch_stride, k_head_stride, k_row_stride;
  long long v_batch_stride, v_head_stride, v_row_stride;
  long long o_batch_stride, o_head_stride, o_row_stride;
  long long lse_batch_stride, lse_head_stride;
  int seqlen_q;
  int seqlen_k;
  int num_heads_q;
  int gqa_group;  // heads_q / heads_kv
  int batch;      // read by persistent kernels, which walk (q tile, head, batch) themselves
  // Dropout's RNG state (philox.cuh): read from dropout_state[0..1] when that is set (device
  // memory: CUDA-graph replays), else these two. Unused without dropout.
  unsigned long long dropout_seed, dropout_offset;
  const unsigned long long* dropout_state;
  // Tensors the mask / score expressions read (docs/expressions.md), in declaration order.
  CaptureArg caps[kMaxCaptures];
};

}  // namespace flashjit
