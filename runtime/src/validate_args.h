// Internal: checks of forward()'s tensors against the spec, before any launch.
#pragma once

#include "flashjit/runtime.h"

namespace flashjit {

struct ProblemShape {
  int64_t batch, heads_q, heads_kv, seqlen_q, seqlen_k;
};

// Throws ArgumentError naming the tensor and dimension and what is allowed.
ProblemShape validate_forward_args(const AttentionSpec& spec, const TensorView& q, const TensorView& k,
                                   const TensorView& v, const TensorView& o, const TensorView* lse);

}  // namespace flashjit
