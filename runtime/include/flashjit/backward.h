// The backward pass, kernel by kernel (docs/architecture.md, "Backward"). Its first kernel
// is here; bwd_dkdv and the dQ kernels join it, then one backward() entry over them.
//
//   // d: float32 (batch, heads_q, seqlen_q); dq_accum: float32 (batch, heads_q, seqlen_q, head_dim)
//   flashjit::backward_preprocess(spec, o, dout, d, dq_accum, stream);
//
// bwd_preprocess computes D = rowsum(dO ∘ O) in fp32 (bit-identical run to run) and zeroes
// the fp32 dQ accumulator that the dK/dV kernel reduce-adds into. It depends only on the
// spec's dtype and head dims, so every variant of a spec shares one kernel.
#pragma once

#include <string>

#include "flashjit/compiled_kernel.h"
#include "flashjit/runtime.h"

namespace flashjit {

// The preprocess kernel's CUDA source and its compile (NVRTC, cached like every kernel);
// no GPU needed when options.arch is given.
std::string emit_bwd_preprocess_cuda(const AttentionSpec& spec);
CompiledKernel compile_bwd_preprocess(const AttentionSpec& spec, const CompileOptions& options = {});

// Fills d and zeroes dq_accum on `stream`. o and dout: (batch, heads_q, seqlen_q, head_dim_v)
// of the spec's dtype, any batch/head/row strides (multiples of 8 elements), last dim
// contiguous; d and dq_accum contiguous float32. Everything is checked before the launch
// (ArgumentError naming the tensor and what is allowed).
void backward_preprocess(const AttentionSpec& spec, const TensorView& o, const TensorView& dout, const TensorView& d,
                         const TensorView& dq_accum, CUstream_st* stream);

}  // namespace flashjit
